//! The expected treatment response per organisation, instrument key and rater ("not on
//! track"): the model `scoring::expected` fits, kept in `expected_models`, refitted by the
//! SPEC's rule, and the re-evaluation of the instrument's series a refit brings.
//!
//! The rule: a model is fitted when none is in force and 30 courses exist; refitted when the
//! course count has grown by 10% or more since the last fit; and otherwise at most a day
//! after a new, voided or erased response (the outbox consumer `ExpectedModels` and erasure
//! leave the mark; `workers::expected` looks at marked models every
//! `RAPPORT_EXPECTED_CHECK_SECS`). `?refit=true` refits at once.

pub mod consumer;
pub mod routes;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};

use crate::alerts::AlertEvaluator;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use crate::instruments::builtin::BuiltinCatalogue;
use crate::instruments::lookup::{self, Wanted};
use crate::scoring::expected::{self, MIN_COURSES, Status};
use crate::series::SeriesKey;
use store::{FitValues, ModelRow};

/// How long a change may wait for its refit.
pub const MAX_WAIT: chrono::TimeDelta = chrono::TimeDelta::days(1);
/// Series re-evaluated per transaction after a refit.
const SERIES_PER_TRANSACTION: usize = 200;

/// What a refit uses: the built-in instruments, the alert evaluator that re-derives the
/// instrument's `not_on_track` alerts, and this process's cache of models in force (which a
/// refit here updates at once).
pub struct Refitter {
    pub builtins: Arc<BuiltinCatalogue>,
    pub alerts: AlertEvaluator,
    pub models: ModelCache,
}

/// How long a process reuses a model it read for trends (a refit on another instance shows
/// within this time; alerts always read the model in force).
pub const MODEL_CACHE: std::time::Duration = std::time::Duration::from_secs(30);

type ModelKey = (OrgId, String, String);

/// Models in force by (organisation, instrument key, rater), read at most `MODEL_CACHE` ago.
#[derive(Default)]
pub struct ModelCache {
    entries: std::sync::Mutex<std::collections::HashMap<ModelKey, (std::time::Instant, Option<expected::InForce>)>>,
}

impl ModelCache {
    /// The model in force for trends, from the cache or the database.
    pub async fn in_force(
        &self,
        conn: &mut AsyncPgConnection,
        org: OrgId,
        key: &str,
        rater: &str,
    ) -> ApiResult<Option<expected::InForce>> {
        let at: ModelKey = (org, key.to_string(), rater.to_string());
        if let Some(found) = self.entries.lock().ok().and_then(|entries| {
            entries
                .get(&at)
                .filter(|(read, _)| read.elapsed() < MODEL_CACHE)
                .map(|(_, m)| *m)
        }) {
            return Ok(found);
        }
        let found = store::find(conn, org, key, rater).await?.and_then(|row| row.in_force());
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.retain(|_, (read, _)| read.elapsed() < MODEL_CACHE);
            }
            entries.insert(at, (std::time::Instant::now(), found));
        }
        Ok(found)
    }

    fn forget(&self, org: OrgId, key: &str, rater: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(org, key.to_string(), rater.to_string()));
        }
    }
}

/// Whether a model with changes waiting is refitted now, given today's course count.
pub fn due(row: &ModelRow, courses: i64, now: DateTime<Utc>) -> bool {
    let in_force = row.status() == Status::Fitted && row.fitted_at.is_some();
    if !in_force && courses >= MIN_COURSES as i64 && row.n_courses < MIN_COURSES as i64 {
        return true;
    }
    // Grown by 10% or more since the last fit (10 n_new >= 11 n_old, in whole numbers).
    if row.fitted_at.is_some() && courses * 10 >= row.n_courses * 11 && courses > row.n_courses {
        return true;
    }
    row.dirty_since.is_some_and(|since| now - since >= MAX_WAIT)
}

/// The courses of an instrument and rater: each a course's totals in time order, only the
/// versions on the scale of the latest published version (none when no version is published).
pub async fn courses(
    conn: &mut AsyncPgConnection,
    builtins: &BuiltinCatalogue,
    org: OrgId,
    key: &str,
    rater: &str,
) -> ApiResult<Vec<Vec<f64>>> {
    let latest = match lookup::find(conn, builtins, org, key, Wanted::LatestPublished).await {
        Ok(found) => found,
        Err(lookup::LookupError::Database(e)) => return Err(e),
        Err(_) => return Ok(Vec::new()),
    };
    let rows = store::course_rows(conn, org, key, rater).await?;
    let mut versions: Vec<i32> = rows.iter().map(|r| r.instrument_version).collect();
    versions.sort_unstable();
    versions.dedup();
    let mut on_scale = Vec::new();
    for v in versions {
        let found = crate::instruments::instrument_at(conn, builtins, org, key, v).await?;
        if v == latest.version.version || latest.definition.shares_scale_with(&found.definition) {
            on_scale.push(v);
        }
    }
    let mut courses: Vec<Vec<f64>> = Vec::new();
    let mut current: Option<(&str, Option<&str>)> = None;
    for row in rows.iter().filter(|r| on_scale.contains(&r.instrument_version)) {
        let course = (row.patient.as_str(), row.episode.as_deref());
        if current != Some(course) {
            courses.push(Vec::new());
            current = Some(course);
        }
        if let Some(last) = courses.last_mut() {
            last.push(row.total);
        }
    }
    Ok(courses)
}

