//! The transactional outbox's vocabulary: the event a change to a response writes in its own
//! transaction (`OutboxEvent`, of an `OutboxKind`), the one place that writes such rows, and
//! the contract of the consumers the worker hands each batch to (`Consumer`, `Batch`).
//!
//! No worker code lives here (that is `workers::outbox`), and nothing here names a consumer:
//! consumers (kept series, alerts, webhook messages, ...) register at start-up.

pub mod consumer;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::ids::OrgId;
use crate::schema::outbox_events;
use crate::series::SeriesKey;

pub use consumer::{Announcement, Batch, Consumer};

/// What happened to a response: the closed set of outbox event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum OutboxKind {
    /// A new response was stored.
    ResponseCreated,
    /// A response was voided (entered in error).
    ResponseVoided,
    /// A response's answers or series changed (an amendment); its series is evaluated again.
    ResponseRescored,
}

crate::db::text_enum!(OutboxKind {
    ResponseCreated => "response.created",
    ResponseVoided => "response.voided",
    ResponseRescored => "response.rescored",
});

/// One outbox row, as a worker takes it.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = outbox_events)]
pub struct OutboxEvent {
    pub org_id: OrgId,
    pub id: Uuid,
    pub kind: OutboxKind,
    pub response_id: Uuid,
    pub patient: String,
    pub instrument_key: String,
    pub rater: String,
    pub created_at: DateTime<Utc>,
}

impl OutboxEvent {
    /// The series the event's response belongs to.
    pub fn series(&self) -> SeriesKey {
        SeriesKey {
            org: self.org_id,
            patient: self.patient.clone(),
            instrument: self.instrument_key.clone(),
            rater: self.rater.clone(),
        }
    }
}

/// The SQL that writes one `kind` event for every row of `source` (a CTE or table with
/// `org_id, id, patient, instrument_key, rater`), for writers that insert responses and
/// their events in one statement (the group commit, the batch).
pub fn insert_from(source: &str, kind: OutboxKind) -> String {
    format!(
        "INSERT INTO outbox_events (org_id, id, kind, response_id, patient, instrument_key, rater)
         SELECT org_id, gen_random_uuid(), '{}', id, patient, instrument_key, rater FROM {source}",
        kind.as_str()
    )
}

/// Records an event for each of these responses, in the caller's transaction: the change
/// and its event commit together, and workers act on it after the commit.
pub async fn record(conn: &mut AsyncPgConnection, org: OrgId, ids: &[Uuid], kind: OutboxKind) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Uuid as SqlUuid};
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(insert_from("responses WHERE org_id = $1 AND id = ANY($2)", kind))
        .bind::<SqlUuid, _>(org)
        .bind::<Array<SqlUuid>, _>(ids)
        .execute(conn)
        .await
}

/// Records a `response.rescored` event for the series a response *left* (an amendment moved
/// it to another instrument or rater), so that series is evaluated again too.
pub async fn record_for_series(
    conn: &mut AsyncPgConnection,
    response_id: Uuid,
    series: &SeriesKey,
) -> QueryResult<usize> {
    use diesel::sql_types::{Text, Uuid as SqlUuid};
    diesel::sql_query(
        "INSERT INTO outbox_events (org_id, id, kind, response_id, patient, instrument_key, rater)
         VALUES ($1, gen_random_uuid(), $2, $3, $4, $5, $6)",
    )
    .bind::<SqlUuid, _>(series.org)
    .bind::<Text, _>(OutboxKind::ResponseRescored)
    .bind::<SqlUuid, _>(response_id)
    .bind::<Text, _>(&series.patient)
    .bind::<Text, _>(&series.instrument)
    .bind::<Text, _>(&series.rater)
    .execute(conn)
    .await
}

/// Forgets processed events older than the retention, every organisation's (the outbox
/// workers' housekeeping; a pending event is never forgotten). Returns how many.
pub async fn prune(conn: &mut AsyncPgConnection, retention: std::time::Duration) -> QueryResult<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    diesel::delete(outbox_events::table)
        .filter(outbox_events::processed_at.lt(cutoff))
        .execute(conn)
        .await
}

/// The oldest pending event's age in seconds (0 when none), and alert counts by kind and
/// status over every organisation (for `/metrics`).
pub async fn background_figures(conn: &mut AsyncPgConnection) -> QueryResult<(f64, Vec<(String, String, i64)>)> {
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
