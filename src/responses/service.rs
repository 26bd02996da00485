//! The response use cases, one implementation each, called by the REST and the FHIR front
//! doors alike: a handler translates shapes, these do the work (the transaction, the audit
//! event, the cache invalidation).

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;

use super::model::{NewResponse, Source};
use super::prepare::{InstrumentCache, prepare};
use super::store::{self, AdministrationRow};
use super::{Ingested, ingest_one};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::ResponseId;
use crate::instruments::builtin::BuiltinCatalogue;
use crate::norms::NormsCache;
use crate::outbox::{self, OutboxKind};

/// What the response use cases need: the built-in instruments, the group-commit writer,
/// and this instance's norms cache (cleared for an instrument when its data changes).
#[derive(Clone)]
pub struct IngestContext {
    pub builtins: std::sync::Arc<BuiltinCatalogue>,
    pub writer: super::writer::Writer,
    pub norms: std::sync::Arc<NormsCache>,
}

/// Checks, scores and stores one response (idempotent by `external_id`). A new row clears
/// the organisation's cached norms for the instrument on this instance.
pub async fn ingest(
    conn: &mut AsyncPgConnection,
    ctx: &IngestContext,
    principal: &Principal,
    body: NewResponse,
    source: Source,
) -> ApiResult<Ingested> {
    // Idempotency first: a retry of a stored response answers as before even when its body
    // no longer validates (its version retired since, say). Only a failing body pays the
    // extra lookup, and only when it carries a key.
    let key = body.external_id.clone().map(|id| (body.external_system.clone(), id));
    let retry_hash = key.as_ref().and_then(|_| super::prepare::payload_hash(&body));
    let row = match prepare(conn, &mut InstrumentCache::new(&ctx.builtins), principal, body, source).await {
        Ok(row) => row,
        Err(ApiError::Validation(errors)) => {
            if let Some((system, id)) = &key
                && let Some(stored) = store::find_by_external_id(conn, principal.org, system.as_deref(), id).await?
            {
                return match retry_hash {
                    Some(hash) if hash == stored.payload_hash => Ok(Ingested::Duplicate(stored)),
                    _ => Err(super::conflict(stored.id)),
                };
            }
            return Err(ApiError::Validation(errors));
        }
        Err(e) => return Err(e),
    };
    let ingested = ingest_one(conn, &ctx.writer, principal, row).await?;
    if let Ingested::Created(row) = &ingested {
        ctx.norms.invalidate(principal.org, &row.instrument_key);
    }
    Ok(ingested)
}

/// Checks, scores and stores a batch (see `ingest_batch`), then forgets the cached norms of
/// every instrument that got new data.
pub async fn ingest_many(
    conn: &mut AsyncPgConnection,
    ctx: &IngestContext,
    principal: &Principal,
    items: Vec<super::model::BatchItem>,
) -> ApiResult<Vec<super::model::BatchResult>> {
    let (results, grown) = super::ingest_batch(conn, &ctx.builtins, principal, items).await?;
    for key in grown {
        ctx.norms.invalidate(principal.org, &key);
    }
    Ok(results)
}

/// Marks a response entered-in-error, with its audit event, in one transaction. Voiding
/// again changes nothing and answers the stored row; an unknown id is 404.
pub async fn void(
    conn: &mut AsyncPgConnection,
    ctx: &IngestContext,
    principal: &Principal,
    id: ResponseId,
    reason: &str,
    via: Source,
) -> ApiResult<AdministrationRow> {
    let org = principal.org;
    let actor = principal.client_id.clone();
    let row = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let Some(row) = store::void(conn, org, id, reason).await? else {
                return store::find(conn, org, id).await?.ok_or(ApiError::NotFound);
            };
            outbox::record(conn, org, &[row.id], OutboxKind::ResponseVoided).await?;
            let detail = match via {
                Source::Api => json!({}),
                Source::Fhir => json!({"via": "fhir"}),
            };
            audit::record(
                conn,
                AuditEntry {
                    org,
                    actor: actor.as_str(),
                    action: crate::audit::AuditAction::ResponseVoided,
                    resource_type: "response",
                    resource_id: Some(id.to_string()),
                    detail,
                },
            )
            .await?;
            Ok(row)
        })
        .await?;
    // A voided point leaves the norms' sample.
    ctx.norms.invalidate(org, &row.instrument_key);
    Ok(row)
}

/// Replaces `stored` whole with an amended version of it (FHIR `amended`: answers,
/// clinician, episode, session, time and rater as posted), checked and re-scored like a new
/// response, audited, in one transaction. The same payload again changes nothing. Another
/// patient or another instrument is 422 (an amendment corrects a response, it never moves
/// it to another patient or measure); a voided response is 409.
pub async fn amend(
    conn: &mut AsyncPgConnection,
    ctx: &IngestContext,
    principal: &Principal,
    stored: AdministrationRow,
    body: NewResponse,
    source: Source,
) -> ApiResult<AdministrationRow> {
    let row = prepare(conn, &mut InstrumentCache::new(&ctx.builtins), principal, body, source).await?;
    let mut moved = Vec::new();
    if row.patient != stored.patient {
        moved.push(crate::error::FieldError::new(
            "/patient",
            "an amendment keeps the stored response's patient (this identifier is another patient's response)",
        ));
    }
    if row.instrument_key != stored.instrument_key {
        moved.push(crate::error::FieldError::new(
            "/instrument",
            format!(
                "an amendment keeps the stored response's instrument (`{}`)",
                stored.instrument_key
            ),
        ));
    }
    if !moved.is_empty() {
        return Err(ApiError::Validation(moved));
    }
    if row.payload_hash == stored.payload_hash {
        return Ok(stored);
    }
    let org = principal.org;
    let actor = principal.client_id.clone();
    let id = ResponseId(stored.id);
    let previous = stored.clone();
    let amended = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let amended = store::amend(conn, org, id, &row).await?.ok_or_else(|| {
                ApiError::Conflict("the stored response is voided; a voided response cannot be amended".into())
            })?;
            outbox::record(conn, org, &[amended.id], OutboxKind::ResponseRescored).await?;
            if previous.instrument_key != amended.instrument_key || previous.rater != amended.rater {
                let left = crate::series::SeriesKey {
                    org,
                    patient: previous.patient.clone(),
                    instrument: previous.instrument_key.clone(),
                    rater: previous.rater.as_str().to_string(),
                };
                outbox::record_for_series(conn, previous.id, &left).await?;
            }
            audit::record(
                conn,
                AuditEntry {
                    org,
                    actor: actor.as_str(),
                    action: crate::audit::AuditAction::ResponseAmended,
                    resource_type: "response",
                    resource_id: Some(id.to_string()),
                    detail: json!({"via": source.as_str(), "instrument": amended.instrument_key, "version": amended.instrument_version}),
                },
            )
            .await?;
            Ok(amended)
        })
        .await?;
    ctx.norms.invalidate(org, &amended.instrument_key);
    if stored.instrument_key != amended.instrument_key {
        ctx.norms.invalidate(org, &stored.instrument_key);
    }
    Ok(amended)
}