/// Fits the model now and keeps it, then re-evaluates every series of the instrument and
/// rater (their `not_on_track` alerts follow the new model; webhooks hear of each change).
pub async fn refit(
    conn: &mut AsyncPgConnection,
    refitter: &Refitter,
    org: OrgId,
    key: &str,
    rater: &str,
) -> ApiResult<ModelRow> {
    store::take_mark(conn, org, key, rater).await?;
    let fitted = match fit_and_save(conn, refitter, org, key, rater).await {
        Ok(row) => row,
        Err(e) => {
            // Not answered after all: the change waits for the next try.
            store::mark_changed(conn, org, &[(key.to_string(), rater.to_string())]).await?;
            return Err(e);
        }
    };
    refitter.models.forget(org, key, rater);
    reevaluate(conn, refitter, org, key, rater).await?;
    Ok(fitted)
}

async fn fit_and_save(
    conn: &mut AsyncPgConnection,
    refitter: &Refitter,
    org: OrgId,
    key: &str,
    rater: &str,
) -> ApiResult<ModelRow> {
    let courses = courses(conn, &refitter.builtins, org, key, rater).await?;
    let model = expected::fit(&courses);
    let at = Utc::now();
    Ok(store::save(conn, &FitValues::of(org, key, rater, &model, at)).await?)
}

/// Brings every series of the instrument and rater to the model now in force, a few hundred
/// series per transaction, each under its evaluation lock.
async fn reevaluate(
    conn: &mut AsyncPgConnection,
    refitter: &Refitter,
    org: OrgId,
    key: &str,
    rater: &str,
) -> ApiResult<()> {
    let patients = store::patients(conn, org, key, rater).await?;
    for chunk in patients.chunks(SERIES_PER_TRANSACTION) {
        let keys: Vec<SeriesKey> = chunk
            .iter()
            .map(|patient| SeriesKey {
                org,
                patient: patient.clone(),
                instrument: key.to_string(),
                rater: rater.to_string(),
            })
            .collect();
        conn.transaction::<_, ApiError, _>(async |conn| {
            crate::series::lock(conn, &keys).await?;
            let points = crate::series::points_many(conn, &keys).await?;
            let changes = crate::alerts::evaluate_many(conn, &refitter.alerts, &keys, &points).await?;
            let mut announced: BTreeMap<OrgId, Vec<crate::outbox::Announcement>> = BTreeMap::new();
            for (org, event, row) in changes {
                let alert = crate::alerts::model::Alert::from(row);
                announced
                    .entry(org)
                    .or_default()
                    .push(crate::alerts::consumer::announcement(event, &alert));
            }
            for (org, announcements) in announced {
                crate::webhooks::publish_changes(conn, org, &[], &announcements).await?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Status, n_courses: i64, fitted: bool, dirty_hours_ago: Option<i64>) -> ModelRow {
        let now = Utc::now();
        ModelRow {
            fit: FitValues {
                org_id: OrgId(uuid::Uuid::nil()),
                instrument_key: "phq-9".into(),
                rater: "patient".into(),
                status: status.as_str().into(),
                n_courses,
                n_points: 0,
                intercept: None,
                intake: None,
                log_t: None,
                intake_log_t: None,
                residual_sd: None,
                intake_p10: None,
                intake_p50: None,
                intake_p90: None,
                fitted_at: fitted.then_some(now),
            },
            dirty_since: dirty_hours_ago.map(|h| now - chrono::TimeDelta::hours(h)),
        }
    }

    #[test]
    fn the_refit_rule() {
        let now = Utc::now();
        // No model yet: as soon as 30 courses exist.
        assert!(!due(&row(Status::InsufficientData, 0, false, Some(0)), 29, now));
        assert!(due(&row(Status::InsufficientData, 0, false, Some(0)), 30, now));
        assert!(due(&row(Status::InsufficientData, 12, true, Some(0)), 30, now));
        // A model in force: 10% more courses, else a day after the first change.
        assert!(!due(&row(Status::Fitted, 100, true, Some(1)), 109, now));
        assert!(due(&row(Status::Fitted, 100, true, Some(1)), 110, now));
        assert!(!due(&row(Status::Fitted, 100, true, Some(23)), 100, now));
        assert!(due(&row(Status::Fitted, 100, true, Some(25)), 100, now));
        // Fewer courses (voided, erased) wait for the day as well.
        assert!(!due(&row(Status::Fitted, 100, true, Some(2)), 80, now));
        // A degenerate fit refits on growth too.
        assert!(due(&row(Status::Degenerate, 40, true, Some(0)), 44, now));
    }
}
