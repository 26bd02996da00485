//! Response ingestion and reads. `prepare` checks and scores one posted response against
//! its pinned (or latest published) instrument version; `ingest_one` and `ingest_batch`
//! store prepared rows idempotently (the unique external_id decides, never a read-then-write).
//! The FHIR front door uses the same path.

pub mod model;
pub mod prepare;
pub mod routes;
pub mod service;
pub mod store;

pub use prepare::{InstrumentCache, prepare};

use std::collections::HashMap;

use chrono::Duration;
use diesel_async::AsyncPgConnection;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use model::{NewResponse, Source};
use store::{AdministrationRow, NewAdministrationRow};

/// How far in the future `administered_at` may lie (clock skew between systems).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
pub const MAX_REFERENCE_CHARS: usize = 200;
pub const MAX_SESSION: i64 = 100_000;
pub const MAX_BATCH: usize = 1_000;

pub enum Ingested {
    Created(AdministrationRow),
    /// The same external_id with the same payload was stored before.
    Duplicate(AdministrationRow),
}

/// Stores one prepared response with its audit event (one statement, so both or neither).
/// On an external_id already stored, the stored row decides: same payload -> duplicate,
/// different -> 409.
pub async fn ingest_one(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    row: NewAdministrationRow,
) -> ApiResult<Ingested> {
    if let Some(created) = store::insert_one_audited(conn, &row, &principal.client_id).await? {
        return Ok(Ingested::Created(created));
    }
    let external_id = row.external_id.as_deref().unwrap_or_default();
    let existing = store::find_by_external_id(conn, row.org_id, row.external_system.as_deref(), external_id)
        .await?
        .ok_or_else(|| ApiError::internal("external_id conflict without a stored row"))?;
    if existing.payload_hash == row.payload_hash {
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

/// Checks every item, then stores the valid ones with one multi-row statement (duplicates
/// by external_id resolved by the unique constraint), all in one transaction, with one
/// audit event for the batch. Results are in input order.
pub async fn ingest_batch(
    conn: &mut AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    principal: &Principal,
    items: Vec<serde_json::Value>,
) -> ApiResult<Vec<model::BatchResult>> {
    use diesel_async::AsyncConnection as _;
    use model::{BatchResult, BatchStatus};

    let result = |index, status, id, errors| BatchResult {
        index,
        status,
        id,
        errors,
    };
    // Filled out of order (invalid items first), sorted into input order at the end.
    let mut results: Vec<BatchResult> = Vec::with_capacity(items.len());
    let mut cache = InstrumentCache::new(builtins);
    let mut candidates: Vec<(usize, NewAdministrationRow)> = Vec::new();
    let mut first_with_external_id: HashMap<String, usize> = HashMap::new();
    // (item index, candidate position) of a repeated external_id within this batch.
    let mut repeats: Vec<(usize, usize, Vec<u8>)> = Vec::new();

    for (index, item) in items.into_iter().enumerate() {
        let prepared = match crate::extract::from_value::<NewResponse>(item) {
            Ok(body) => prepare(conn, &mut cache, principal, body, Source::Api).await,
            Err(e) => Err(e),
        };
        match prepared {
            Ok(row) => {
                if let Some(ext) = &row.external_id {
                    if let Some(&first) = first_with_external_id.get(ext) {
                        repeats.push((index, first, row.payload_hash));
                        continue;
                    }
                    first_with_external_id.insert(ext.clone(), candidates.len());
                }
                candidates.push((index, row));
            }
            Err(ApiError::Validation(errors)) => results.push(result(index, BatchStatus::Invalid, None, errors)),
            Err(ApiError::BadRequest(detail)) => results.push(result(
                index,
                BatchStatus::Invalid,
                None,
                vec![FieldError::new("", detail)],
            )),
            Err(other) => return Err(other),
        }
    }

    let actor = principal.client_id.clone();
    let org = principal.org;
    let rows: Vec<NewAdministrationRow> = candidates.iter().map(|(_, r)| r.clone()).collect();
    // For each candidate: the stored (id, payload hash) it ended up as, and whether it is new.
    let outcomes: Vec<Option<(Uuid, Vec<u8>, bool)>> = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let inserted: std::collections::HashSet<Uuid> =
                store::insert_many(conn, &rows).await?.into_iter().collect();
            let skipped: Vec<String> = rows
                .iter()
                .filter(|r| !inserted.contains(&r.id))
                .filter_map(|r| r.external_id.clone())
                .collect();
            let existing: HashMap<String, (Uuid, Vec<u8>)> = store::by_external_ids(conn, org, &skipped)
                .await?
                .into_iter()
                .filter_map(|(ext, id, hash)| ext.map(|e| (e, (id, hash))))
                .collect();
            if !inserted.is_empty() {
                audit::record(
                    conn,
                    AuditEntry {
                        org,
                        actor: &actor,
                        action: "responses.batch_created",
                        resource_type: "response",
                        resource_id: None,
                        detail: json!({"created": inserted.len(), "ids": inserted}),
                    },
                )
                .await?;
            }
            Ok(rows
                .iter()
                .map(|r| {
                    if inserted.contains(&r.id) {
                        Some((r.id, r.payload_hash.clone(), true))
                    } else {
                        r.external_id
                            .as_ref()
                            .and_then(|e| existing.get(e))
                            .map(|(id, hash)| (*id, hash.clone(), false))
                    }
                })
                .collect())
        })
        .await?;

    let settle = |hash: &[u8], stored: &Option<(Uuid, Vec<u8>, bool)>, created: bool| match stored {
        Some((id, stored_hash, _)) if stored_hash.as_slice() == hash => (
            if created {
                BatchStatus::Created
            } else {
                BatchStatus::Duplicate
            },
            Some(*id),
        ),
        // A conflict names the stored response, as the single-post 409 does.
        Some((id, _, _)) => (BatchStatus::Conflict, Some(*id)),
        None => (BatchStatus::Conflict, None),
    };
    for ((index, row), stored) in candidates.iter().zip(&outcomes) {
        let created = stored.as_ref().is_some_and(|(_, _, new)| *new);
        let (status, id) = settle(&row.payload_hash, stored, created);
        results.push(result(*index, status, id, conflict_errors(status)));
    }
    for (index, first, hash) in repeats {
        let (status, id) = settle(&hash, outcomes.get(first).unwrap_or(&None), false);
        results.push(result(index, status, id, conflict_errors(status)));
    }
    results.sort_by_key(|r| r.index);
    Ok(results)
}

fn conflict_errors(status: model::BatchStatus) -> Vec<FieldError> {
    if status == model::BatchStatus::Conflict {
        vec![FieldError::new(
            "/external_id",
            "a response with this external_id exists with a different payload",
        )]
    } else {
        Vec::new()
    }
}
