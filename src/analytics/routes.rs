//! Organisation norms and the cohort trajectory.

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use super::model::*;
use super::store::{self};
use super::{SMALL_CELL_FLOOR, instrument_at, norms_for, norms_view};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::scoring::Rater;
use crate::scoring::stats::{self};
use crate::state::AppState;

/// The norms the Reliable Change Index uses for this organisation: the version's own SD and
/// reliability when it has both, otherwise derived from the organisation's data (SD of each
/// patient's first complete total, Cronbach's alpha; at least 30 patients).
#[utoipa::path(
    tag = "analytics",
    params(("key" = String, Path, description = "Instrument key"), ("v" = i32, Path, description = "Version"), NormsQuery),
    responses(
        (status = 200, description = "The norms (null SD and reliability with too little data)", body = NormsView),
        (status = 400, description = "Unknown rater", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `analytics:read` or `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version for this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["analytics:read"]), ("bearer" = ["responses:read"]))
)]
#[get("/instruments/{key}/versions/{v}/norms")]
pub async fn instrument_norms(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    query: crate::extract::ApiQuery<NormsQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_analytics()?;
    let (key, version) = path.into_inner();
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = state.read_conn().await?;
    let instrument = match instrument_at(&mut conn, &state.builtins, principal.org, &key, version).await {
        Ok(i) => i,
        Err(ApiError::Validation(_)) => return Err(ApiError::NotFound),
        Err(e) => return Err(e),
    };
    let norms = norms_for(&mut conn, &state.norms, principal.org, &instrument, rater).await?;
    Ok(HttpResponse::Ok().json(norms_view(&instrument, rater, norms)))
}

/// Cohort mean by session number with n, sample SD and the 95% confidence interval.
#[utoipa::path(
    tag = "analytics",
    params(TrajectoryQuery),
    responses(
        (status = 200, description = "One point per session number", body = Trajectory),
        (status = 400, description = "Missing `instrument`, `by` other than `session`, or unknown rater", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `analytics:read` or `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["analytics:read"]), ("bearer" = ["responses:read"]))
)]
#[get("/trajectory")]
pub async fn trajectory(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<TrajectoryQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_analytics()?;
    if query.by.as_deref().is_some_and(|b| b != "session") {
        return Err(ApiError::BadRequest("`by` must be `session`".into()));
    }
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = state.read_conn().await?;
    let rows = store::session_aggregates(
        &mut conn,
        principal.org,
        &query.instrument,
        rater.as_str(),
        query.clinician.as_deref(),
    )
    .await?;
    if rows.is_empty() {
        crate::instruments::lookup::require_visible(&mut conn, &state.builtins, principal.org, &query.instrument)
            .await?;
    }
    let floor = !principal.has(Scope::ResponsesRead);
    let points = rows
        .into_iter()
        .map(|r| {
            if floor && r.n < SMALL_CELL_FLOOR as i64 {
                return TrajectoryPoint {
                    session: r.session,
                    n: r.n,
                    mean: None,
                    sd: None,
                    ci_lower: None,
                    ci_upper: None,
                    suppressed: true,
                };
            }
            let sd = if r.n > 1 { r.sd } else { None };
            let ci = sd.and_then(|sd| stats::confidence_interval_95(r.mean, sd, r.n as usize));
            TrajectoryPoint {
                session: r.session,
                n: r.n,
                mean: Some(r.mean),
                sd,
                ci_lower: ci.map(|c| c.0),
                ci_upper: ci.map(|c| c.1),
                suppressed: false,
            }
        })
        .collect();
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::TrajectoryRead,
        "analytics",
        None,
        json!({"instrument": query.instrument}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Trajectory {
        instrument: query.instrument.clone(),
        rater,
        by: "session".into(),
        points,
    }))
}
