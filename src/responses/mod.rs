//! Response ingestion and reads. `prepare` checks and scores one posted response against
//! its pinned (or latest published) instrument version; `ingest_one` and `ingest_batch`
//! store prepared rows idempotently (the unique external_id decides, never a read-then-write).
//! The FHIR front door uses the same path.

pub mod batch;
pub mod erase;
pub mod model;
pub mod prepare;
pub mod routes;
pub mod service;
pub mod store;
pub mod writer;

pub use batch::ingest_batch;
pub use prepare::{InstrumentCache, prepare};

use chrono::Duration;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use store::{AdministrationRow, NewAdministrationRow};

/// How far in the future `administered_at` may lie (clock skew between systems).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
pub use crate::refs::MAX_REFERENCE_CHARS;
pub const MAX_SESSION: i64 = 100_000;
pub const MAX_BATCH: usize = 1_000;

pub enum Ingested {
    Created(AdministrationRow),
    /// The same external_id with the same payload was stored before.
    Duplicate(AdministrationRow),
}

/// Stores one prepared response with its audit and outbox events through the group-commit
/// writer (answered after the commit). On an external_id already stored, the stored row
/// decides: same payload -> duplicate, different -> 409.
pub async fn ingest_one(
    conn: &mut AsyncPgConnection,
    writer: &writer::Writer,
    principal: &Principal,
    row: NewAdministrationRow,
) -> ApiResult<Ingested> {
    let (org, system, external_id, hash) = (
        row.org_id,
        row.external_system.clone(),
        row.external_id.clone(),
        row.payload_hash.clone(),
    );
    if let Some(created) = writer.insert(row, principal.client_id.as_str()).await? {
        return Ok(Ingested::Created(created));
    }
    let external_id = external_id.unwrap_or_default();
    let existing = store::find_by_external_id(conn, org, system.as_deref(), &external_id)
        .await?
        .ok_or_else(|| ApiError::internal("external_id conflict without a stored row"))?;
    if existing.payload_hash == hash {
        Ok(Ingested::Duplicate(existing))
    } else {
        Err(conflict(existing.id))
    }
}

/// 409 for an idempotency key stored with a different payload, naming the stored response.
pub fn conflict(stored: Uuid) -> ApiError {
    ApiError::ConflictWith {
        detail: "a response with this external_id exists with a different payload".into(),
        existing_id: stored,
    }
}
