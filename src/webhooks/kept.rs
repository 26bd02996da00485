//! Kept events: every announcement to an organisation with webhook endpoints, kept
//! `RAPPORT_EVENT_RETENTION_DAYS` for replays (same event ids, the payload as it was sent),
//! pruned by the delivery workers, and erased with their patient.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::store::{EndpointRow, NewDelivery};
use crate::ids::{OrgId, WebhookId};
use crate::outbox::Announcement;
use crate::schema::{webhook_deliveries, webhook_endpoints, webhook_events};

/// Keeps announcements (each once; again changes nothing), in the caller's transaction.
pub async fn keep(conn: &mut AsyncPgConnection, org: OrgId, announcements: &[&Announcement]) -> QueryResult<usize> {
    if announcements.is_empty() {
        return Ok(0);
    }
    let rows: Vec<_> = announcements
        .iter()
        .map(|a| {
            (
                webhook_events::org_id.eq(org),
                webhook_events::id.eq(a.id),
                webhook_events::event_type.eq(a.event_type),
                webhook_events::patient.eq(a.id_only.get("patient").and_then(Value::as_str).map(str::to_string)),
                webhook_events::occurred_at.eq(a.timestamp),
                webhook_events::full_data.eq(a.full.to_string()),
                webhook_events::id_only_data.eq(a.id_only.to_string()),
            )
        })
        .collect();
    diesel::insert_into(webhook_events::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
}

#[derive(Queryable)]
struct KeptRow {
    id: Uuid,
    event_type: String,
    occurred_at: DateTime<Utc>,
    full_data: String,
    id_only_data: String,
}

/// Re-queues, for `endpoint`, every kept event of a type it takes that occurred at or after
/// `since`: the same event id (a receiver deduplicates) and the body as it was sent. A
/// message already queued for that event is sent again. Returns how many were queued.
pub async fn replay(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    endpoint: &EndpointRow,
    since: DateTime<Utc>,
) -> QueryResult<usize> {
    let rows: Vec<KeptRow> = webhook_events::table
        .filter(webhook_events::org_id.eq(org))
        .filter(webhook_events::occurred_at.ge(since))
        .filter(webhook_events::event_type.eq_any(&endpoint.events))
        .order((webhook_events::occurred_at.asc(), webhook_events::id.asc()))
        .select((
            webhook_events::id,
            webhook_events::event_type,
            webhook_events::occurred_at,
            webhook_events::full_data,
            webhook_events::id_only_data,
        ))
        .load(conn)
        .await?;
    let deliveries: Vec<NewDelivery> = rows
        .into_iter()
        .map(|r| {
            let announcement = Announcement {
                id: r.id,
                // A kept type is one of the endpoint's own, which are checked at registration.
                event_type: "",
                timestamp: r.occurred_at,
                full: serde_json::from_str(&r.full_data).unwrap_or(Value::Null),
                id_only: serde_json::from_str(&r.id_only_data).unwrap_or(Value::Null),
            };
            NewDelivery {
                endpoint_id: endpoint.id,
                event_id: r.id,
                body: announcement.body_as(&r.event_type, &endpoint.payload),
                event_type: r.event_type,
            }
        })
        .collect();
    let n = deliveries.len();
    for chunk in deliveries.chunks(500) {
        let values: Vec<_> = chunk
            .iter()
            .map(|d| {
                (
                    webhook_deliveries::org_id.eq(org),
                    webhook_deliveries::id.eq(Uuid::new_v4()),
                    webhook_deliveries::endpoint_id.eq(d.endpoint_id),
                    webhook_deliveries::event_id.eq(d.event_id),
                    webhook_deliveries::event_type.eq(&d.event_type),
                    webhook_deliveries::body.eq(&d.body),
                )
            })
            .collect();
        diesel::insert_into(webhook_deliveries::table)
            .values(values)
            .on_conflict((
                webhook_deliveries::org_id,
                webhook_deliveries::endpoint_id,
                webhook_deliveries::event_id,
            ))
            .do_update()
            .set((
                webhook_deliveries::status.eq("pending"),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at.eq(Utc::now()),
                webhook_deliveries::last_status.eq(None::<i32>),
                webhook_deliveries::last_error.eq(None::<String>),
                webhook_deliveries::delivered_at.eq(None::<DateTime<Utc>>),
                webhook_deliveries::body.eq(diesel::upsert::excluded(webhook_deliveries::body)),
            ))
            .execute(conn)
            .await?;
    }
    Ok(n)
}

/// Re-activates an endpoint (disabled by a 410, say); `None` for an unknown id.
pub async fn enable(conn: &mut AsyncPgConnection, org: OrgId, id: WebhookId) -> QueryResult<Option<EndpointRow>> {
    diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::org_id.eq(org).and(webhook_endpoints::id.eq(id)))
        .set((
            webhook_endpoints::status.eq("active"),
            webhook_endpoints::disabled_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(EndpointRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Forgets kept events older than the retention (every organisation's: the delivery
/// workers' housekeeping). Returns how many.
pub async fn prune(conn: &mut AsyncPgConnection, retention: std::time::Duration) -> QueryResult<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    diesel::delete(webhook_events::table)
        .filter(webhook_events::kept_at.lt(cutoff))
        .execute(conn)
        .await
}
