//! `GET /v1/alliance-outcome`: does the alliance at mid-treatment go with a better outcome,
//! in this organisation's own data? Responses are paired into treatment courses (patient
//! and episode); the statistics are the scoring core's (`scoring::association`). Only
//! aggregates leave this module: no patient reference, and nothing below `min_patients`.

use actix_web::{HttpResponse, get, web};

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use serde_json::json;

use super::courses::{analyse, courses};
use crate::audit;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::ids::OrgId;
use crate::responses::model::ResponseStatus;
use crate::schema::responses;
use crate::scoring::{Kind, Rater, to_f64};
use crate::state::AppState;

pub use super::alliance_outcome_model::*;

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
        crate::edge::problems::Unauthorized,
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
    query: crate::extract::ApiQuery<AllianceOutcomeQuery>,
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
    let (correlation, lagged, mut tertiles, clinicians) = analyse(&all, &outcome_instrument.definition, min_patients);
    if !principal.has(crate::auth::Scope::ResponsesRead) {
        for t in tertiles.iter_mut().filter(|t| t.n < super::SMALL_CELL_FLOOR) {
            t.suppress();
        }
    }
    let filters = audit::filters_used(&[
        ("rater", q.rater.is_some()),
        ("clinician", q.clinician.is_some()),
        ("from", q.from.is_some()),
        ("to", q.to.is_some()),
    ]);
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::AllianceOutcomeRead,
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
