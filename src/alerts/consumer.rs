//! The outbox consumer that brings each series' alerts to what the series now says, and
//! announces every alert raised or resolved (`alert.created`, `alert.resolved`) to the
//! consumers after it.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::AlertEvaluator;
use super::model::Alert;
use crate::error::ApiError;
use crate::outbox::{Announcement, Batch, Consumer};

impl Consumer for AlertEvaluator {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn consume<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let changes = super::evaluate_many(conn, self, &batch.series, &batch.points).await?;
            for (org, event_type, row) in changes {
                batch.announce(org, announcement(event_type, &Alert::from(row)));
            }
            Ok(())
        })
    }
}

/// An alert's change as the outside world is told it.
pub fn announcement(event_type: &'static str, alert: &Alert) -> Announcement {
    Announcement::new(
        event_type,
        serde_json::to_value(alert).unwrap_or(Value::Null),
        json!({"id": alert.id, "kind": alert.kind, "patient": alert.patient}),
    )
}
