//! Clinician summaries: one clinician, or every clinician above `min_patients`.

use crate::ids::OrgId;

use actix_web::{HttpResponse, get, web};
use diesel_async::AsyncPgConnection;
use serde_json::json;

use super::SMALL_CELL_FLOOR;
use super::model::*;
use super::store::{self};
use super::{instrument_at, norms_for, series_statistics};
use crate::audit;
use crate::auth::Principal;
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, Problem};
use crate::scoring::Rater;
use crate::scoring::stats::{self, ReliableChange};
use crate::state::AppState;

/// Summaries for one clinician (`Some`) or every clinician, for one instrument and rater.
async fn summaries(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    org: OrgId,
    key: &str,
    rater: Rater,
    clinician: Option<&str>,
) -> ApiResult<Vec<ClinicianSummary>> {
    let mut series = store::clinician_series(conn, org, key, rater.as_str(), clinician, None).await?;
    let Some(version) = series.iter().map(|s| s.instrument_version).max() else {
        crate::instruments::lookup::require_visible(conn, &state.builtins, org, key).await?;
        return Ok(Vec::new());
    };
    let instrument = instrument_at(conn, &state.builtins, org, key, version).await?;
    // One scale per series: when some version in the data is on another scale than the
    // latest, the series are read again with the versions that share it.
    let mut present: Vec<i32> = series.iter().flat_map(|s| s.versions.iter().copied()).collect();
    present.sort_unstable();
    present.dedup();
    let mut allowed = Vec::with_capacity(present.len());
    for v in &present {
        let theirs = instrument_at(conn, &state.builtins, org, key, *v).await?;
        if instrument.definition.shares_scale_with(&theirs.definition) {
            allowed.push(*v);
        }
    }
    if allowed.len() != present.len() {
        series = store::clinician_series(conn, org, key, rater.as_str(), clinician, Some(&allowed)).await?;
    }
    // Sorted here, by the references' bytes: cheaper than in SQL, and the same order
    // whatever the database's collation.
    series.sort_unstable_by(|a, b| (&a.clinician, &a.patient).cmp(&(&b.clinician, &b.patient)));
    let norms = norms_for(conn, &state.norms, org, &instrument, rater).await?;

    let mut out = Vec::new();
    for group in series.chunk_by(|a, b| a.clinician == b.clinician) {
        let Some(c) = group.first().map(|s| &s.clinician) else {
            continue;
        };
        let means: Vec<f64> = group.iter().filter_map(|s| stats::mean(&s.totals)).collect();
        let responses: i64 = group.iter().map(|s| s.totals.len() as i64).sum();
        let below: i64 = group.iter().map(|s| s.below_cutoff).sum();
        let s3_count: i64 = group.iter().map(|s| s.session3_count).sum();
        let s3_sum: f64 = group.iter().filter_map(|s| s.session3_sum).sum();
        // Ruptures and reliable change per (clinician, patient) series.
        let (mut with_rupture, mut ruptures, mut repaired) = (0, 0, 0);
        let mut reliable_change = ReliableChangeCounts::default();
        for one in group {
            let (found, change) = series_statistics(&one.totals, &instrument.definition, &norms);
            with_rupture += usize::from(!found.is_empty());
            ruptures += found.len();
            repaired += found.iter().filter(|r| r.repaired_by.is_some()).count();
            match change.and_then(|c| c.class) {
                Some(ReliableChange::Improved) => reliable_change.improved += 1,
                Some(ReliableChange::Unchanged) => reliable_change.unchanged += 1,
                Some(ReliableChange::Deteriorated) => reliable_change.deteriorated += 1,
                None => {}
            }
        }
        out.push(ClinicianSummary {
            clinician: c.clone(),
            instrument: key.to_string(),
            rater,
            patients: group.len(),
            responses,
            mean: stats::mean(&means),
            sd: stats::sample_sd(&means),
            min: means.iter().copied().reduce(f64::min),
            max: means.iter().copied().reduce(f64::max),
            share_below_cutoff: (instrument.definition.cutoff.is_some() && responses > 0)
                .then(|| below as f64 / responses as f64),
            patients_with_rupture: Some(with_rupture),
            ruptures: Some(ruptures),
            share_repaired: (ruptures > 0).then(|| repaired as f64 / ruptures as f64),
            reliable_change: Some(reliable_change),
            session3_mean: (s3_count > 0).then(|| s3_sum / s3_count as f64),
            suppressed: false,
        });
    }
    Ok(out)
}

/// Alliance across one clinician's patients.
#[utoipa::path(
    tag = "analytics",
    params(("clinician" = String, Path, description = "The clinician reference"), SummaryQuery),
    responses(
        (status = 200, description = "The summary", body = ClinicianSummary),
        (status = 400, description = "Missing `instrument` or unknown rater", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `analytics:read` or `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No scored responses for this clinician and instrument", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["analytics:read"]), ("bearer" = ["responses:read"]))
)]
#[get("/clinicians/{clinician}/summary")]
pub async fn clinician_summary(
    principal: Principal,
    state: web::Data<AppState>,
    clinician: web::Path<String>,
    query: crate::extract::ApiQuery<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_analytics()?;
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = state.read_conn().await?;
    let summary = summaries(
        &mut conn,
        &state,
        principal.org,
        &query.instrument,
        rater,
        Some(&super::trends::path_reference(&clinician)?),
    )
    .await?
    .pop()
    .ok_or(ApiError::NotFound)?;
    let mut summary = summary;
    if !principal.has(Scope::ResponsesRead) && summary.patients < SMALL_CELL_FLOOR {
        summary.suppress();
    }
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::ClinicianSummaryRead,
        "analytics",
        None,
        json!({"instrument": query.instrument}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(summary))
}

/// The same summary for every clinician with at least `min_patients` patients (default 5),
/// ordered by clinician (by the reference's bytes, whatever the database's collation).
#[utoipa::path(
    tag = "analytics",
    params(ClinicianListQuery),
    responses(
        (status = 200, description = "Summaries", body = ClinicianSummaryList),
        (status = 400, description = "Missing `instrument`, bad `min_patients` or rater", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `analytics:read` or `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["analytics:read"]), ("bearer" = ["responses:read"]))
)]
#[get("/clinicians")]
pub async fn list_clinicians(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<ClinicianListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_analytics()?;
    let min_patients = query.min_patients.unwrap_or(5);
    if min_patients == 0 {
        return Err(ApiError::BadRequest("`min_patients` must be at least 1".into()));
    }
    if !principal.has(Scope::ResponsesRead) && (min_patients as usize) < SMALL_CELL_FLOOR {
        return Err(ApiError::BadRequest(format!(
            "`min_patients` must be at least {SMALL_CELL_FLOOR} without `responses:read` (the small-cell floor)"
        )));
    }
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = state.read_conn().await?;
    let items: Vec<ClinicianSummary> = summaries(&mut conn, &state, principal.org, &query.instrument, rater, None)
        .await?
        .into_iter()
        .filter(|s| s.patients >= min_patients as usize)
        .collect();
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::ClinicianSummariesRead,
        "analytics",
        None,
        json!({"instrument": query.instrument, "clinicians": items.len()}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(ClinicianSummaryList { items }))
}
