//! `POST /v1/responses/batch`: every item checked on its own, the valid ones stored with one
//! multi-row statement in one transaction with one audit event; each item gets its result
//! in input order (one bad item never rejects the others).

use std::collections::{BTreeSet, HashMap};

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::model::{BatchItem, BatchResult, BatchStatus, NewResponse, Source};
use super::prepare::{InstrumentCache, prepare};
use super::store::{self, NewAdministrationRow};
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

use store::Stored;

fn result(index: usize, status: BatchStatus, id: Option<Uuid>, errors: Vec<FieldError>) -> BatchResult {
    BatchResult {
        index,
        status,
        id,
        errors,
    }
}

/// Checks every item, then stores the valid ones (duplicates by external_id resolved by the
/// unique key). Results are in input order, with the instruments that gained a response.
pub async fn ingest_batch(
    conn: &mut AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    principal: &Principal,
    items: Vec<BatchItem>,
) -> ApiResult<(Vec<BatchResult>, BTreeSet<String>)> {
    let Checked {
        mut results,
        candidates,
        repeats,
    } = check_items(conn, builtins, principal, items).await?;
    let rows: Vec<&NewAdministrationRow> = candidates.iter().map(|(_, r)| r).collect();
    let outcomes = store_rows(conn, principal, &rows).await?;
    let mut grown = BTreeSet::new();
    for ((index, row), stored) in candidates.iter().zip(&outcomes) {
        let created = stored.as_ref().is_some_and(|(_, _, new)| *new);
        if created && !grown.contains(&row.instrument_key) {
            grown.insert(row.instrument_key.clone());
        }
        let (status, id) = settle(&row.payload_hash, stored, created);
        results.push(result(*index, status, id, conflict_errors(status)));
    }
    for (index, first, hash) in repeats {
        let (status, id) = settle(&hash, outcomes.get(first).unwrap_or(&None), false);
        results.push(result(index, status, id, conflict_errors(status)));
    }
    results.sort_by_key(|r| r.index);
    Ok((results, grown))
}

async fn check_items(
    conn: &mut AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    principal: &Principal,
    items: Vec<BatchItem>,
) -> ApiResult<Checked> {
    let mut checked = Checked::default();
    let mut cache = InstrumentCache::new(builtins);
    let mut first_with_external_id: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let prepared = match crate::extract::from_checked_text::<NewResponse>(item.0.get()) {
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

/// One statement, so atomic without BEGIN/COMMIT round trips: the multi-row insert (rows
/// whose external_id is stored are skipped), an outbox event per new row, one audit event
/// for what was created, and the stored rows behind the skipped external ids. A key that a
/// concurrent batch stored while this statement ran is not in its snapshot: those few are
/// looked up once more afterwards.
async fn store_rows(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    rows: &[&NewAdministrationRow],
) -> ApiResult<Vec<Stored>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut stored = store::insert_batch_audited(conn, principal.org, principal.client_id.as_str(), rows).await?;
    let unresolved: Vec<String> = rows
        .iter()
        .zip(&stored)
        .filter(|(_, s)| s.is_none())
        .filter_map(|(r, _)| r.external_id.clone())
        .collect();
    if !unresolved.is_empty() {
        let existing: HashMap<String, (Uuid, Vec<u8>)> = store::by_external_ids(conn, principal.org, &unresolved)
            .await?
            .into_iter()
            .filter_map(|(ext, id, hash)| ext.map(|e| (e, (id, hash))))
            .collect();
        for (row, slot) in rows.iter().zip(stored.iter_mut()) {
            if slot.is_none()
                && let Some((id, hash)) = row.external_id.as_ref().and_then(|e| existing.get(e))
            {
                *slot = Some((*id, hash.clone(), false));
            }
        }
    }
    Ok(stored)
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
