//! Response ingestion and reads. `prepare` checks and scores one posted response against
//! its pinned (or latest published) instrument version; `ingest_one` and `ingest_batch`
//! store prepared rows idempotently (the unique external_id decides, never a read-then-write).
//! The FHIR front door uses the same path.

pub mod model;
pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::instruments::model::InstrumentStatus;
use crate::instruments::{LoadedInstrument, validate::MAX_ITEMS};
use crate::scoring::Rater;
use model::{NewResponse, Source};
use store::{AdministrationRow, NewAdministrationRow};

/// How far in the future `administered_at` may lie (clock skew between systems).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
pub const MAX_REFERENCE_CHARS: usize = 200;
pub const MAX_SESSION: i64 = 100_000;
pub const MAX_BATCH: usize = 1_000;

/// Instrument versions already resolved in this request, in front of the process-wide
/// built-ins (immutable, so never read from the database on the ingest path).
pub struct InstrumentCache<'a> {
    builtins: &'a crate::instruments::builtin::BuiltinCatalogue,
    found: HashMap<(String, Option<i32>), Arc<LoadedInstrument>>,
}

impl<'a> InstrumentCache<'a> {
    pub fn new(builtins: &'a crate::instruments::builtin::BuiltinCatalogue) -> Self {
        InstrumentCache {
            builtins,
            found: HashMap::new(),
        }
    }

    async fn get(
        &mut self,
        conn: &mut AsyncPgConnection,
        org: Uuid,
        key: &str,
        version: Option<i32>,
    ) -> ApiResult<Arc<LoadedInstrument>> {
        if let Some(builtin) = self.builtins.get(key, version) {
            return Ok(builtin);
        }
        let cache_key = (key.to_string(), version);
        if let Some(found) = self.found.get(&cache_key) {
            return Ok(found.clone());
        }
        let pointer = if version.is_some() {
            "/instrument_version"
        } else {
            "/instrument"
        };
        let loaded = Arc::new(crate::instruments::resolve(conn, org, key, version, pointer).await?);
        self.found.insert(cache_key, loaded.clone());
        Ok(loaded)
    }
}

fn check_reference(errors: &mut Vec<FieldError>, pointer: &str, value: &str) {
    if value.trim().is_empty() || value.chars().count() > MAX_REFERENCE_CHARS || value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            pointer,
            format!("must be 1 to {MAX_REFERENCE_CHARS} characters without control characters"),
        ));
    }
}

