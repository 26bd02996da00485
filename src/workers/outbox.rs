//! The transactional outbox's worker. Every change to a response wrote an event row in its
//! own transaction; a worker in every instance takes pending events with `FOR UPDATE SKIP
//! LOCKED` (so two instances never process one event at once, and a dead instance's locks
//! go with its connection), takes the evaluation lock of every series they name, reads
//! those series once, hands the batch to the registered consumers in order and marks the
//! events processed, all in one transaction. Consumers are state-based and idempotent, so an event processed twice after
//! a crash changes nothing. The worker names no consumer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::DbPool;
use crate::error::ApiError;
use crate::ids::OrgId;
use crate::outbox::{Batch, Consumer, OutboxEvent};
use crate::schema::outbox_events;
use crate::series::{SeriesArrays, SeriesKey};

/// Events taken per transaction.
const BATCH: i64 = 64;
/// How long an idle worker waits before looking again.
const IDLE: Duration = Duration::from_millis(100);
/// How long a worker that found less than a full batch waits before the next: events
/// gather meanwhile, so under load one transaction serves many of them (a worker that
/// looped at once would spend the cores on many tiny transactions). Adds at most this to
/// an alert's delay.
const GATHER: Duration = Duration::from_millis(50);

/// How often a worker forgets processed events past the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What an outbox worker uses: its pool, its counter, its consumers (in order), the order
/// organisations are served in, and how long processed events are kept.
pub struct OutboxEnvironment {
    pub pool: DbPool,
    /// `RAPPORT_EVENT_RETENTION_DAYS`: processed events older than this are deleted (their
    /// `processed_at - created_at` is the outbox lag; nothing else reads them).
    pub retention: Duration,
    pub processed: prometheus::IntCounter,
    pub consumers: Vec<Box<dyn Consumer>>,
    pub rotation: crate::db::OrgRotation,
}

/// Runs until the process ends.
pub async fn run(env: Arc<OutboxEnvironment>) {
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(std::time::Instant::now());
            if let Ok(mut conn) = crate::db::conn(&env.pool).await
                && let Err(e) = crate::outbox::prune(&mut conn, env.retention).await
            {
                log::warn!(target: "rapport::outbox", "pruning processed outbox events: {e}");
            }
        }
        match process_pending(&env).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(n) => {
                env.processed.inc_by(n as u64);
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

/// For every organisation with pending events (in a rotating order): takes up to `BATCH` of
/// its pending events (and the other pending events of their series), hands them to every
/// consumer and marks them processed, in one transaction. Returns how many events it
/// processed.
pub async fn process_pending(env: &OutboxEnvironment) -> Result<usize, ApiError> {
    let mut conn = crate::db::conn(&env.pool).await?;
    let orgs: Vec<OrgId> = outbox_events::table
        .filter(outbox_events::processed_at.is_null())
        .select(outbox_events::org_id)
        .distinct()
        .load(&mut conn)
        .await?;
    let mut processed = 0;
    for org in env.rotation.round(orgs) {
        processed += process_pending_of(env, &mut conn, org).await?;
    }
    Ok(processed)
}

async fn process_pending_of(
    env: &OutboxEnvironment,
    conn: &mut AsyncPgConnection,
    org: OrgId,
) -> Result<usize, ApiError> {
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let mut events: Vec<OutboxEvent> = outbox_events::table
            .filter(outbox_events::org_id.eq(org))
            .filter(outbox_events::processed_at.is_null())
            .order(outbox_events::seq.asc())
            .limit(BATCH)
            .select(OutboxEvent::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let series: BTreeSet<SeriesKey> = events.iter().map(OutboxEvent::series).collect();
        let taken: BTreeSet<Uuid> = events.iter().map(|e| e.id).collect();
        // Coalesce: the other pending events of these series are served by the same
        // consumers, which read the series after these rows were locked.
        let coalesced: Vec<OutboxEvent> = pending_of(conn, &series)
            .await?
            .into_iter()
            .filter(|e| !taken.contains(&e.id))
            .collect();
        events.extend(coalesced);
        let keys: Vec<SeriesKey> = series.into_iter().collect();
        crate::series::lock(conn, &keys).await?;
        let points = crate::series::points_many(conn, &keys).await?;
        let mut batch = Batch::new(events, keys, points);
        for consumer in &env.consumers {
            consumer.consume(conn, &mut batch).await.inspect_err(|_| {
                log::warn!(target: "rapport::outbox", "outbox consumer `{}` failed", consumer.name());
            })?;
        }
        mark_processed(conn, &batch).await?;
        Ok(batch.events.len())
    })
    .await
}

/// Marks the batch's events processed: one statement per organisation (every tenant query
/// names its organisation).
async fn mark_processed(conn: &mut AsyncPgConnection, batch: &Batch) -> QueryResult<()> {
    for org in batch.organisations() {
        let ids: Vec<Uuid> = batch.events_of(org).map(|e| e.id).collect();
        diesel::update(outbox_events::table)
            .filter(outbox_events::org_id.eq(org))
            .filter(outbox_events::id.eq_any(&ids))
            .set((
                outbox_events::processed_at.eq(Some(Utc::now())),
                outbox_events::attempts.eq(outbox_events::attempts + 1),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Locks the other pending events of these series (`SKIP LOCKED`: one another worker holds
/// is left to it). The series drive the lookup (`LATERAL`: one index probe of
/// `outbox_events_pending_series` each); joined plainly, the planner walked every pending
/// event of the organisation against every series (66 ms a batch under load, the worker's
/// largest cost; benches/README.md).
async fn pending_of(conn: &mut AsyncPgConnection, series: &BTreeSet<SeriesKey>) -> QueryResult<Vec<OutboxEvent>> {
    SeriesArrays::of(series)
        .query(
            "SELECT e.org_id, e.id, e.kind, e.response_id, e.patient, e.instrument_key, e.rater, e.created_at
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS s(org_id, patient, instrument_key, rater)
             CROSS JOIN LATERAL (
                 SELECT * FROM outbox_events e
                 WHERE e.org_id = $5 AND e.org_id = s.org_id AND e.patient = s.patient
                   AND e.instrument_key = s.instrument_key AND e.rater = s.rater AND e.processed_at IS NULL
                 FOR UPDATE SKIP LOCKED) AS e",
        )
        .load(conn)
        .await
}
