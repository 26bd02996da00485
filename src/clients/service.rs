//! The client use cases, one implementation each, for every front door (the route and the
//! command line): each opens its transaction and writes its audit event.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;

use super::model::CreatedClient;
use super::store::{self, PreparedCredentials};
use crate::audit::{self, Actor, AuditEntry};
use crate::auth::Scope;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;

/// Creates a client of `org` holding `scopes` (already checked against what the actor may
/// grant), with its `client.created` audit event.
pub async fn create(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    name: &str,
    scopes: &[Scope],
    credentials: PreparedCredentials,
) -> ApiResult<CreatedClient> {
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let created = store::create_client(conn, org, name.trim(), scopes, credentials).await?;
        audit::record(
            conn,
            AuditEntry {
                org: actor.audit_org(org),
                actor: actor.name(),
                action: crate::audit::AuditAction::ClientCreated,
                resource_type: "client",
                resource_id: Some(created.id.to_string()),
                detail: json!({"client_id": created.client_id, "scopes": created.scopes}),
            },
        )
        .await?;
        Ok(created)
    })
    .await
}

/// Revokes a client of the caller's organisation: only a caller holding every scope the
/// client holds may (403), and never the organisation's last active administrator (409).
/// The caller's process forgets the client at once; others within the status cache's time.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    principal: &crate::auth::Principal,
    client: &store::ClientRef,
    named_as: &str,
) -> ApiResult<store::ClientRow> {
    let org = principal.org;
    let actor = Actor::Caller(principal);
    conn.transaction::<_, ApiError, _>(async move |conn| {
        // An organisation never locks itself out: its last active administrator stays.
        let admins = store::lock_active_admins(conn, org).await?;
        let target = store::find(conn, org, client).await?.ok_or(ApiError::NotFound)?;
        if let Some(beyond) = target.scopes().into_iter().find(|s| !principal.has(*s)) {
            return Err(ApiError::Forbidden(format!(
                "this client holds `{beyond}`, which the caller does not: only a client with all its scopes may revoke it"
            )));
        }
        if admins == [target.id] {
            return Err(ApiError::Conflict(
                "this is the organisation's last active client holding org:admin; create another administrator first"
                    .into(),
            ));
        }
        let row = store::revoke(conn, org, client).await?.ok_or(ApiError::NotFound)?;
        audit::record(
            conn,
            AuditEntry {
                org: actor.audit_org(org),
                actor: actor.name(),
                action: crate::audit::AuditAction::ClientRevoked,
                resource_type: "client",
                resource_id: Some(named_as.to_string()),
                detail: json!({"client_id": row.client_id}),
            },
        )
        .await?;
        Ok(row)
    })
    .await
}
