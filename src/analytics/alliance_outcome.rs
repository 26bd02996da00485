//! `GET /v1/alliance-outcome`: does the alliance at mid-treatment go with a better outcome,
//! in this organisation's own data? Responses are paired into treatment courses (patient
//! and episode); the statistics are the scoring core's (`scoring::association`). Only
//! aggregates leave this module: no patient reference, and nothing below `min_patients`.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::courses::{analyse, courses};
use crate::audit;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::ids::OrgId;
use crate::responses::model::ResponseStatus;
use crate::schema::responses;
use crate::scoring::association::Estimate;
use crate::scoring::{Kind, Rater, to_f64};
use crate::state::AppState;

/// Below this many courses nothing is computed, whatever `min_patients` asks (privacy).
pub const MIN_PATIENTS_FLOOR: i64 = 5;
const DEFAULT_MIN_PATIENTS: i64 = 10;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllianceOutcomeQuery {
    /// An alliance instrument's key, e.g. `wai-sr`.
    pub alliance: String,
    /// An outcome instrument's key, e.g. `phq-9`.
    pub outcome: String,
    /// The session whose alliance is related to the outcome (required, >= 1).
    pub at_session: Option<i64>,
    /// Rater of both instruments, default `patient`.
    pub rater: Option<Rater>,
    /// Only courses whose alliance response rates this clinician.
    pub clinician: Option<String>,
    /// Only responses administered at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only responses administered before this time.
    pub to: Option<DateTime<Utc>>,
    /// Fewest courses for any statistic (default 10, at least 5).
    pub min_patients: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct EstimateView {
    pub estimate: f64,
    pub se: f64,
    pub t: f64,
    pub p: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
}

impl From<&Estimate> for EstimateView {
    fn from(e: &Estimate) -> Self {
        EstimateView {
            estimate: e.estimate,
            se: e.se,
            t: e.t,
            p: e.p,
            ci_lower: e.ci_lower,
            ci_upper: e.ci_upper,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Correlation {
    /// Pearson r of the alliance and the improvement; null when either variance is 0.
    pub r: Option<f64>,
    /// Fisher-z 95% interval: tanh(atanh(r) -/+ 1.959963984540054 / sqrt(n - 3)).
    pub ci_lower: Option<f64>,
    pub ci_upper: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LaggedCoefficients {
    pub intercept: EstimateView,
    pub alliance: EstimateView,
    pub prior_change: EstimateView,
    pub baseline: EstimateView,
}

/// OLS of the later change on the alliance, the change before it and the baseline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lagged {
    pub n: usize,
    pub r_squared: Option<f64>,
    pub coefficients: LaggedCoefficients,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tertile {
    pub tertile: u8,
    pub n: usize,
    pub alliance_min: f64,
    pub alliance_max: f64,
    pub mean_improvement: f64,
    /// Share of the tertile's courses meeting the outcome's response rule; null without one.
    pub response_rate: Option<f64>,
    /// Share meeting the remission rule; null without one.
    pub remission_rate: Option<f64>,
}

/// Clinician effects: only courses with a clinician, clinicians with at least 2 of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClinicianEffects {
    pub clinicians: usize,
    pub courses: usize,
    /// ICC(1) of the improvement by clinician (one-way ANOVA, not truncated).
    pub outcome_icc1: Option<f64>,
    /// ICC(1) of the alliance by clinician.
    pub alliance_icc1: Option<f64>,
    /// OLS of improvement on `A - mean_j(A)` (within) and `mean_j(A)` (between).
    pub within: Option<EstimateView>,
    pub between: Option<EstimateView>,
}

/// The published figures a clinic's own numbers can be read against.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    pub alliance_outcome_r: f64,
    pub source: &'static str,
    pub pharmacotherapy_effect: f64,
    pub pharmacotherapy_source: &'static str,
    pub prescriber_variance_share: f64,
    pub prescriber_source: &'static str,
}

const PUBLISHED: Published = Published {
    alliance_outcome_r: 0.278,
    source: "Flückiger et al. 2018, 295 studies",
    pharmacotherapy_effect: 0.30,
    pharmacotherapy_source: "Totura et al. 2018",
    prescriber_variance_share: 0.091,
    prescriber_source: "McKay, Imel & Wampold 2006 (TDCRP, BDI)",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct AllianceOutcome {
    pub alliance: String,
    pub outcome: String,
    pub at_session: i64,
    pub rater: Rater,
    /// Courses that have an alliance at `at_session`, an outcome at or before it and one after.
    pub n: usize,
    pub min_patients: i64,
    /// Null with fewer than `min_patients` courses.
    pub correlation: Option<Correlation>,
    /// Null with fewer than `min_patients` courses or a singular design.
    pub lagged: Option<Lagged>,
    /// Empty with fewer than `min_patients` courses.
    pub tertiles: Vec<Tertile>,
    /// Null unless at least 3 clinicians have at least 2 courses each.
    pub clinicians: Option<ClinicianEffects>,
    pub published: Published,
}

/// One response of either instrument, in course order.
#[derive(Debug, Clone, Queryable)]
pub struct CourseRow {
    pub patient: String,
    pub episode: Option<String>,
    pub instrument_key: String,
    pub session: Option<i32>,
    pub administered_at: DateTime<Utc>,
    pub total: Option<f64>,
    pub clinician: Option<String>,
}

/// Active, scored responses of both instruments for one rater, in course order.
async fn course_rows(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    q: &AllianceOutcomeQuery,
    rater: Rater,
) -> QueryResult<Vec<CourseRow>> {
    let mut query = responses::table
        .filter(responses::org_id.eq(org))
        .filter(responses::instrument_key.eq_any([q.alliance.clone(), q.outcome.clone()]))
        .filter(responses::rater.eq(rater.as_str()))
        .filter(responses::status.eq(ResponseStatus::Active))
        .filter(responses::total.is_not_null())
        .select((
            responses::patient,
            responses::episode,
            responses::instrument_key,
            responses::session,
            responses::administered_at,
            responses::total,
            responses::clinician,
        ))
        .order((
            responses::patient.asc(),
            responses::episode.asc().nulls_first(),
            responses::administered_at.asc(),
            responses::seq.asc(),
        ))
        .into_boxed();
    if let Some(from) = q.from {
        query = query.filter(responses::administered_at.ge(from));
    }
    if let Some(to) = q.to {
        query = query.filter(responses::administered_at.lt(to));
    }
    query.load(conn).await
}

/// The alliance-outcome link in the organisation's own data: courses pairing the alliance at
/// `at_session` with the outcome before and after it; the correlation of alliance and
/// improvement, a lagged regression controlling for earlier change and baseline, tertiles
/// with response and remission rates, clinician effects, and the published figures. An
/// association in observational data, not a causal effect. Aggregates only; nothing is
/// computed below `min_patients` courses (at least 5).
#[utoipa::path(
    tag = "analytics",
    params(AllianceOutcomeQuery),
    responses(
        (status = 200, description = "The analysis", body = AllianceOutcome),
        (status = 400, description = "A missing or bad parameter (`at_session` >= 1, `min_patients` >= 5, dates, rater)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs `analytics:read` or `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "An instrument the caller cannot see", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`alliance` is not an alliance instrument, or `outcome` not an outcome instrument", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["analytics:read"]), ("bearer" = ["responses:read"]))
)]
#[get("/alliance-outcome")]
pub async fn alliance_outcome(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<AllianceOutcomeQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_analytics()?;
    let q = query.into_inner();
    let at_session = q
        .at_session
        .filter(|s| *s >= 1)
        .ok_or_else(|| ApiError::BadRequest("`at_session` is required: a session number, 1 or more".into()))?;
    let min_patients = q.min_patients.unwrap_or(DEFAULT_MIN_PATIENTS);
    if min_patients < MIN_PATIENTS_FLOOR {
        return Err(ApiError::BadRequest(format!(
            "`min_patients` must be at least {MIN_PATIENTS_FLOOR}"
        )));
    }
    let rater = q.rater.unwrap_or(Rater::Patient);
    let mut conn = state.read_conn().await?;
    let alliance_instrument =
        crate::instruments::lookup::require_visible(&mut conn, &state.builtins, principal.org, &q.alliance).await?;
    let outcome_instrument =
        crate::instruments::lookup::require_visible(&mut conn, &state.builtins, principal.org, &q.outcome).await?;
    let mut errors = Vec::new();
    if alliance_instrument.definition.kind != Kind::Alliance {
        errors.push(crate::error::FieldError::new(
            "/alliance",
            "is not an alliance instrument",
        ));
    }
    if outcome_instrument.definition.kind != Kind::Outcome {
        errors.push(crate::error::FieldError::new(
            "/outcome",
            "is not an outcome instrument",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows = course_rows(&mut conn, principal.org, &q, rater).await?;
    let orientation = to_f64(outcome_instrument.definition.direction.orientation());
    let mut all = courses(&rows, &q.alliance, at_session, orientation);
    drop(rows);
    if let Some(c) = &q.clinician {
        all.retain(|course| course.clinician.as_deref() == Some(c.as_str()));
    }
    let (correlation, lagged, tertiles, clinicians) = analyse(&all, &outcome_instrument.definition, min_patients);
    let filters = audit::filters_used(&[
        ("rater", q.rater.is_some()),
        ("clinician", q.clinician.is_some()),
        ("from", q.from.is_some()),
        ("to", q.to.is_some()),
    ]);
    audit::record_read(
        &state.writer,
        &principal,
        "alliance_outcome.read",
        "analytics",
        None,
        json!({"alliance": q.alliance, "outcome": q.outcome, "at_session": at_session, "filters": filters, "courses": all.len()}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(AllianceOutcome {
        alliance: q.alliance,
        outcome: q.outcome,
        at_session,
        rater,
        n: all.len(),
        min_patients,
        correlation,
        lagged,
        tertiles,
        clinicians,
        published: PUBLISHED,
    }))
}
