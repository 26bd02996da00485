//! The outbox consumer that turns a batch into webhook messages: each organisation's
//! responses created or voided, and whatever earlier consumers announced (alerts raised or
//! resolved), queued for the endpoints subscribed to them.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use crate::error::ApiError;
use crate::outbox::{Batch, Consumer, OutboxEvent};

/// Registered last: it sends what the consumers before it announced.
pub struct WebhookMessages;

impl Consumer for WebhookMessages {
    fn name(&self) -> &'static str {
        "webhook messages"
    }

    fn consume<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            // One organisation at a time: every tenant query names its organisation.
            for org in batch.organisations() {
                let events: Vec<&OutboxEvent> = batch.events_of(org).collect();
                super::publish_changes(conn, org, &events, batch.announced(org)).await?;
            }
            Ok(())
        })
    }
}
