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
use crate::state::AppState;

/// Checks, scores and stores one response (idempotent by `external_id`). A new row clears
/// the organisation's cached norms for the instrument on this instance.
pub async fn ingest(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    principal: &Principal,
    body: NewResponse,
    source: Source,
) -> ApiResult<Ingested> {
    let row = prepare(
        conn,
        &mut InstrumentCache::new(&state.builtins),
        principal,
        body,
        source,
    )
    .await?;
    let ingested = ingest_one(conn, principal, row).await?;
    if let Ingested::Created(row) = &ingested {
        state.norms.invalidate(principal.org, &row.instrument_key);
    }
    Ok(ingested)
}

/// Marks a response entered-in-error, with its audit event, in one transaction. Voiding
/// again changes nothing and answers the stored row; an unknown id is 404.
pub async fn void(
    conn: &mut AsyncPgConnection,
    state: &AppState,
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
            let detail = match via {
                Source::Api => json!({}),
                Source::Fhir => json!({"via": "fhir"}),
            };
            audit::record(
                conn,
                AuditEntry {
                    org,
                    actor: &actor,
                    action: "response.voided",
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
    state.norms.invalidate(org, &row.instrument_key);
    Ok(row)
}
