//! `GET /v1/instruments/{key}/expected-response`: the organisation's expected-response model
//! of an instrument and rater, with its curves; `?refit=true` (`org:admin`) refits it now.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, AuditAction, AuditEntry};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::instruments::lookup::{self, Wanted};
use crate::scoring::expected::{CURVE_T, Status, Z};
use crate::scoring::{Direction, Rater};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpectedQuery {
    /// Rater, default `patient`.
    pub rater: Option<Rater>,
    /// `true` refits the model now (`org:admin`); `false` (default) reads it.
    pub refit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExpectedCoefficients {
    pub intercept: f64,
    pub intake: f64,
    pub log_t: f64,
    pub intake_log_t: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurvePoint {
    pub t: usize,
    pub expected: f64,
    pub bound: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Curve {
    /// 10, 50 or 90: the percentile of the courses' intakes (nearest rank).
    pub percentile: u8,
    pub intake: f64,
    pub points: Vec<CurvePoint>,
}

/// The model: `e(x, t) = intercept + intake x + (log_t + intake_log_t x) ln t`, fitted by OLS
/// over the points with `2 <= t <= 20` of every course; the bound is `e + z residual_sd`
/// (lower is better) or `e - z residual_sd` (higher is better). A band of the clinic's own
/// residuals, not a prediction for one patient.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpectedResponse {
    pub instrument: String,
    pub rater: Rater,
    pub direction: Direction,
    /// `fitted`, `insufficient_data` (fewer than 30 courses) or `degenerate` (the design has
    /// rank below 4, e.g. every intake equal).
    #[schema(example = "fitted")]
    pub status: &'static str,
    pub n_courses: i64,
    pub n_points: i64,
    pub coefficients: Option<ExpectedCoefficients>,
    pub residual_sd: Option<f64>,
    #[schema(example = 1.2816)]
    pub z: f64,
    pub fitted_at: Option<DateTime<Utc>>,
    pub curves: Option<Vec<Curve>>,
}

/// The organisation's expected treatment response for an instrument and rater: the
/// coefficients of its own fit, the residual SD, and the expected curve and bound at the
/// 10th, 50th and 90th percentile intakes for `t` = 1..12. Refitted when 30 courses first
/// exist, when the course count grows by 10%, and at most a day after any change; `?refit=true`
/// (`org:admin`) refits now and re-derives the instrument's `not_on_track` alerts.
#[utoipa::path(
    tag = "analytics",
    params(("key" = String, Path, description = "The instrument key"), ExpectedQuery),
    responses(
        (status = 200, description = "The model (or why there is none)", body = ExpectedResponse),
        (status = 400, description = "Unknown `rater` or `refit` value", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `analytics:read` or `responses:read`; `refit=true` needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No published version of this instrument for this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["analytics:read"]), ("bearer" = ["responses:read"]))
)]
#[get("/instruments/{key}/expected-response")]
pub async fn expected_response(
    principal: Principal,
    state: web::Data<AppState>,
    key: web::Path<String>,
    query: crate::extract::ApiQuery<ExpectedQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_analytics()?;
    let refit = match query.refit.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("`refit` must be true or false".into())),
    };
    if refit {
        principal.require(Scope::OrgAdmin)?;
    }
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = crate::db::conn(&state.pool).await?;
    let latest = lookup::find(&mut conn, &state.builtins, principal.org, &key, Wanted::LatestPublished)
        .await
        .map_err(lookup::LookupError::in_path)?;
    let row = if refit {
        let row = crate::expected::refit(&mut conn, &state.refitter, principal.org, &key, rater.as_str()).await?;
        audit::record(
            &mut conn,
            AuditEntry {
                org: principal.org,
                actor: principal.client_id.as_str(),
                action: AuditAction::ExpectedModelRefitted,
                resource_type: "expected_model",
                resource_id: Some(format!("{}/{}", key.as_str(), rater.as_str())),
                detail: json!({"status": row.status, "n_courses": row.n_courses}),
            },
        )
        .await?;
        Some(row)
    } else {
        crate::expected::store::find(&mut conn, principal.org, &key, rater.as_str()).await?
    };
    let direction = latest.definition.direction;
    let answer = match row {
        Some(row) => {
            let status = row.status();
            let in_force = row.in_force();
            let intakes = [row.intake_p10, row.intake_p50, row.intake_p90];
            let curves = in_force.map(|m| {
                [10u8, 50, 90]
                    .into_iter()
                    .zip(intakes)
                    .filter_map(|(percentile, intake)| {
                        let intake = intake?;
                        Some(Curve {
                            percentile,
                            intake,
                            points: CURVE_T
                                .map(|t| CurvePoint {
                                    t,
                                    expected: m.fit.coefficients.expected(intake, t),
                                    bound: m.fit.bound(direction, intake, t),
                                })
                                .collect(),
                        })
                    })
                    .collect()
            });
            ExpectedResponse {
                instrument: key.to_string(),
                rater,
                direction,
                status: status.as_str(),
                n_courses: row.n_courses,
                n_points: row.n_points,
                coefficients: in_force.map(|m| {
                    let c = m.fit.coefficients;
                    ExpectedCoefficients {
                        intercept: c.intercept,
                        intake: c.intake,
                        log_t: c.log_t,
                        intake_log_t: c.intake_log_t,
                    }
                }),
                residual_sd: in_force.map(|m| m.fit.residual_sd),
                z: Z,
                fitted_at: row.fitted_at,
                curves,
            }
        }
        // Never looked at: what exists now, unfitted.
        None => ExpectedResponse {
            instrument: key.to_string(),
            rater,
            direction,
            status: Status::InsufficientData.as_str(),
            n_courses: crate::expected::store::count_courses(&mut conn, principal.org, &key, rater.as_str()).await?,
            n_points: 0,
            coefficients: None,
            residual_sd: None,
            z: Z,
            fitted_at: None,
            curves: None,
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}
