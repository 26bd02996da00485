//! The transactional outbox's consumer. Every change to a response wrote an event row in its
//! own transaction; a worker in every instance takes pending events with `FOR UPDATE SKIP
//! LOCKED` (so two instances never process one event at once, and a dead instance's locks
//! go with its connection), re-evaluates each named series under a per-series advisory lock
//! and marks the events processed in the same transaction. Evaluation is state-based and
//! idempotent, so an event processed twice after a crash changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use uuid::Uuid;

use crate::alerts::store::{AlertRow, SeriesKey};
use crate::error::ApiError;
use crate::ids::OrgId;
use crate::schema::outbox_events;
use crate::state::AppState;

/// Events taken per transaction.
const BATCH: i64 = 64;
/// How long an idle worker waits before looking again.
const IDLE: Duration = Duration::from_millis(100);
/// How long a worker that found less than a full batch waits before the next: events
/// gather meanwhile, so under load one transaction serves many of them (a worker that
/// looped at once would spend the cores on many tiny transactions). Adds at most this to
/// an alert's delay.
const GATHER: Duration = Duration::from_millis(50);

/// Runs until the process ends.
pub async fn run(state: web::Data<AppState>) {
    loop {
        match process_pending(&state).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(n) => {
                state.metrics.outbox_processed(n);
                if n < BATCH as usize {
                    tokio::time::sleep(GATHER).await;
                }
            }
            Err(e) => {
                let cause = e.cause().map(crate::error::ErrorCause::describe);
                log::warn!(target: "rapport::outbox", "outbox worker: {e} {cause:?}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One outbox row, as a worker takes it.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = outbox_events)]
pub struct PendingEvent {
    pub org_id: OrgId,
    pub id: Uuid,
    pub kind: String,
    pub response_id: Uuid,
    pub patient: String,
    pub instrument_key: String,
    pub rater: String,
    pub created_at: DateTime<Utc>,
}

impl PendingEvent {
    fn series(&self) -> SeriesKey {
        SeriesKey {
            org: self.org_id,
            patient: self.patient.clone(),
            instrument: self.instrument_key.clone(),
            rater: self.rater.clone(),
        }
    }
}

/// Takes up to `BATCH` pending events, evaluates their series, queues their webhook
/// messages and marks them processed, in one transaction. Returns how many events it
/// processed.
pub async fn process_pending(state: &AppState) -> Result<usize, ApiError> {
    let mut conn = crate::db::conn(&state.pool).await?;
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let mut events: Vec<PendingEvent> = outbox_events::table
            .filter(outbox_events::processed_at.is_null())
            .order(outbox_events::seq.asc())
            .limit(BATCH)
            .select(PendingEvent::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let series: BTreeSet<SeriesKey> = events.iter().map(PendingEvent::series).collect();
        let taken: BTreeSet<Uuid> = events.iter().map(|e| e.id).collect();
        // Coalesce: the other pending events of these series are served by the same
        // evaluations, which read the series after these rows were locked.
        let coalesced: Vec<PendingEvent> = pending_of(conn, &series)
            .await?
            .into_iter()
            .filter(|e| !taken.contains(&e.id))
            .collect();
        events.extend(coalesced);
        let keys: Vec<SeriesKey> = series.into_iter().collect();
        // Under each series' evaluation lock: the clinician-series facts, then the alerts.
        crate::alerts::store::lock_series(conn, &keys).await?;
        crate::analytics::store::refresh_clinician_series(conn, &crate::alerts::store::SeriesArrays::of(&keys)).await?;
        let mut alert_changes: BTreeMap<OrgId, Vec<(&'static str, AlertRow)>> = BTreeMap::new();
        for (org, event, row) in crate::alerts::evaluate_many(conn, state, &keys).await? {
            alert_changes.entry(org).or_default().push((event, row));
        }
        // One statement per organisation (every tenant query names its organisation).
        let mut by_org: BTreeMap<OrgId, Vec<&PendingEvent>> = BTreeMap::new();
        for event in &events {
            by_org.entry(event.org_id).or_default().push(event);
        }
        for (org, org_events) in &by_org {
            let alerts = alert_changes.remove(org).unwrap_or_default();
            crate::webhooks::publish_changes(conn, *org, org_events, &alerts).await?;
            let ids: Vec<Uuid> = org_events.iter().map(|e| e.id).collect();
            diesel::update(outbox_events::table)
                .filter(outbox_events::org_id.eq(*org))
                .filter(outbox_events::id.eq_any(&ids))
                .set((
                    outbox_events::processed_at.eq(Some(Utc::now())),
                    outbox_events::attempts.eq(outbox_events::attempts + 1),
                ))
                .execute(conn)
                .await?;
        }
        Ok(events.len())
    })
    .await
}

/// Locks the other pending events of these series (`SKIP LOCKED`: one another worker holds
/// is left to it).
async fn pending_of(
    conn: &mut diesel_async::AsyncPgConnection,
    series: &BTreeSet<SeriesKey>,
) -> QueryResult<Vec<PendingEvent>> {
    crate::alerts::store::SeriesArrays::of(series)
        .query(
            "SELECT e.org_id, e.id, e.kind, e.response_id, e.patient, e.instrument_key, e.rater, e.created_at
             FROM outbox_events e
             JOIN unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS s(org_id, patient, instrument_key, rater)
               ON e.org_id = s.org_id AND e.patient = s.patient AND e.instrument_key = s.instrument_key AND e.rater = s.rater
             WHERE e.processed_at IS NULL
             FOR UPDATE OF e SKIP LOCKED",
        )
    .load(conn)
    .await
}

/// The oldest pending event's age in seconds (0 when none), and alert counts by kind and
/// status over every organisation (for `/metrics`).
pub async fn background_figures(
    conn: &mut diesel_async::AsyncPgConnection,
) -> QueryResult<(f64, Vec<(String, String, i64)>)> {
    #[derive(diesel::QueryableByName)]
    struct Lag {
        #[diesel(sql_type = diesel::sql_types::Double)]
        seconds: f64,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let lag: Lag = crate::db::Prepared::new(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS seconds
         FROM outbox_events WHERE processed_at IS NULL",
    )
    .get_result(conn)
    .await?;
    let counts: Vec<Count> =
        crate::db::Prepared::new("SELECT kind, status, count(*) AS n FROM alerts GROUP BY kind, status")
            .load(conn)
            .await?;
    Ok((
        lag.seconds,
        counts.into_iter().map(|c| (c.kind, c.status, c.n)).collect(),
    ))
}
