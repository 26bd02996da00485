//! Webhooks (Standard Webhooks 1.0): an organisation's endpoints receive its events
//! (`alert.created`, `alert.resolved`, `response.created`, `response.voided`) as signed
//! messages. Messages are queued in the transaction that produced the event (the outbox
//! worker's, for alerts and responses) and sent, at least once, by delivery workers in every
//! instance, with retries on the configured schedule.

pub mod deliver;
pub mod model;
pub mod routes;
pub mod signature;
pub mod store;
pub mod target;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::alerts::model::Alert;
use crate::alerts::store::AlertRow;
use crate::ids::OrgId;
use crate::responses::model::Administration;
use store::{EndpointRow, NewDelivery};

/// One event, ready to be written as a message for any endpoint.
#[derive(Debug, Clone)]
pub struct Event {
    /// The message's `webhook-id`.
    pub id: Uuid,
    pub event_type: &'static str,
    pub timestamp: DateTime<Utc>,
    /// `data` for `full` endpoints.
    pub full: Value,
    /// `data` for `id-only` endpoints.
    pub id_only: Value,
}

impl Event {
    pub fn for_alert(event_type: &'static str, alert: &Alert) -> Event {
        Event {
            id: Uuid::new_v4(),
            event_type,
            timestamp: Utc::now(),
            full: serde_json::to_value(alert).unwrap_or(Value::Null),
            id_only: json!({"id": alert.id, "kind": alert.kind, "patient": alert.patient}),
        }
    }

    pub fn for_response(
        id: Uuid,
        event_type: &'static str,
        timestamp: DateTime<Utc>,
        response: &Administration,
    ) -> Event {
        Event {
            id,
            event_type,
            timestamp,
            full: serde_json::to_value(response).unwrap_or(Value::Null),
            id_only: json!({"id": response.id, "instrument": response.instrument, "patient": response.patient}),
        }
    }

    pub fn test(endpoint: Uuid) -> Event {
        let data = json!({"webhook_id": endpoint, "message": "A test event from rapport."});
        Event {
            id: Uuid::new_v4(),
            event_type: model::TEST_EVENT,
            timestamp: Utc::now(),
            full: data.clone(),
            id_only: data,
        }
    }

    /// The exact body sent (and signed) to an endpoint with this payload setting.
    pub fn body(&self, payload: &str) -> String {
        json!({
            "type": self.event_type,
            "timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": if payload == "id-only" { &self.id_only } else { &self.full },
        })
        .to_string()
    }
}

/// True when some endpoint takes events of this type.
pub fn wanted(endpoints: &[EndpointRow], event_type: &str) -> bool {
    endpoints.iter().any(|e| e.events.iter().any(|t| t == event_type))
}

/// Queues a message of each event for each endpoint subscribed to its type, in the caller's
/// transaction. Returns how many were queued.
pub async fn publish(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    endpoints: &[EndpointRow],
    events: &[Event],
) -> diesel::QueryResult<usize> {
    let deliveries: Vec<NewDelivery> = endpoints
        .iter()
        .flat_map(|endpoint| {
            events
                .iter()
                .filter(|event| endpoint.events.iter().any(|t| t == event.event_type))
                .map(|event| NewDelivery {
                    endpoint_id: endpoint.id,
                    event_id: event.id,
                    event_type: event.event_type.to_string(),
                    body: event.body(&endpoint.payload),
                })
        })
        .collect();
    Ok(store::queue(conn, org, deliveries).await?.len())
}

/// Queues the webhook messages of one organisation's processed outbox events: the
/// responses created or voided, and the alerts raised or resolved. Without an active
/// endpoint this is one indexed read and nothing else.
pub async fn publish_changes(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    outbox: &[&crate::outbox::PendingEvent],
    alerts: &[(&'static str, AlertRow)],
) -> diesel::QueryResult<usize> {
    let endpoints = store::active(conn, org).await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut events: Vec<Event> = alerts
        .iter()
        .filter(|(event_type, _)| wanted(&endpoints, event_type))
        .map(|(event_type, row)| Event::for_alert(event_type, &Alert::from(row.clone())))
        .collect();
    let responses: Vec<(&crate::outbox::PendingEvent, &'static str)> = outbox
        .iter()
        .filter_map(|e| {
            let event_type = match e.kind.as_str() {
                "response.created" => "response.created",
                "response.voided" => "response.voided",
                _ => return None,
            };
            wanted(&endpoints, event_type).then_some((*e, event_type))
        })
        .collect();
    if !responses.is_empty() {
        let ids: Vec<Uuid> = responses.iter().map(|(e, _)| e.response_id).collect();
        let rows: BTreeMap<Uuid, Administration> = crate::responses::store::find_many(conn, org, &ids)
            .await?
            .into_iter()
            .map(|row| (row.id, Administration::from(row)))
            .collect();
        for (e, event_type) in responses {
            if let Some(response) = rows.get(&e.response_id) {
                events.push(Event::for_response(e.id, event_type, e.created_at, response));
            }
        }
    }
    publish(conn, org, &endpoints, &events).await
}
