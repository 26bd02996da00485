//! The instrument-lifecycle use cases (a new draft, a replaced draft, publish, retire): each
//! opens its transaction and writes its audit event under the acting `Actor`; handlers
//! validate and translate shapes.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;

use super::model::InstrumentStatus;
use super::store::{self, VersionRow};
use crate::audit::{self, Actor, AuditEntry};
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;

async fn record(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    action: crate::audit::AuditAction,
    key: &str,
    version: i32,
) -> ApiResult<()> {
    audit::record(
        conn,
        AuditEntry {
            org: actor.audit_org(org),
            actor: actor.name(),
            action,
            resource_type: "instrument_version",
            resource_id: Some(format!("{key}/{version}")),
            detail: json!({"key": key, "version": version}),
        },
    )
    .await?;
    Ok(())
}

/// 409 for a built-in instrument.
pub fn read_only() -> ApiError {
    ApiError::Conflict("built-in instruments are read-only".into())
}

/// The answer when a write finds no draft: 404 when the version does not exist, 409 when
/// it exists but is not a draft (published versions are immutable) or is a built-in.
pub async fn not_a_draft(conn: &mut AsyncPgConnection, org: OrgId, key: &str, version: i32) -> ApiError {
    match store::find_version(conn, org, key, version).await {
        Ok(Some(row)) if row.org_id.is_none() => read_only(),
        Ok(Some(row)) => ApiError::Conflict(format!(
            "version {version} is {}, not a draft; it cannot change",
            row.status
        )),
        Ok(None) => ApiError::NotFound,
        Err(e) => e.into(),
    }
}

/// A new draft version of `key` (its first, or the next); 409 while another draft is open.
pub async fn create_draft(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    key: &str,
    definition: &serde_json::Value,
) -> ApiResult<VersionRow> {
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let row = store::insert_draft(conn, org, key, definition).await?.map_err(|open| {
            ApiError::Conflict(format!(
                "version {open} of `{key}` is an open draft: replace it (PUT) or publish it first"
            ))
        })?;
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::InstrumentCreated,
            &row.key,
            row.version,
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Replaces a draft's definition; 404/409 when there is no such draft.
pub async fn replace_draft(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    key: &str,
    version: i32,
    definition: &serde_json::Value,
) -> ApiResult<VersionRow> {
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let Some(row) = store::update_draft(conn, org, key, version, definition).await? else {
            return Err(not_a_draft(conn, org, key, version).await);
        };
        record(
            conn,
            actor,
            org,
            crate::audit::AuditAction::InstrumentUpdated,
            key,
            version,
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Publishes a draft or retires a published version; repeating a transition changes nothing.
pub async fn change_status(
    conn: &mut AsyncPgConnection,
    actor: Actor<'_>,
    org: OrgId,
    key: &str,
    version: i32,
    to: InstrumentStatus,
) -> ApiResult<VersionRow> {
    let (from, action) = match to {
        InstrumentStatus::Published => (InstrumentStatus::Draft, crate::audit::AuditAction::InstrumentPublished),
        _ => (
            InstrumentStatus::Published,
            crate::audit::AuditAction::InstrumentRetired,
        ),
    };
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let Some(existing) = store::find_version(conn, org, key, version).await? else {
            return Err(ApiError::NotFound);
        };
        if existing.org_id.is_none() {
            return Err(read_only());
        }
        if existing.status == to.as_str() {
            return Ok(existing);
        }
        let Some(row) = store::transition(conn, org, key, version, from.as_str(), to.as_str()).await? else {
            return Err(ApiError::Conflict(format!(
                "version {version} is {}; only a {} version can become {}",
                existing.status,
                from.as_str(),
                to.as_str()
            )));
        };
        record(conn, actor, org, action, key, version).await?;
        Ok(row)
    })
    .await
}