/// Checks and scores one response; the row is ready to insert. Every field problem is
/// reported at once (pointers relative to the response).
pub async fn prepare(
    conn: &mut AsyncPgConnection,
    cache: &mut InstrumentCache<'_>,
    principal: &Principal,
    body: NewResponse,
    source: Source,
) -> ApiResult<NewAdministrationRow> {
    let mut errors = Vec::new();
    check_reference(&mut errors, "/patient", &body.patient);
    for (pointer, value) in [
        ("/clinician", &body.clinician),
        ("/episode", &body.episode),
        ("/external_id", &body.external_id),
    ] {
        if let Some(v) = value {
            check_reference(&mut errors, pointer, v);
        }
    }
    let administered_at = match DateTime::parse_from_rfc3339(body.administered_at.trim()) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            if t > Utc::now() + MAX_CLOCK_SKEW {
                errors.push(FieldError::new("/administered_at", "lies in the future"));
            }
            Some(t)
        }
        Err(_) => {
            errors.push(FieldError::new(
                "/administered_at",
                "must be an RFC 3339 date-time with an offset",
            ));
            None
        }
    };
    if let Some(s) = body.session
        && !(1..=MAX_SESSION).contains(&s)
    {
        errors.push(FieldError::new("/session", format!("must be 1 to {MAX_SESSION}")));
    }
    if body.answers.len() > MAX_ITEMS {
        errors.push(FieldError::new("/answers", format!("at most {MAX_ITEMS} answers")));
        return Err(ApiError::Validation(errors));
    }
    let rater_text = body.rater.clone().unwrap_or_else(|| "patient".into());
    let rater = Rater::parse(&rater_text);
    if rater.is_none() {
        errors.push(FieldError::new("/rater", "must be patient, clinician or observer"));
    }

    let instrument = match cache
        .get(conn, principal.org, &body.instrument, body.instrument_version)
        .await
    {
        Ok(i) => Some(i),
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(other) => return Err(other),
    };
    let mut scored = None;
    if let Some(instrument) = &instrument {
        match instrument.status() {
            InstrumentStatus::Published => {}
            InstrumentStatus::Retired => errors.push(FieldError::new(
                "/instrument_version",
                "this version is retired: it takes no new responses",
            )),
            InstrumentStatus::Draft => errors.push(FieldError::new(
                "/instrument_version",
                "this version is a draft: publish it first",
            )),
        }
        if let Some(r) = rater
            && !instrument.definition.raters.contains(&r)
        {
            errors.push(FieldError::new(
                "/rater",
                format!("`{}` does not allow this rater", instrument.version.key),
            ));
        }
        match crate::instruments::score_answers(instrument, &body.answers, "") {
            Ok(s) => scored = Some(s),
            Err(ApiError::Validation(mut e)) => errors.append(&mut e),
            Err(other) => return Err(other),
        }
    }
    let (Some(instrument), Some(administered_at), Some((score, score_error)), true) =
        (instrument, administered_at, scored, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };

    // Only answered items are stored, as the numbers given (already checked against the scale).
    let answers: serde_json::Map<String, serde_json::Value> = body
        .answers
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let canonical = json!({
        "instrument": body.instrument,
        "instrument_version": body.instrument_version,
        "patient": body.patient,
        "clinician": body.clinician,
        "episode": body.episode,
        "rater": rater_text,
        "administered_at": administered_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "session": body.session,
        "answers": answers,
    });
    let payload_hash = Sha256::digest(serde_json::to_vec(&canonical).unwrap_or_default()).to_vec();

    Ok(NewAdministrationRow {
        org_id: principal.org,
        id: Uuid::new_v4(),
        instrument_key: instrument.version.key.clone(),
        instrument_version: instrument.version.version,
        patient: body.patient,
        clinician: body.clinician,
        episode: body.episode,
        rater: rater_text,
        administered_at,
        session: body.session.map(|s| s as i32),
        answers: serde_json::Value::Object(answers),
        external_id: body.external_id,
        payload_hash,
        source: source.as_str().to_string(),
        created_by: principal.client_id.clone(),
        total: score.as_ref().map(|s| s.total),
        mean: score.as_ref().map(|s| s.mean),
        pomp: score.as_ref().map(|s| s.pomp),
        subscales: score.as_ref().map(|s| json!(s.subscales)),
        answered: score.as_ref().map(|s| s.answered as i32),
        missing: score.as_ref().map(|s| s.missing as i32),
        prorated: score.as_ref().map(|s| s.prorated),
        flags: score.as_ref().map(|s| s.flags.clone()),
        score_error,
    })
}

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
    let existing = store::find_by_external_id(conn, row.org_id, external_id)
        .await?
        .ok_or_else(|| ApiError::internal("external_id conflict without a stored row"))?;
    if existing.payload_hash == row.payload_hash {
        Ok(Ingested::Duplicate(existing))
    } else {
        Err(ApiError::Conflict(
            "a response with this external_id exists with a different payload".into(),
        ))
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
    let mut results: Vec<Option<BatchResult>> = (0..items.len()).map(|_| None).collect();
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
            Err(ApiError::Validation(errors)) => {
                results[index] = Some(result(index, BatchStatus::Invalid, None, errors))
            }
            Err(ApiError::BadRequest(detail)) => {
                results[index] = Some(result(
                    index,
                    BatchStatus::Invalid,
                    None,
                    vec![FieldError::new("", detail)],
                ))
            }
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
        _ => (BatchStatus::Conflict, None),
    };
    for ((index, row), stored) in candidates.iter().zip(&outcomes) {
        let created = stored.as_ref().is_some_and(|(_, _, new)| *new);
        let (status, id) = settle(&row.payload_hash, stored, created);
        results[*index] = Some(result(*index, status, id, conflict_errors(status)));
    }
    for (index, first, hash) in repeats {
        let (status, id) = settle(&hash, &outcomes[first], false);
        results[index] = Some(result(index, status, id, conflict_errors(status)));
    }
    Ok(results.into_iter().flatten().collect())
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
