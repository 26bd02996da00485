//! Alerts: facts a clinician should act on (a rupture, a run below the cut-off, a reliable
//! deterioration, a safety item), derived from the stored series and never edited by hand.
//! The outbox worker calls `evaluate_series` after each change; the same evaluation twice
//! changes nothing.

pub mod evaluate;
pub mod model;
pub mod routes;
pub mod store;

use diesel_async::AsyncPgConnection;

use crate::error::ApiResult;
use crate::state::AppState;
use store::{SeriesKey, Upsert};

/// Brings the stored alerts of one series to what the series now says. Returns the alerts
/// that were raised or resolved by it, with their webhook event types.
pub async fn evaluate_series(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    key: &SeriesKey,
) -> ApiResult<Vec<(&'static str, store::AlertRow)>> {
    let points = store::series(conn, key).await?;
    let existing = store::count_in_series(conn, key).await?;
    let mut keep = Vec::new();
    let mut changes = Vec::new();
    if let Some(last) = points.last() {
        let instrument =
            crate::analytics::instrument_at(conn, &state.builtins, key.org, &key.instrument, last.instrument_version)
                .await?;
        let rater = crate::scoring::Rater::parse(&key.rater).unwrap_or(crate::scoring::Rater::Patient);
        let norms = crate::analytics::norms_for(conn, &state.worker_norms, key.org, &instrument, rater).await?;
        for d in evaluate::desired(&points, &instrument.definition, &norms) {
            let Some(point) = points.get(d.point) else { continue };
            let resolved_by = d.resolved_by.and_then(|i| points.get(i)).map(|p| p.id);
            let upserted = store::upsert(
                conn,
                key,
                &Upsert {
                    fingerprint: &d.fingerprint,
                    kind: d.kind.as_str(),
                    point,
                    detail: &d.detail,
                    resolved_by,
                },
            )
            .await?;
            for event in upserted.events() {
                changes.push((event, upserted.alert.clone()));
            }
            keep.push(d.fingerprint);
        }
    }
    // Most changes call for no alert: then a series without alerts needs no write at all.
    if existing > 0 {
        store::withdraw_others(conn, key, &keep).await?;
    }
    Ok(changes)
}
