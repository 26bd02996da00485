//! What the outbox worker hands its consumers: a `Batch` of events grouped by series, under
//! each series' evaluation lock, inside the transaction that marks the events processed.
//! Consumers run in their registration order, so a later one sees what an earlier one
//! announced (alerts announce what they raised; webhook messages are made from it).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

use super::OutboxEvent;
use crate::error::ApiError;
use crate::ids::OrgId;
use crate::series::{SeriesKey, SeriesPoint};

/// Something that happened and is told to the outside world (a webhook message today):
/// its id (the message's `webhook-id`), type, time and the `data` of both payload forms.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub id: Uuid,
    pub event_type: &'static str,
    pub timestamp: DateTime<Utc>,
    /// `data` for `full` endpoints.
    pub full: Value,
    /// `data` for `id-only` endpoints.
    pub id_only: Value,
}

impl Announcement {
    /// A new announcement, now, with a fresh id.
    pub fn new(event_type: &'static str, full: Value, id_only: Value) -> Announcement {
        Announcement {
            id: Uuid::new_v4(),
            event_type,
            timestamp: Utc::now(),
            full,
            id_only,
        }
    }

    /// The exact body sent (and signed) to an endpoint with this payload setting.
    pub fn body(&self, payload: &str) -> String {
        self.body_as(self.event_type, payload)
    }

    /// The body with `event_type` as its type (a kept event's type is read back as text).
    pub fn body_as(&self, event_type: &str, payload: &str) -> String {
        json!({
            "type": event_type,
            "timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": if payload == "id-only" { &self.id_only } else { &self.full },
        })
        .to_string()
    }
}

/// One batch of outbox events: every pending event of the series named, the series in a
/// fixed order (their locks are held), each series' points as read once under those locks
/// (every consumer works from them instead of reading the series again), and what
/// consumers announced so far.
pub struct Batch {
    pub events: Vec<OutboxEvent>,
    pub series: Vec<SeriesKey>,
    /// The points of each of `series`, in its order.
    pub points: Vec<Vec<SeriesPoint>>,
    announced: BTreeMap<OrgId, Vec<Announcement>>,
}

impl Batch {
    pub fn new(events: Vec<OutboxEvent>, series: Vec<SeriesKey>, points: Vec<Vec<SeriesPoint>>) -> Batch {
        Batch {
            events,
            series,
            points,
            announced: BTreeMap::new(),
        }
    }

    /// The organisations of the batch's events, each once, in order.
    pub fn organisations(&self) -> Vec<OrgId> {
        let mut orgs: Vec<OrgId> = self.events.iter().map(|e| e.org_id).collect();
        orgs.sort();
        orgs.dedup();
        orgs
    }

    /// The events of one organisation.
    pub fn events_of(&self, org: OrgId) -> impl Iterator<Item = &OutboxEvent> {
        self.events.iter().filter(move |e| e.org_id == org)
    }

    /// Tells later consumers (and, through them, the outside world) about something.
    pub fn announce(&mut self, org: OrgId, announcement: Announcement) {
        self.announced.entry(org).or_default().push(announcement);
    }

    /// What earlier consumers announced for one organisation.
    pub fn announced(&self, org: OrgId) -> &[Announcement] {
        self.announced.get(&org).map_or(&[], Vec::as_slice)
    }
}

/// A consumer of outbox batches. It runs inside the worker's transaction: its writes commit
/// with the events' processing, or none do. It must be idempotent (an event may be
/// processed again after a crash) and must filter every query by organisation.
pub trait Consumer: Send + Sync {
    /// A short name, for logs.
    fn name(&self) -> &'static str;

    fn consume<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}
