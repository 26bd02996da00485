//! The CDS client use cases: each opens its transaction, writes its audit event under the
//! acting `Actor`, and makes this instance forget what it cached of the client.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::CdsVerifier;
use super::store::{self, CdsClientRow, NewRow};
use crate::audit::{self, Actor, AuditAction, AuditEntry};
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;

/// Trusts a CDS client for `org`; 409 when any organisation already has its issuer.
pub async fn create(
    conn: &mut AsyncPgConnection,
    verifier: &CdsVerifier,
    actor: Actor<'_>,
    org: OrgId,
    new: &NewRow<'_>,
) -> ApiResult<CdsClientRow> {
    let created = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = store::create(conn, org, new)
                .await?
                .ok_or_else(|| ApiError::Conflict("a CDS client with this issuer is already registered".into()))?;
            audit::record(
                conn,
                AuditEntry {
                    org: actor.audit_org(org),
                    actor: actor.name(),
                    action: AuditAction::CdsClientCreated,
                    resource_type: "cds_client",
                    resource_id: Some(row.id.to_string()),
                    detail: json!({"issuer": row.issuer, "ehr_connection_id": row.ehr_connection_id}),
                },
            )
            .await?;
            Ok(row)
        })
        .await?;
    verifier.forget(&created.issuer);
    Ok(created)
}

/// Stops trusting a CDS client: refused here at once, on other instances within the
/// client cache time; 404 for an unknown id.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    verifier: &CdsVerifier,
    actor: Actor<'_>,
    org: OrgId,
    id: Uuid,
) -> ApiResult<CdsClientRow> {
    let deleted = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = store::delete(conn, org, id).await?.ok_or(ApiError::NotFound)?;
            audit::record(
                conn,
                AuditEntry {
                    org: actor.audit_org(org),
                    actor: actor.name(),
                    action: AuditAction::CdsClientDeleted,
                    resource_type: "cds_client",
                    resource_id: Some(id.to_string()),
                    detail: json!({"issuer": row.issuer}),
                },
            )
            .await?;
            Ok(row)
        })
        .await?;
    verifier.forget(&deleted.issuer);
    if let Some(uri) = &deleted.jwks_uri {
        verifier.jwks.forget(uri);
    }
    Ok(deleted)
}
