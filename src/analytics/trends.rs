//! `GET /v1/patients/{patient}/trends`: one patient's series and its summary.

use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpResponse, get, web};
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use super::store::{self, SeriesRow};
use super::{NormsUsed, instrument_at, norms_for, rule_name, series_statistics};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::instruments::LoadedInstrument;
use crate::scoring::stats::{self};
use crate::scoring::{Direction, Rater, SubscaleScore};
use crate::state::AppState;

pub(super) const FLAG_BELOW_CUTOFF: &str = "below_cutoff";

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
            .as_ref()
            .and_then(|text| serde_json::from_str::<BTreeMap<String, SubscaleScore>>(text.0.get()).ok())
            .unwrap_or_default(),
        flags: row.flags.clone().unwrap_or_default(),
        band: row.band.clone(),
        expected: None,
    }
}

/// A reference named in a path, normalised and checked: one that can never be stored names
/// nothing (404).
pub(super) fn path_reference(text: &str) -> ApiResult<String> {
    crate::refs::Reference::parse(text)
        .map(crate::refs::Reference::into_inner)
        .map_err(|_| ApiError::NotFound)
}

fn unscored_response(row: SeriesRow) -> UnscoredResponse {
    UnscoredResponse {
        response_id: row.id,
        administered_at: row.administered_at,
        session: row.session,
        reason: row.score_error.unwrap_or_default(),
        flags: row.flags.unwrap_or_default(),
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
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation has no data for this patient, or the instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/patients/{patient}/trends")]
pub async fn patient_trends(
    principal: Principal,
    state: web::Data<AppState>,
    patient: web::Path<String>,
    query: crate::extract::ApiQuery<TrendQuery>,
) -> ApiResult<HttpResponse> {
    let (trend, _) = load(&principal, &state, path_reference(&patient)?, &query).await?;
    Ok(HttpResponse::Ok().json(trend))
}

/// One patient's trend, with the instrument version of its latest point (None for an empty
/// series), after the read's audit event is committed.
pub(super) async fn load(
    principal: &Principal,
    state: &AppState,
    patient: String,
    query: &TrendQuery,
) -> ApiResult<(Trend, Option<std::sync::Arc<LoadedInstrument>>)> {
    principal.require(Scope::ResponsesRead)?;
    // A launch token bound to another patient finds nothing here.
    if !principal.sees(&patient) {
        return Err(ApiError::NotFound);
    }
    let mut conn = state.read_conn().await?;
    let (trend, used) = compute(&mut conn, state, principal.org, patient, query).await?;
    drop(conn);
    audit::record_read(
        &state.writer,
        principal,
        crate::audit::AuditAction::TrendRead,
        "analytics",
        None,
        json!({"instrument": query.instrument, "points": trend.points.len(), "unscored": trend.unscored.len()}),
    )
    .await?;
    Ok((trend, used))
}

/// One patient's trend in `org` (no audit: the caller records its own event), with the
/// instrument version of its latest point (None for an empty series). 404 when the
/// organisation holds nothing of the patient or cannot see the instrument.
pub async fn compute(
    conn: &mut diesel_async::AsyncPgConnection,
    state: &AppState,
    org: crate::ids::OrgId,
    patient: String,
    query: &TrendQuery,
) -> ApiResult<(Trend, Option<std::sync::Arc<LoadedInstrument>>)> {
    let rater = query.rater.unwrap_or(Rater::Patient);
    let (rows, unscored_rows): (Vec<SeriesRow>, Vec<SeriesRow>) =
        store::series(conn, org, &patient, rater.as_str(), query)
            .await?
            .into_iter()
            .partition(|r| r.total.is_some());
    // The version that describes the series: its latest point's, else its latest unscored
    // response's.
    let latest_version = rows.last().or(unscored_rows.last()).map(|r| r.instrument_version);
    let unscored: Vec<UnscoredResponse> = unscored_rows.into_iter().map(unscored_response).collect();
    // Only an empty series needs the second question: does the patient exist at all?
    if rows.is_empty() && unscored.is_empty() {
        crate::instruments::lookup::require_visible(conn, &state.builtins, org, &query.instrument).await?;
        if !store::patient_has_data(conn, org, &patient).await? {
            return Err(ApiError::NotFound);
        }
    }
    let mut used = None;
    let mut rows = rows;
    let mut excluded_versions = Vec::new();
    let mut excluded_points = 0;
    if let Some(version) = latest_version {
        let instrument = instrument_at(conn, &state.builtins, org, &query.instrument, version).await?;
        // One scale per series: only the versions on the latest version's scale.
        excluded_versions = other_scales(conn, state, org, &query.instrument, &instrument, &rows).await?;
        let before = rows.len();
        rows.retain(|r| !excluded_versions.contains(&r.instrument_version));
        excluded_points = before - rows.len();
        used = Some(instrument);
    }
    let mut points: Vec<TrendPoint> = rows.iter().map(point).collect();
    if let Some(instrument) = &used {
        // Unfiltered, the rows are the patient's whole courses already.
        let whole = query.clinician.is_none()
            && query.episode.is_none()
            && query.instrument_version.is_none()
            && query.from.is_none()
            && query.to.is_none();
        let courses = if whole {
            Courses::These(&rows)
        } else {
            Courses::ReadFor(&patient)
        };
        expect(conn, state, org, rater, instrument, courses, &mut points).await?;
    }
    let mut summary = describe(&points);
    summary.on_track = points.last().and_then(|p| p.expected).map(|e| e.on_track);
    summary.excluded_points = excluded_points;
    summary.excluded_versions = excluded_versions;
    if let Some(instrument) = &used {
        let norms = norms_for(conn, &state.norms, org, instrument, rater).await?;
        if !rows.is_empty() {
            judge(&mut summary, &rows, instrument, &norms);
        }
    }
    let trend = Trend {
        patient,
        instrument: query.instrument.clone(),
        rater,
        points,
        unscored,
        summary,
    };
    Ok((trend, used))
}

/// Where a trend's points' positions are counted.
enum Courses<'a> {
    /// The trend's own rows: unfiltered, they are the patient's whole courses.
    These(&'a [SeriesRow]),
    /// A filtered trend: the patient's whole courses are read.
    ReadFor(&'a str),
}

/// Each point's expectation under the organisation's model in force (none without one):
/// positions are counted on the patient's whole courses (one per episode) of the versions on
/// `latest`'s scale, whatever the trend's own filters.
async fn expect(
    conn: &mut diesel_async::AsyncPgConnection,
    state: &AppState,
    org: crate::ids::OrgId,
    rater: Rater,
    latest: &LoadedInstrument,
    courses: Courses<'_>,
    points: &mut [TrendPoint],
) -> ApiResult<()> {
    let key = &latest.version.key;
    let Some(model) = state.refitter.models.in_force(conn, org, key, rater.as_str()).await? else {
        return Ok(());
    };
    let course_rows: Vec<store::CoursePoint> = match courses {
        // The trend's own rows, already on one scale.
        Courses::These(rows) => rows
            .iter()
            .filter_map(|r| {
                Some(store::CoursePoint {
                    id: r.id,
                    episode: r.episode.clone(),
                    instrument_version: r.instrument_version,
                    total: r.total?,
                })
            })
            .collect(),
        Courses::ReadFor(patient) => {
            let mut found = store::course_points(conn, org, patient, key, rater.as_str()).await?;
            let mut versions: Vec<i32> = found.iter().map(|r| r.instrument_version).collect();
            versions.sort_unstable();
            versions.dedup();
            for v in versions.into_iter().filter(|v| *v != latest.version.version) {
                let theirs = instrument_at(conn, &state.builtins, org, key, v).await?;
                if !latest.definition.shares_scale_with(&theirs.definition) {
                    found.retain(|r| r.instrument_version != v);
                }
            }
            found
        }
    };
    let mut judged: HashMap<Uuid, PointExpectation> = HashMap::new();
    let mut courses: Vec<(Option<&str>, Vec<&store::CoursePoint>)> = Vec::new();
    for row in &course_rows {
        match courses.iter_mut().find(|(e, _)| *e == row.episode.as_deref()) {
            Some((_, members)) => members.push(row),
            None => courses.push((row.episode.as_deref(), vec![row])),
        }
    }
    for (_, members) in &courses {
        let totals: Vec<f64> = members.iter().map(|r| r.total).collect();
        let found = crate::scoring::expected::judge_course(&model.fit, latest.definition.direction, &totals);
        for (row, e) in members.iter().zip(found) {
            if let Some(e) = e {
                judged.insert(
                    row.id,
                    PointExpectation {
                        t: e.t,
                        expected: e.expected,
                        bound: e.bound,
                        on_track: e.on_track,
                    },
                );
            }
        }
    }
    for p in points.iter_mut() {
        p.expected = judged.get(&p.response_id).copied();
    }
    Ok(())
}

/// The versions among `rows` whose totals are not on `latest`'s scale (scale, item ids,
/// method), in order.
async fn other_scales(
    conn: &mut diesel_async::AsyncPgConnection,
    state: &AppState,
    org: crate::ids::OrgId,
    key: &str,
    latest: &LoadedInstrument,
    rows: &[SeriesRow],
) -> ApiResult<Vec<i32>> {
    let mut versions: Vec<i32> = rows.iter().map(|r| r.instrument_version).collect();
    versions.sort_unstable();
    versions.dedup();
    let mut other = Vec::new();
    for v in versions {
        if v == latest.version.version {
            continue;
        }
        let found = instrument_at(conn, &state.builtins, org, key, v).await?;
        if !latest.definition.shares_scale_with(&found.definition) {
            other.push(v);
        }
    }
    Ok(other)
}

/// What the points alone say: n, baseline, latest, exact change, both slopes, the count
/// below the cut-off. Norm-dependent fields stay empty (see `judge`).
fn describe(points: &[TrendPoint]) -> TrendSummary {
    let totals: Vec<f64> = points.iter().map(|p| p.total).collect();
    let sessions: Option<Vec<f64>> = points.iter().map(|p| p.session.map(f64::from)).collect();
    let weeks: Option<Vec<f64>> = points.first().map(|first| {
        points
            .iter()
            .map(|p| (p.administered_at - first.administered_at).num_milliseconds() as f64 / MILLIS_PER_WEEK)
            .collect()
    });
    TrendSummary {
        n: points.len(),
        baseline: totals.first().copied(),
        latest: totals.last().copied(),
        change: totals
            .first()
            .zip(totals.last())
            .map(|(b, l)| crate::scoring::exact_change(*b, *l)),
        slope_per_session: sessions.and_then(|xs| stats::ols_slope(&xs, &totals)),
        slope_per_week: weeks.and_then(|xs| stats::ols_slope(&xs, &totals)),
        rci: None,
        reliable_change: None,
        norms_source: None,
        ruptures: Vec::new(),
        below_cutoff: points
            .iter()
            .filter(|p| p.flags.iter().any(|f| f == FLAG_BELOW_CUTOFF))
            .count(),
        direction: Direction::default(),
        reliable_change_rule: None,
        baseline_band: points.first().and_then(|p| p.band.clone()),
        latest_band: points.last().and_then(|p| p.band.clone()),
        response: None,
        remission: None,
        excluded_points: 0,
        excluded_versions: Vec::new(),
        on_track: None,
    }
}

const MILLIS_PER_WEEK: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;

/// What the instrument version and its norms say of the series: reliable change and
/// ruptures (with the response ids of each rupture, its previous point and its repair).
fn judge(summary: &mut TrendSummary, rows: &[SeriesRow], instrument: &LoadedInstrument, norms: &NormsUsed) {
    let definition = &instrument.definition;
    let totals: Vec<f64> = rows.iter().map(|r| r.total.unwrap_or_default()).collect();
    let (ruptures, change) = series_statistics(&totals, definition, norms);
    summary.direction = definition.direction;
    if let Some(change) = change {
        summary.rci = change.rci;
        summary.norms_source = change.rci.and(norms.source);
        summary.reliable_change = change.class;
        summary.reliable_change_rule = Some(change.rule);
    }
    if let (Some(b), Some(l)) = (totals.first(), totals.last()) {
        summary.response = crate::scoring::outcome::response(definition, *b, *l);
        summary.remission = crate::scoring::outcome::remission(definition, *l);
    }
    // Rupture indexes point into the series they were found in.
    let id_at = |i: usize| rows.get(i).map(|r| r.id);
    summary.ruptures = ruptures
        .into_iter()
        .filter_map(|r| {
            Some(Rupture {
                response_id: id_at(r.index)?,
                previous_response_id: id_at(r.index.checked_sub(1)?)?,
                from: r.from,
                to: r.to,
                drop: r.drop,
                rule: rule_name(r.rule).to_string(),
                repaired: r.repaired_by.is_some(),
                repaired_by_response_id: r.repaired_by.and_then(id_at),
            })
        })
        .collect();
}
