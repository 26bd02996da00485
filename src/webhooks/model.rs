//! Webhook endpoints and deliveries as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The events an endpoint may subscribe to (`webhook.test` is sent on request only).
pub const EVENT_TYPES: [&str; 4] = ["alert.created", "alert.resolved", "response.created", "response.voided"];
pub const TEST_EVENT: &str = "webhook.test";

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https` URL (at most 2,048 characters) that does not reach a loopback, private,
    /// link-local, unique-local, multicast or unspecified address.
    pub url: String,
    /// One or more of `alert.created`, `alert.resolved`, `response.created`, `response.voided`.
    pub events: Vec<String>,
    /// At most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// `full` (default: the alert or response as the API shows it) or `id-only`
    /// (`{"id", "kind" or "instrument", "patient"}`).
    #[serde(default)]
    pub payload: Option<String>,
}

/// An endpoint (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `full` or `id-only`.
    pub payload: String,
    /// `active`, or `disabled` once a delivery was answered 410 Gone.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Until when the previous secret still signs alongside the current one (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// An endpoint with its signing secret: the answer to creation and to rotation, the only
/// places the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing key.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<Webhook>,
}

/// One event's message to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    /// The `webhook-id` header: the same on every attempt.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last attempt (null when it got no answer).
    pub last_status: Option<i32>,
    /// Why the last attempt failed (status, timeout, connection or refused address).
    pub last_error: Option<String>,
    /// When a pending delivery is next tried.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed` (default: all).
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}
