//! `GET /v1/alliance-outcome`: does the alliance at mid-treatment go with a better outcome,
//! in this organisation's own data? Responses are paired into treatment courses (patient
//! and episode); the statistics are the scoring core's (`scoring::association`). Only
//! aggregates leave this module: no patient reference, and nothing below `min_patients`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::ids::OrgId;
use crate::responses::model::ResponseStatus;
use crate::schema::responses;
use crate::scoring::association::{self, Estimate, OlsFit};
use crate::scoring::{InstrumentDefinition, Kind, Rater, outcome, to_f64};
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

/// One treatment course, oriented so that a positive change is an improvement.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    pub patient: String,
    pub episode: Option<String>,
    pub clinician: Option<String>,
    /// The alliance total at `at_session`.
    pub alliance: f64,
    /// y0, the first outcome total (at or before the alliance).
    pub baseline: f64,
    /// The last outcome total after the alliance.
    pub end: f64,
    pub improvement: f64,
    pub prior_change: f64,
    pub later_change: f64,
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

/// Pairs responses into courses (rows in course order): A is the first alliance total at
/// `at_session`; y0 the first outcome total, which must come at or before A; yk the last at
/// or before A; yend the last after A. A course without A or yend is left out.
pub fn courses(rows: &[CourseRow], alliance: &str, at_session: i64, orientation: f64) -> Vec<Course> {
    rows.chunk_by(|a, b| a.patient == b.patient && a.episode == b.episode)
        .filter_map(|course| {
            let a = course
                .iter()
                .find(|r| r.instrument_key == alliance && r.session.map(i64::from) == Some(at_session))?;
            let at = a.administered_at;
            let outcomes: Vec<&CourseRow> = course.iter().filter(|r| r.instrument_key != alliance).collect();
            let first = <[&CourseRow]>::first(&outcomes)?;
            if first.administered_at > at {
                return None;
            }
            let before = outcomes.iter().rev().find(|r| r.administered_at <= at)?;
            let after = outcomes.iter().rev().find(|r| r.administered_at > at)?;
            let (y0, yk, yend) = (first.total?, before.total?, after.total?);
            Some(Course {
                patient: a.patient.clone(),
                episode: a.episode.clone(),
                clinician: a.clinician.clone(),
                alliance: a.total?,
                baseline: y0,
                end: yend,
                improvement: orientation * (yend - y0),
                prior_change: orientation * (yk - y0),
                later_change: orientation * (yend - yk),
            })
        })
        .collect()
}

/// Every statistic of the answer, from the courses (which are already filtered).
pub fn analyse(
    courses: &[Course],
    outcome: &InstrumentDefinition,
    min_patients: i64,
) -> (
    Option<Correlation>,
    Option<Lagged>,
    Vec<Tertile>,
    Option<ClinicianEffects>,
) {
    let too_few = i64::try_from(courses.len()).map_or(true, |n| n < min_patients);
    if too_few {
        return (None, None, Vec::new(), None);
    }
    let alliance: Vec<f64> = courses.iter().map(|c| c.alliance).collect();
    let improvement: Vec<f64> = courses.iter().map(|c| c.improvement).collect();
    let r = association::pearson(&alliance, &improvement);
    let ci = r.and_then(|r| association::fisher_ci(r, courses.len()));
    let correlation = Correlation {
        r,
        ci_lower: ci.map(|c| c.0),
        ci_upper: ci.map(|c| c.1),
    };
    (
        Some(correlation),
        lagged(courses),
        tertiles(courses, outcome),
        clinician_effects(courses),
    )
}

fn lagged(courses: &[Course]) -> Option<Lagged> {
    let column = |f: fn(&Course) -> f64| courses.iter().map(f).collect::<Vec<f64>>();
    let (later, a, prior, base) = (
        column(|c| c.later_change),
        column(|c| c.alliance),
        column(|c| c.prior_change),
        column(|c| c.baseline),
    );
    let fit: OlsFit = association::ols(&later, &[&a, &prior, &base])?;
    let estimate = |i: usize| fit.coefficients.get(i).map(EstimateView::from);
    Some(Lagged {
        n: fit.n,
        r_squared: fit.r_squared,
        coefficients: LaggedCoefficients {
            intercept: estimate(0)?,
            alliance: estimate(1)?,
            prior_change: estimate(2)?,
            baseline: estimate(3)?,
        },
    })
}

