//! `POST /v1/responses/batch`: every item checked on its own, the valid ones stored with one
//! multi-row statement in one transaction with one audit event; each item gets its result
//! in input order (one bad item never rejects the others).

use std::collections::{HashMap, HashSet};

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::model::{BatchResult, BatchStatus, NewResponse, Source};
use super::prepare::{InstrumentCache, prepare};
use super::store::{self, NewAdministrationRow};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};

/// The items after checking: results of the invalid ones, the rows to store, and items that
/// repeat an external_id of an earlier item (resolved like re-posts of it).
#[derive(Default)]
struct Checked {
    results: Vec<BatchResult>,
    candidates: Vec<(usize, NewAdministrationRow)>,
    /// (item index, position of the first candidate with that external_id, payload hash).
    repeats: Vec<(usize, usize, Vec<u8>)>,
}

/// What a candidate row ended up as: the stored (id, payload hash), and whether it is new.
type Stored = Option<(Uuid, Vec<u8>, bool)>;

fn result(index: usize, status: BatchStatus, id: Option<Uuid>, errors: Vec<FieldError>) -> BatchResult {
    BatchResult {
        index,
        status,
        id,
        errors,
    }
}

/// Checks every item, then stores the valid ones (duplicates by external_id resolved by the
/// unique key). Results are in input order.
pub async fn ingest_batch(
    conn: &mut AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    principal: &Principal,
    items: Vec<serde_json::Value>,
) -> ApiResult<Vec<BatchResult>> {
    let Checked {
        mut results,
        candidates,
        repeats,
    } = check_items(conn, builtins, principal, items).await?;
    let rows: Vec<NewAdministrationRow> = candidates.iter().map(|(_, r)| r.clone()).collect();
    let outcomes = store_rows(conn, principal, rows).await?;
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

async fn check_items(
    conn: &mut AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    principal: &Principal,
    items: Vec<serde_json::Value>,
) -> ApiResult<Checked> {
    let mut checked = Checked::default();
    let mut cache = InstrumentCache::new(builtins);
    let mut first_with_external_id: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let prepared = match crate::extract::from_value::<NewResponse>(item) {
            Ok(body) => prepare(conn, &mut cache, principal, body, Source::Api).await,
            Err(e) => Err(e),
        };
        match prepared {
            Ok(row) => {
                if let Some(ext) = &row.external_id {
                    if let Some(&first) = first_with_external_id.get(ext) {
                        checked.repeats.push((index, first, row.payload_hash));
                        continue;
                    }
                    first_with_external_id.insert(ext.clone(), checked.candidates.len());
                }
                checked.candidates.push((index, row));
            }
            Err(ApiError::Validation(errors)) => {
                checked.results.push(result(index, BatchStatus::Invalid, None, errors));
            }
            Err(ApiError::BadRequest(detail)) => checked.results.push(result(
                index,
                BatchStatus::Invalid,
                None,
                vec![FieldError::new("", detail)],
            )),
            Err(other) => return Err(other),
        }
    }
    Ok(checked)
}

/// One transaction: the multi-row insert, the stored rows behind skipped external ids, and
/// one audit event for what was created.
async fn store_rows(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    rows: Vec<NewAdministrationRow>,
) -> ApiResult<Vec<Stored>> {
    let actor = principal.client_id.clone();
    let org = principal.org;
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let inserted: HashSet<Uuid> = store::insert_many(conn, &rows).await?.into_iter().collect();
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
        let created: Vec<Uuid> = inserted.iter().copied().collect();
        store::record_events(conn, org, &created, "response.created").await?;
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
    .await
}

/// An item's status from what its row ended up as: the same payload is created (new) or a
/// duplicate; a different one a conflict naming the stored response, as a single post's 409.
fn settle(hash: &[u8], stored: &Stored, created: bool) -> (BatchStatus, Option<Uuid>) {
    match stored {
        Some((id, stored_hash, _)) if stored_hash.as_slice() == hash => (
            if created {
                BatchStatus::Created
            } else {
                BatchStatus::Duplicate
            },
            Some(*id),
        ),
        Some((id, _, _)) => (BatchStatus::Conflict, Some(*id)),
        None => (BatchStatus::Conflict, None),
    }
}

fn conflict_errors(status: BatchStatus) -> Vec<FieldError> {
    if status == BatchStatus::Conflict {
        vec![FieldError::new(
            "/external_id",
            "a response with this external_id exists with a different payload",
        )]
    } else {
        Vec::new()
    }
}
