//! Webhooks (Standard Webhooks 1.0): an organisation's endpoints receive its events
//! (`alert.created`, `alert.resolved`, `response.created`, `response.voided`) as signed
//! messages. Messages are queued in the transaction that produced the event (the outbox
//! worker's, for alerts and responses) and sent, at least once, by delivery workers in every
//! instance, with retries on the configured schedule.

pub mod consumer;
pub mod deliver;
pub mod kept;
pub mod model;
pub mod recovery;
pub mod routes;
pub mod service;
pub mod signature;
pub mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ids::OrgId;
use crate::outbox::{Announcement, OutboxEvent, OutboxKind};
use crate::responses::model::Administration;
use store::{EndpointRow, NewDelivery};

/// A response's event as a message: its id is the outbox event's (so a replay resends the
/// same `webhook-id`).
pub fn response_announcement(
    id: Uuid,
    event_type: &'static str,
    timestamp: DateTime<Utc>,
    response: &Administration,
) -> Announcement {
    Announcement {
        id,
        event_type,
        timestamp,
        full: serde_json::to_value(response).unwrap_or(Value::Null),
        id_only: json!({"id": response.id, "instrument": response.instrument, "patient": response.patient}),
    }
}

/// The message `POST /v1/webhooks/{id}/test` sends.
pub fn test_announcement(endpoint: Uuid) -> Announcement {
    let data = json!({"webhook_id": endpoint, "message": "A test event from rapport."});
    Announcement::new(model::TEST_EVENT, data.clone(), data)
}

/// True when some endpoint takes events of this type.
pub fn wanted(endpoints: &[EndpointRow], event_type: &str) -> bool {
    endpoints.iter().any(|e| e.events.iter().any(|t| t == event_type))
}

/// Queues a message of each announcement for each endpoint subscribed to its type, in the
/// caller's transaction. Returns how many were queued.
pub async fn publish(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    endpoints: &[EndpointRow],
    announcements: &[&Announcement],
) -> diesel::QueryResult<usize> {
    let deliveries: Vec<NewDelivery> = endpoints
        .iter()
        .flat_map(|endpoint| {
            announcements
                .iter()
                .filter(|a| endpoint.events.iter().any(|t| t == a.event_type))
                .map(|a| NewDelivery {
                    endpoint_id: endpoint.id,
                    event_id: a.id,
                    event_type: a.event_type.to_string(),
                    body: a.body(&endpoint.payload),
                })
        })
        .collect();
    Ok(store::queue(conn, org, deliveries).await?.len())
}

/// The webhook event type of an outbox event's kind, if it has one (a rescore is internal).
fn response_event_type(kind: OutboxKind) -> Option<&'static str> {
    match kind {
        OutboxKind::ResponseCreated | OutboxKind::ResponseVoided => Some(kind.as_str()),
        OutboxKind::ResponseRescored => None,
    }
}

/// Queues the webhook messages of one organisation's processed outbox events: the
/// responses created or voided, and what earlier consumers announced (the alerts raised or
/// resolved), for its active endpoints, and keeps the events any of its endpoints (active
/// or disabled) takes, for replays. Without an endpoint this is one indexed read and nothing
/// else.
pub async fn publish_changes(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    outbox: &[&OutboxEvent],
    announced: &[Announcement],
) -> diesel::QueryResult<usize> {
    let all = store::list(conn, org).await?;
    if all.is_empty() {
        return Ok(0);
    }
    let endpoints: Vec<EndpointRow> = all.iter().filter(|e| e.status == "active").cloned().collect();
    let mut messages: Vec<&Announcement> = announced.iter().filter(|a| wanted(&all, a.event_type)).collect();
    let responses: Vec<(&OutboxEvent, &'static str)> = outbox
        .iter()
        .filter_map(|e| {
            let event_type = response_event_type(e.kind)?;
            wanted(&all, event_type).then_some((*e, event_type))
        })
        .collect();
    let mut made: Vec<Announcement> = Vec::new();
    if !responses.is_empty() {
        let ids: Vec<Uuid> = responses.iter().map(|(e, _)| e.response_id).collect();
        let rows: BTreeMap<Uuid, Administration> = crate::responses::store::find_many(conn, org, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id, Administration::from(row)))
            .collect();
        for (e, event_type) in responses {
            if let Some(response) = rows.get(&e.response_id) {
                made.push(response_announcement(e.id, event_type, e.created_at, response));
            }
        }
    }
    messages.extend(made.iter());
    kept::keep(conn, org, &messages).await?;
    publish(conn, org, &endpoints, &messages).await
}
