use crate::ids::OrgId;
use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use diesel_async::AsyncPgConnection;
use serde_json::json;

use super::model::*;
use super::store::{self, SeriesRow};
use super::{instrument_at, norms_for, norms_view, rule_name, series_statistics};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::scoring::stats::{self, ReliableChange};
use crate::scoring::{Rater, SubscaleScore};
use crate::state::AppState;

const FLAG_BELOW_CUTOFF: &str = "below_cutoff";

fn point(row: &SeriesRow) -> TrendPoint {
    TrendPoint {
        response_id: row.id,
        administered_at: row.administered_at,
        session: row.session,
        clinician: row.clinician.clone(),
        total: row.total.unwrap_or_default(),
        mean: row.mean.unwrap_or_default(),
        pomp: row.pomp.unwrap_or_default(),
        subscales: row
            .subscales
            .clone()
            .and_then(|v| serde_json::from_value::<BTreeMap<String, SubscaleScore>>(v).ok())
            .unwrap_or_default(),
        flags: row.flags.clone().unwrap_or_default(),
    }
}

/// One patient's alliance over time: the points and their summary (change, slopes,
/// reliable change, ruptures with repair, below-cut-off count).
#[utoipa::path(
    tag = "analytics",
    params(("patient" = String, Path, description = "The patient reference"), TrendQuery),
    responses(
        (status = 200, description = "The trend", body = Trend),
        (status = 400, description = "Missing `instrument`, or a bad date or rater", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation has no data for this patient", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/patients/{patient}/trends")]
pub async fn patient_trends(
    principal: Principal,
    state: web::Data<AppState>,
    patient: web::Path<String>,
    query: web::Query<TrendQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let patient = patient.into_inner();
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = crate::db::conn(&state.pool).await?;
    let rows = store::series(&mut conn, principal.org, &patient, rater.as_str(), &query).await?;
    // Only an empty series needs the second question: does the patient exist at all?
    if rows.is_empty() && !store::patient_has_data(&mut conn, principal.org, &patient).await? {
        return Err(ApiError::NotFound);
    }
    let points: Vec<TrendPoint> = rows.iter().map(point).collect();
    let totals: Vec<f64> = points.iter().map(|p| p.total).collect();

    let mut summary = TrendSummary {
        n: points.len(),
        baseline: totals.first().copied(),
        latest: totals.last().copied(),
        change: totals.first().zip(totals.last()).map(|(b, l)| l - b),
        slope_per_session: None,
        slope_per_week: None,
        rci: None,
        reliable_change: None,
        norms_source: None,
        ruptures: Vec::new(),
        below_cutoff: points
            .iter()
            .filter(|p| p.flags.iter().any(|f| f == FLAG_BELOW_CUTOFF))
            .count(),
    };
    if let Some(last) = rows.last() {
        let sessions: Option<Vec<f64>> = points.iter().map(|p| p.session.map(f64::from)).collect();
        summary.slope_per_session = sessions.and_then(|xs| stats::ols_slope(&xs, &totals));
        let first_at = points[0].administered_at;
        let weeks: Vec<f64> = points
            .iter()
            .map(|p| (p.administered_at - first_at).num_milliseconds() as f64 / (7.0 * 24.0 * 3600.0 * 1000.0))
            .collect();
        summary.slope_per_week = stats::ols_slope(&weeks, &totals);

        let instrument = instrument_at(
            &mut conn,
            &state.builtins,
            principal.org,
            &query.instrument,
            last.instrument_version,
        )
        .await?;
        let norms = norms_for(&mut conn, &state.norms, principal.org, &instrument, rater).await?;
        let (ruptures, change) = series_statistics(&totals, &instrument.definition, &norms);
        if let Some((rci, class)) = change {
            summary.rci = Some(rci);
            summary.reliable_change = Some(class);
            summary.norms_source = norms.source;
        }
        summary.ruptures = ruptures
            .into_iter()
            .map(|r| Rupture {
                response_id: rows[r.index].id,
                previous_response_id: rows[r.index - 1].id,
                from: r.from,
                to: r.to,
                drop: r.drop,
                rule: rule_name(r.rule).to_string(),
                repaired: r.repaired_by.is_some(),
                repaired_by_response_id: r.repaired_by.map(|i| rows[i].id),
            })
            .collect();
    }
    audit::record_read(
        &mut conn,
        &principal,
        "trend.read",
        "analytics",
        None,
        json!({"instrument": query.instrument, "points": points.len()}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Trend {
        patient,
        instrument: query.instrument.clone(),
        rater,
        points,
        summary,
    }))
}

