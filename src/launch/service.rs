//! The EHR connection use cases: each opens its transaction and writes its audit event
//! under the acting `Actor`; deleting also makes this instance forget the connection at
//! once (other instances stop its launch tokens within the client-status time).

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::store::{self, ConnectionRow, NewRow};
use crate::audit::{self, Actor, AuditAction, AuditEntry};
use crate::auth::ClientStatusCache;
use crate::error::{ApiError, ApiResult};
use crate::ids::{ClientId, OrgId};

/// The name under which the client-status cache remembers that a connection exists.
pub fn status_key(connection: Uuid) -> ClientId {
    ClientId::new(format!("ehr:{connection}"))
}

/// The audit actor of a launched user: `ehr:{connection}:{fhirUser}`.
pub fn launch_actor(connection: Uuid, fhir_user: &str) -> ClientId {
    ClientId::new(format!("ehr:{connection}:{fhir_user}"))
}

/// Registers a connection for `org`; 409 when any organisation already has its issuer.
pub async fn create(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    new: &NewRow<'_>,
) -> ApiResult<ConnectionRow> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let row = store::create(conn, org, new)
            .await?
            .ok_or_else(|| ApiError::Conflict("an EHR connection with this issuer is already registered".into()))?;
        audit::record(
            conn,
            AuditEntry {
                org: actor.audit_org(org),
                actor: actor.name(),
                action: AuditAction::EhrConnectionCreated,
                resource_type: "ehr_connection",
                resource_id: Some(row.id.to_string()),
                detail: json!({"issuer": row.issuer, "client_auth": row.client_auth, "frame_origins": row.frame_origins}),
            },
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Deletes a connection with its pending launches; its launch tokens stop here at once. With
/// it, the issuers of the CDS clients that lost their link (for their caches to forget).
pub async fn delete(
    conn: &mut AsyncPgConnection,
    status: &ClientStatusCache,
    actor: Actor<'_>,
    org: OrgId,
    id: Uuid,
) -> ApiResult<(ConnectionRow, Vec<String>)> {
    let deleted = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let (row, unlinked) = store::delete(conn, org, id).await?.ok_or(ApiError::NotFound)?;
            audit::record(
                conn,
                AuditEntry {
                    org: actor.audit_org(org),
                    actor: actor.name(),
                    action: AuditAction::EhrConnectionDeleted,
                    resource_type: "ehr_connection",
                    resource_id: Some(id.to_string()),
                    detail: json!({"issuer": row.issuer, "cds_clients_unlinked": unlinked.len()}),
                },
            )
            .await?;
            Ok((row, unlinked))
        })
        .await?;
    status.forget(org, &status_key(id));
    Ok(deleted)
}
