//! Alerts as clients read them (the OpenAPI schema `Alert`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// What an alert stands for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Rupture,
    BelowCutoff,
    Deterioration,
    ItemFlag,
    /// A run of totals beyond the expected-response bound (the organisation's own model).
    NotOnTrack,
}

/// Where an alert stands: `withdrawn` when its source was voided or the series no longer
/// says it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
    Withdrawn,
}

crate::db::text_enum!(AlertKind {
    Rupture => "rupture",
    BelowCutoff => "below_cutoff",
    Deterioration => "deterioration",
    ItemFlag => "item_flag",
    NotOnTrack => "not_on_track",
});
crate::db::text_enum!(AlertStatus {
    Open => "open",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
    Withdrawn => "withdrawn",
});

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::Rupture,
        AlertKind::BelowCutoff,
        AlertKind::Deterioration,
        AlertKind::ItemFlag,
        AlertKind::NotOnTrack,
    ];
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
        AlertStatus::Withdrawn,
    ];
}

/// A fact a clinician should act on, derived from a stored series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub kind: AlertKind,
    pub status: AlertStatus,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    pub instrument: String,
    pub instrument_version: i32,
    #[schema(value_type = String)]
    pub rater: crate::scoring::Rater,
    /// The response that raised it.
    pub response_id: Uuid,
    /// rupture `{from, to, drop, rule}`, below_cutoff `{total, cutoff, comparator}`,
    /// deterioration `{baseline, latest, change, rule}`, item_flag `{flag, item, answer}`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by_response_id: Option<Uuid>,
}

/// One alert as `GET /v1/alerts/{id}` shows it: with the feedback CDS clients sent on the
/// cards that carried it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: Alert,
    /// Feedback on the CDS cards that carried this alert, oldest first.
    pub cds_feedback: Vec<crate::cds::model::CardFeedback>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (default), `acknowledged`, `resolved`, `withdrawn` or `all`.
    pub status: Option<String>,
    /// `rupture`, `below_cutoff`, `deterioration`, `item_flag` or `not_on_track`.
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub patient: Option<String>,
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
    pub instrument: Option<String>,
    /// Only alerts raised at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// Optional, at most 1,000 characters.
    #[serde(default)]
    pub note: Option<String>,
}