/// The norms the Reliable Change Index uses for this organisation: the version's own SD and
/// reliability when it has both, otherwise derived from the organisation's data (SD of each
/// patient's first complete total, Cronbach's alpha; at least 30 patients).
#[utoipa::path(
    tag = "analytics",
    params(("key" = String, Path, description = "Instrument key"), ("v" = i32, Path, description = "Version"), NormsQuery),
    responses(
        (status = 200, description = "The norms (null SD and reliability with too little data)", body = NormsView),
        (status = 400, description = "Unknown rater", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version for this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/instruments/{key}/versions/{v}/norms")]
pub async fn instrument_norms(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    query: web::Query<NormsQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let (key, version) = path.into_inner();
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = crate::db::conn(&state.pool).await?;
    let instrument = match instrument_at(&mut conn, &state.builtins, principal.org, &key, version).await {
        Ok(i) => i,
        Err(ApiError::Validation(_)) => return Err(ApiError::NotFound),
        Err(e) => return Err(e),
    };
    let norms = norms_for(&mut conn, &state.norms, principal.org, &instrument, rater).await?;
    Ok(HttpResponse::Ok().json(norms_view(&instrument, rater, norms)))
}

/// Summaries for one clinician (`Some`) or every clinician, for one instrument and rater.
async fn summaries(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    org: OrgId,
    key: &str,
    rater: Rater,
    clinician: Option<&str>,
) -> ApiResult<Vec<ClinicianSummary>> {
    let aggregates = store::patient_aggregates(conn, org, key, rater.as_str(), clinician).await?;
    let series = store::clinician_series(conn, org, key, rater.as_str(), clinician).await?;
    let Some(version) = series.iter().map(|r| r.instrument_version).max() else {
        return Ok(Vec::new());
    };
    let instrument = instrument_at(conn, &state.builtins, org, key, version).await?;
    let norms = norms_for(conn, &state.norms, org, &instrument, rater).await?;

    // Ruptures and reliable change per (clinician, patient) series.
    let mut by_clinician: BTreeMap<&str, (usize, usize, usize, ReliableChangeCounts)> = BTreeMap::new();
    let mut start = 0;
    while start < series.len() {
        let (c, p) = (&series[start].clinician, &series[start].patient);
        let end = series[start..]
            .iter()
            .position(|r| &r.clinician != c || &r.patient != p)
            .map_or(series.len(), |i| start + i);
        let totals: Vec<f64> = series[start..end].iter().map(|r| r.total).collect();
        let (ruptures, change) = series_statistics(&totals, &instrument.definition, &norms);
        let entry = by_clinician.entry(c.as_str()).or_default();
        entry.0 += usize::from(!ruptures.is_empty());
        entry.1 += ruptures.len();
        entry.2 += ruptures.iter().filter(|r| r.repaired_by.is_some()).count();
        match change.map(|(_, class)| class) {
            Some(ReliableChange::Improved) => entry.3.improved += 1,
            Some(ReliableChange::Unchanged) => entry.3.unchanged += 1,
            Some(ReliableChange::Deteriorated) => entry.3.deteriorated += 1,
            None => {}
        }
        start = end;
    }

    let mut out = Vec::new();
    let mut start = 0;
    while start < aggregates.len() {
        let c = &aggregates[start].clinician;
        let end = aggregates[start..]
            .iter()
            .position(|a| &a.clinician != c)
            .map_or(aggregates.len(), |i| start + i);
        let group = &aggregates[start..end];
        let means: Vec<f64> = group.iter().map(|a| a.mean_total).collect();
        let responses: i64 = group.iter().map(|a| a.responses).sum();
        let below: i64 = group.iter().map(|a| a.below_cutoff).sum();
        let s3_count: i64 = group.iter().map(|a| a.session3_count).sum();
        let s3_sum: f64 = group.iter().filter_map(|a| a.session3_sum).sum();
        let (with_rupture, ruptures, repaired, reliable_change) = by_clinician.remove(c.as_str()).unwrap_or_default();
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
            share_below_cutoff: if responses > 0 {
                below as f64 / responses as f64
            } else {
                0.0
            },
            patients_with_rupture: with_rupture,
            ruptures,
            share_repaired: (ruptures > 0).then(|| repaired as f64 / ruptures as f64),
            reliable_change,
            session3_mean: (s3_count > 0).then(|| s3_sum / s3_count as f64),
        });
        start = end;
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
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No scored responses for this clinician and instrument", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/clinicians/{clinician}/summary")]
pub async fn clinician_summary(
    principal: Principal,
    state: web::Data<AppState>,
    clinician: web::Path<String>,
    query: web::Query<SummaryQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = crate::db::conn(&state.pool).await?;
    let summary = summaries(
        &mut conn,
        &state,
        principal.org,
        &query.instrument,
        rater,
        Some(&clinician),
    )
    .await?
    .pop()
    .ok_or(ApiError::NotFound)?;
    audit::record_read(
        &mut conn,
        &principal,
        "clinician_summary.read",
        "analytics",
        None,
        json!({"instrument": query.instrument}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(summary))
}

/// The same summary for every clinician with at least `min_patients` patients (default 5),
/// ordered by clinician.
#[utoipa::path(
    tag = "analytics",
    params(ClinicianListQuery),
    responses(
        (status = 200, description = "Summaries", body = ClinicianSummaryList),
        (status = 400, description = "Missing `instrument`, bad `min_patients` or rater", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/clinicians")]
pub async fn list_clinicians(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<ClinicianListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let min_patients = query.min_patients.unwrap_or(5);
    if min_patients == 0 {
        return Err(ApiError::BadRequest("`min_patients` must be at least 1".into()));
    }
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = crate::db::conn(&state.pool).await?;
    let items: Vec<ClinicianSummary> = summaries(&mut conn, &state, principal.org, &query.instrument, rater, None)
        .await?
        .into_iter()
        .filter(|s| s.patients >= min_patients as usize)
        .collect();
    audit::record_read(
        &mut conn,
        &principal,
        "clinician_summaries.read",
        "analytics",
        None,
        json!({"instrument": query.instrument, "clinicians": items.len()}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(ClinicianSummaryList { items }))
}

/// Cohort mean by session number with n, sample SD and the 95% confidence interval.
#[utoipa::path(
    tag = "analytics",
    params(TrajectoryQuery),
    responses(
        (status = 200, description = "One point per session number", body = Trajectory),
        (status = 400, description = "Missing `instrument`, `by` other than `session`, or unknown rater", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/trajectory")]
pub async fn trajectory(
    principal: Principal,
    state: web::Data<AppState>,
    query: web::Query<TrajectoryQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    if query.by.as_deref().is_some_and(|b| b != "session") {
        return Err(ApiError::BadRequest("`by` must be `session`".into()));
    }
    let rater = query.rater.unwrap_or(Rater::Patient);
    let mut conn = crate::db::conn(&state.pool).await?;
    let rows = store::session_aggregates(
        &mut conn,
        principal.org,
        &query.instrument,
        rater.as_str(),
        query.clinician.as_deref(),
    )
    .await?;
    let points = rows
        .into_iter()
        .map(|r| {
            let sd = if r.n > 1 { r.sd } else { None };
            let ci = sd.and_then(|sd| stats::confidence_interval_95(r.mean, sd, r.n as usize));
            TrajectoryPoint {
                session: r.session,
                n: r.n,
                mean: r.mean,
                sd,
                ci_lower: ci.map(|c| c.0),
                ci_upper: ci.map(|c| c.1),
            }
        })
        .collect();
    audit::record_read(
        &mut conn,
        &principal,
        "trajectory.read",
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
