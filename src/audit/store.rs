use crate::ids::OrgId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::AuditEvent;
use crate::schema::audit_events;

pub struct AuditEntry<'a> {
    pub org: OrgId,
    pub actor: &'a str,
    pub action: super::AuditAction,
    pub resource_type: &'a str,
    pub resource_id: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewAuditEventRow<'a> {
    org_id: OrgId,
    id: Uuid,
    actor: &'a str,
    action: super::AuditAction,
    resource_type: &'a str,
    resource_id: Option<String>,
    detail: serde_json::Value,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub seq: i64,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: serde_json::Value,
}

impl From<AuditEventRow> for AuditEvent {
    fn from(r: AuditEventRow) -> Self {
        AuditEvent {
            id: r.id,
            occurred_at: r.occurred_at,
            actor: r.actor,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            detail: r.detail,
        }
    }
}

pub async fn record(conn: &mut AsyncPgConnection, entry: AuditEntry<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(NewAuditEventRow {
            org_id: entry.org,
            id: Uuid::new_v4(),
            actor: entry.actor,
            action: entry.action,
            resource_type: entry.resource_type,
            resource_id: entry.resource_id,
            detail: entry.detail,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// Newest first; `before` is the last seen sequence number.
pub async fn list(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditEventRow>> {
    let mut query = audit_events::table
        .filter(audit_events::org_id.eq(org))
        .select(AuditEventRow::as_select())
        .order(audit_events::seq.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(seq) = before {
        query = query.filter(audit_events::seq.lt(seq));
    }
    query.load(conn).await
}
