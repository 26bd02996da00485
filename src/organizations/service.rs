//! The organisation use cases, one implementation each, for every front door (the route, the
//! command line and the start-up bootstrap): each opens its transaction and writes its audit
//! event.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;

use super::model::CreatedOrganization;
use crate::audit::{self, Actor, AuditEntry};
use crate::auth::Scope;
use crate::clients::store::PreparedCredentials;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;

/// Creates an organisation and its first administrator client (with `admin_scopes`), with
/// the `action` audit event (`organization.created`, or `organization.bootstrapped` for the
/// first start's `default`). A taken slug is 409.
pub async fn create(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    (slug, name): (&str, &str),
    admin_scopes: &[Scope],
    credentials: PreparedCredentials,
    action: crate::audit::AuditAction,
) -> ApiResult<CreatedOrganization> {
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let created = super::store::create_organization(conn, slug, name.trim(), admin_scopes, credentials)
            .await
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    ApiError::Conflict("an organisation with this slug exists".into())
                }
                other => other.into(),
            })?;
        audit::record(
            conn,
            AuditEntry {
                org: actor.audit_org(OrgId(created.id)),
                actor: actor.name(),
                action,
                resource_type: "organization",
                resource_id: Some(created.id.to_string()),
                detail: json!({"slug": created.slug, "client_id": created.admin_client.client_id}),
            },
        )
        .await?;
        Ok(created)
    })
    .await
}
