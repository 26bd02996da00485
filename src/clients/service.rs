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
                action: "client.created",
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