/// Courses sorted by A (ties by patient, then episode); course i of n is in tertile
/// floor(3 i / n) + 1.
fn tertiles(courses: &[Course], outcome: &InstrumentDefinition) -> Vec<Tertile> {
    let mut sorted: Vec<&Course> = courses.iter().collect();
    sorted.sort_by(|a, b| {
        a.alliance
            .total_cmp(&b.alliance)
            .then_with(|| a.patient.cmp(&b.patient))
            .then_with(|| a.episode.cmp(&b.episode))
    });
    let n = sorted.len();
    let mut groups: BTreeMap<u8, Vec<&Course>> = BTreeMap::new();
    for (i, c) in sorted.into_iter().enumerate() {
        let tertile = u8::try_from(3 * i / n + 1).unwrap_or(3);
        groups.entry(tertile).or_default().push(c);
    }
    let has_response = outcome.outcome.response_reduction.is_some();
    let has_remission = outcome.outcome.remission.is_some();
    groups
        .into_iter()
        .map(|(tertile, group)| {
            let size = group.len() as f64;
            let share = |hit: &dyn Fn(&Course) -> bool| group.iter().filter(|c| hit(c)).count() as f64 / size;
            Tertile {
                tertile,
                n: group.len(),
                alliance_min: group.iter().map(|c| c.alliance).fold(f64::INFINITY, f64::min),
                alliance_max: group.iter().map(|c| c.alliance).fold(f64::NEG_INFINITY, f64::max),
                mean_improvement: group.iter().map(|c| c.improvement).sum::<f64>() / size,
                response_rate: has_response
                    .then(|| share(&|c| outcome::response(outcome, c.baseline, c.end) == Some(true))),
                remission_rate: has_remission.then(|| share(&|c| outcome::remission(outcome, c.end) == Some(true))),
            }
        })
        .collect()
}

fn clinician_effects(courses: &[Course]) -> Option<ClinicianEffects> {
    let mut by: BTreeMap<&str, Vec<&Course>> = BTreeMap::new();
    for c in courses {
        if let Some(clinician) = c.clinician.as_deref() {
            by.entry(clinician).or_default().push(c);
        }
    }
    by.retain(|_, group| group.len() >= 2);
    if by.len() < 3 {
        return None;
    }
    let groups: Vec<&Vec<&Course>> = by.values().collect();
    let of =
        |f: fn(&Course) -> f64| -> Vec<Vec<f64>> { groups.iter().map(|g| g.iter().map(|c| f(c)).collect()).collect() };
    let (mut improvement, mut within, mut between) = (Vec::new(), Vec::new(), Vec::new());
    for group in &groups {
        let mean = group.iter().map(|c| c.alliance).sum::<f64>() / group.len() as f64;
        for c in group.iter() {
            improvement.push(c.improvement);
            within.push(c.alliance - mean);
            between.push(mean);
        }
    }
    let fit = association::ols(&improvement, &[&within, &between]);
    let estimate = |i: usize| fit.as_ref().and_then(|f| f.coefficients.get(i)).map(EstimateView::from);
    Some(ClinicianEffects {
        clinicians: groups.len(),
        courses: improvement.len(),
        outcome_icc1: association::icc1(&of(|c| c.improvement)),
        alliance_icc1: association::icc1(&of(|c| c.alliance)),
        within: estimate(1),
        between: estimate(2),
    })
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
    let mut conn = crate::db::conn(&state.pool).await?;
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
    let filters: Vec<&str> = [
        ("rater", q.rater.is_some()),
        ("clinician", q.clinician.is_some()),
        ("from", q.from.is_some()),
        ("to", q.to.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, used)| used.then_some(name))
    .collect();
    audit::record_read(
        &mut conn,
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
