//! The webhook-endpoint use cases, one implementation each: each opens its transaction and
//! writes its audit event under the acting `Actor`; handlers only translate shapes.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;

use super::kept;
use super::store::{self, EndpointRow, NewEndpoint};
use crate::audit::{self, Actor, AuditEntry};
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, WebhookId};

/// How long a replaced secret keeps signing.
pub const ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The audit event of a change to an endpoint, in the caller's transaction.
async fn record(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    action: crate::audit::AuditAction,
    id: WebhookId,
    detail: serde_json::Value,
) -> ApiResult<()> {
    audit::record(
        conn,
        AuditEntry {
            org: actor.audit_org(org),
            actor: actor.name(),
            action,
            resource_type: "webhook",
            resource_id: Some(id.to_string()),
            detail,
        },
    )
    .await?;
    Ok(())
}

/// Registers an endpoint (already checked).
pub async fn create(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    new: &NewEndpoint<'_>,
) -> ApiResult<EndpointRow> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let row = store::create(conn, org, new).await?;
        let detail = json!({"url": row.url, "events": row.events, "payload": row.payload});
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::WebhookCreated,
            WebhookId(row.id),
            detail,
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Deletes an endpoint and its queued messages; 404 for an unknown id.
pub async fn delete(conn: &mut AsyncPgConnection, actor: Actor<'_>, org: OrgId, id: WebhookId) -> ApiResult<()> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        if !store::delete(conn, org, id).await? {
            return Err(ApiError::NotFound);
        }
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::WebhookDeleted,
            id,
            json!({}),
        )
        .await
    })
    .await
}

/// Issues `secret`; the replaced one signs alongside it for `ROTATION_OVERLAP`.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    id: WebhookId,
    secret: &str,
) -> ApiResult<EndpointRow> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let row = store::rotate(conn, org, id, secret, ROTATION_OVERLAP)
            .await?
            .ok_or(ApiError::NotFound)?;
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::WebhookSecretRotated,
            id,
            json!({}),
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Re-activates an endpoint (one a 410 disabled).
pub async fn enable(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    id: WebhookId,
) -> ApiResult<EndpointRow> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let row = kept::enable(conn, org, id).await?.ok_or(ApiError::NotFound)?;
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::WebhookEnabled,
            id,
            json!({}),
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Re-queues the kept events since `since` for an active endpoint; how many.
pub async fn replay(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    id: WebhookId,
    since: DateTime<Utc>,
) -> ApiResult<usize> {
    conn.transaction::<_, ApiError, _>(async |conn| {
        let endpoint = store::find(conn, org, id).await?.ok_or(ApiError::NotFound)?;
        if endpoint.status != "active" {
            return Err(ApiError::Conflict(
                "the endpoint is disabled: enable it first (POST /v1/webhooks/{id}/enable)".into(),
            ));
        }
        let queued = kept::replay(conn, org, &endpoint, since).await?;
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::WebhookReplayed,
            id,
            json!({"since": since, "queued": queued}),
        )
        .await?;
        Ok(queued)
    })
    .await
}
