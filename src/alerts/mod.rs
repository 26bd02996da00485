//! Alerts: facts a clinician should act on (a rupture, a run below the cut-off, a reliable
//! deterioration, a safety item), derived from the stored series and never edited by hand.
//! The outbox worker calls `evaluate_many` for the series its events name; the same evaluation twice
//! changes nothing.

pub mod consumer;
pub mod evaluate;
pub mod model;
pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use diesel_async::AsyncPgConnection;

use crate::error::ApiResult;
use crate::ids::OrgId;
use crate::instruments::builtin::BuiltinCatalogue;
use crate::norms::NormsCache;
use crate::series::SeriesKey;
use store::Upsert;

/// What evaluating alerts uses: the built-in instruments and the evaluator's own norms cache
/// (not cleared by each new response: clearing it on every ingest made every evaluation
/// recompute the organisation's norms over all its patients; alerts may use norms up to 5
/// minutes old).
pub struct AlertEvaluator {
    pub builtins: Arc<BuiltinCatalogue>,
    pub norms: Arc<NormsCache>,
}

/// Instrument versions resolved during one batch, by (organisation, key, version).
type Instruments = HashMap<(OrgId, String, i32), Arc<crate::instruments::LoadedInstrument>>;
/// Expected-response models read during one batch, by (organisation, key, rater).
type Models = HashMap<(OrgId, String, String), Option<crate::scoring::expected::InForce>>;

/// Brings the stored alerts of each series to what the series now says: `points` are the
/// series' points (`series::points_many`), in the order of `keys`. The caller holds each
/// series' evaluation lock (`series::lock`). Only the alerts whose state changes are
/// written. Returns the alerts that were raised or resolved, with their webhook event types
/// and organisations.
pub async fn evaluate_many(
    conn: &mut AsyncPgConnection,
    evaluator: &AlertEvaluator,
    keys: &[SeriesKey],
    points: &[Vec<evaluate::SeriesPoint>],
) -> ApiResult<Vec<(OrgId, &'static str, store::AlertRow)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let held = store::held_many(conn, keys).await?;
    let mut changes = Vec::new();
    // One lookup per instrument version in a batch (a custom one is a database read).
    let mut instruments: Instruments = HashMap::new();
    let mut models: Models = HashMap::new();
    for ((key, points), held) in keys.iter().zip(points).zip(held) {
        let model = model_of(conn, &mut models, key).await?;
        let found = evaluate_points(conn, evaluator, &mut instruments, key, points, &held, model.as_ref()).await?;
        changes.extend(found.into_iter().map(|(event, row)| (key.org, event, row)));
    }
    Ok(changes)
}

/// One instrument version, looked up once per batch.
async fn version_of(
    conn: &mut AsyncPgConnection,
    evaluator: &AlertEvaluator,
    instruments: &mut Instruments,
    key: &SeriesKey,
    version: i32,
) -> ApiResult<Arc<crate::instruments::LoadedInstrument>> {
    let at = (key.org, key.instrument.clone(), version);
    if let Some(found) = instruments.get(&at) {
        return Ok(found.clone());
    }
    let found = crate::instruments::instrument_at(conn, &evaluator.builtins, key.org, &key.instrument, version).await?;
    instruments.insert(at, found.clone());
    Ok(found)
}

/// The expected-response model in force for a series' instrument and rater, read once per
/// batch.
async fn model_of(
    conn: &mut AsyncPgConnection,
    models: &mut Models,
    key: &SeriesKey,
) -> ApiResult<Option<crate::scoring::expected::InForce>> {
    let at = (key.org, key.instrument.clone(), key.rater.clone());
    if let Some(found) = models.get(&at) {
        return Ok(*found);
    }
    let found = crate::expected::store::find(conn, key.org, &key.instrument, &key.rater)
        .await?
        .and_then(|row| row.in_force());
    models.insert(at, found);
    Ok(found)
}

/// Brings the stored alerts of one series (its `points`, holding the `held` alerts) to what
/// the points say, writing only what changes.
async fn evaluate_points(
    conn: &mut AsyncPgConnection,
    evaluator: &AlertEvaluator,
    instruments: &mut Instruments,
    key: &SeriesKey,
    points: &[evaluate::SeriesPoint],
    held: &[store::Held],
    model: Option<&crate::scoring::expected::InForce>,
) -> ApiResult<Vec<(&'static str, store::AlertRow)>> {
    let mut keep = Vec::new();
    let mut changes = Vec::new();
    if let Some(last) = points.last() {
        let instrument = version_of(conn, evaluator, instruments, key, last.instrument_version).await?;
        // One scale per series: points of versions on another scale raise item flags only.
        // (Most series hold one version: then the points are used as they are.)
        let mut on_scale: std::borrow::Cow<'_, [evaluate::SeriesPoint]> = std::borrow::Cow::Borrowed(points);
        let mut versions: Vec<i32> = points.iter().map(|p| p.instrument_version).collect();
        versions.sort_unstable();
        versions.dedup();
        for v in versions.into_iter().filter(|v| *v != last.instrument_version) {
            let theirs = version_of(conn, evaluator, instruments, key, v).await?;
            if !instrument.definition.shares_scale_with(&theirs.definition) {
                for p in on_scale.to_mut().iter_mut().filter(|p| p.instrument_version == v) {
                    p.total = None;
                }
            }
        }
        let points: &[evaluate::SeriesPoint] = &on_scale;
        // An unknown stored rater is an error, never a silent default.
        let rater = crate::scoring::Rater::parse(&key.rater)
            .ok_or_else(|| crate::error::ApiError::internal(format!("unknown stored rater `{}`", key.rater)))?;
        let norms = crate::norms::norms_for(conn, &evaluator.norms, key.org, &instrument, rater).await?;
        for d in evaluate::desired(points, &instrument.definition, &norms, model) {
            let Some(point) = points.get(d.point) else { continue };
            let resolved_by = d.resolved_by.and_then(|i| points.get(i)).map(|p| p.id);
            let upsert = Upsert {
                fingerprint: &d.fingerprint,
                kind: d.kind.as_str(),
                point,
                detail: &d.detail,
                resolved_by,
            };
            // An alert already as the series says needs no write (and announces nothing:
            // every announced change is a change of status).
            if !held
                .iter()
                .any(|h| h.fingerprint == d.fingerprint && h.unchanged_by(&upsert))
            {
                let upserted = store::upsert(conn, key, &upsert).await?;
                for event in upserted.events() {
                    changes.push((event, upserted.alert.clone()));
                }
            }
            keep.push(d.fingerprint);
        }
    }
    // Only when the series holds an alert it no longer calls for.
    let withdrawn = crate::alerts::model::AlertStatus::Withdrawn;
    if held
        .iter()
        .any(|h| h.status != withdrawn && !keep.contains(&h.fingerprint))
    {
        store::withdraw_others(conn, key, &keep).await?;
    }
    Ok(changes)
}
