//! The identity-provider use cases: each opens its transaction, writes its audit event under
//! the acting `Actor`, and makes this instance forget what it cached of the provider.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::IdentityVerifier;
use super::store::{self, ProviderRow};
use crate::audit::{self, Actor, AuditEntry};
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;

/// A provider to trust (already checked).
pub struct NewProvider<'a> {
    pub issuer: &'a str,
    pub jwks_uri: &'a str,
    pub audience: &'a str,
    pub scope_claim: &'a str,
}

/// Trusts a provider for `org`; 409 when any organisation already trusts its issuer.
pub async fn create(
    conn: &mut AsyncPgConnection,
    verifier: &IdentityVerifier,
    actor: Actor<'_>,
    org: OrgId,
    new: &NewProvider<'_>,
) -> ApiResult<ProviderRow> {
    let created = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = store::create(conn, org, new.issuer, new.jwks_uri, new.audience, new.scope_claim)
                .await?
                .ok_or_else(|| ApiError::Conflict("an organisation already trusts this issuer".into()))?;
            audit::record(
                conn,
                AuditEntry {
                    org: actor.audit_org(org),
                    actor: actor.name(),
                    action: crate::audit::AuditAction::IdentityProviderCreated,
                    resource_type: "identity_provider",
                    resource_id: Some(row.id.to_string()),
                    detail: json!({"issuer": row.issuer, "audience": row.audience}),
                },
            )
            .await?;
            Ok(row)
        })
        .await?;
    verifier.forget(&created.issuer);
    Ok(created)
}

/// Stops trusting a provider (its tokens stop within the cache time on other instances, at
/// once here); 404 for an unknown id.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    verifier: &IdentityVerifier,
    actor: Actor<'_>,
    org: OrgId,
    id: Uuid,
) -> ApiResult<ProviderRow> {
    let deleted = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let row = store::delete(conn, org, id).await?.ok_or(ApiError::NotFound)?;
            audit::record(
                conn,
                AuditEntry {
                    org: actor.audit_org(org),
                    actor: actor.name(),
                    action: crate::audit::AuditAction::IdentityProviderDeleted,
                    resource_type: "identity_provider",
                    resource_id: Some(id.to_string()),
                    detail: json!({"issuer": row.issuer}),
                },
            )
            .await?;
            Ok(row)
        })
        .await?;
    verifier.forget(&deleted.issuer);
    verifier.jwks.forget(&deleted.jwks_uri);
    Ok(deleted)
}
