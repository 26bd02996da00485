//! CDS Hooks 2.0 shapes (discovery, cards, feedback) and the `/v1/cds-clients` resource.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The three services rapport offers, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `rapport-alliance` on `patient-view`: the patient's open alerts.
    Alliance,
    /// `rapport-prescribing` on `order-select`: the alliance when a medication is selected.
    Prescribing,
    /// `rapport-prescribing-sign` on `order-sign`: the same when medication orders are signed.
    PrescribingSign,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Alliance, Service::Prescribing, Service::PrescribingSign];

    pub fn id(self) -> &'static str {
        match self {
            Service::Alliance => "rapport-alliance",
            Service::Prescribing => "rapport-prescribing",
            Service::PrescribingSign => "rapport-prescribing-sign",
        }
    }

    pub fn from_id(id: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn hook(self) -> &'static str {
        match self {
            Service::Alliance => "patient-view",
            Service::Prescribing => "order-select",
            Service::PrescribingSign => "order-sign",
        }
    }

    pub fn describe(self) -> CdsService {
        let (title, description) = match self {
            Service::Alliance => (
                "rapport: the working alliance",
                "When a chart opens: the patient's open rapport alerts (safety flags first, then ruptures, \
                 deteriorations and scores below the cut-off), at most five cards and a count of the rest.",
            ),
            Service::Prescribing => (
                "rapport: the alliance when prescribing",
                "When a medication order is selected: the patient's latest working alliance, its trend and \
                 why it matters for the drug's effect; an open safety flag first.",
            ),
            Service::PrescribingSign => (
                "rapport: the alliance when signing a prescription",
                "When medication orders are signed: the patient's latest working alliance, its trend and \
                 why it matters for the drug's effect; an open safety flag first.",
            ),
        };
        CdsService {
            id: self.id().to_string(),
            hook: self.hook().to_string(),
            title: title.to_string(),
            description: description.to_string(),
        }
    }

    pub fn is_prescribing(self) -> bool {
        matches!(self, Service::Prescribing | Service::PrescribingSign)
    }
}

/// One service of the discovery document (no `prefetch`: rapport holds its own data).
#[derive(Debug, Serialize, ToSchema)]
pub struct CdsService {
    #[schema(example = "rapport-alliance")]
    pub id: String,
    #[schema(example = "patient-view")]
    pub hook: String,
    pub title: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CdsDiscovery {
    pub services: Vec<CdsService>,
}

/// A card's urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Indicator {
    Critical,
    Warning,
    Info,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::Critical => "critical",
            Indicator::Warning => "warning",
            Indicator::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardSource {
    /// Always `rapport`.
    pub label: String,
    /// `RAPPORT_PUBLIC_URL`.
    pub url: String,
}

/// The "Open in rapport" SMART link, on cards for a CDS client tied to an EHR connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardLink {
    pub label: String,
    /// Always `smart`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `{RAPPORT_PUBLIC_URL}/launch`.
    pub url: String,
    /// JSON text: `{"patient", "instrument", "alert"}`.
    #[serde(rename = "appContext")]
    pub app_context: String,
    /// Always false: the clinician chooses to open rapport.
    #[serde(rename = "autoLaunchable")]
    pub auto_launchable: bool,
}

/// A CDS Hooks card (no suggestions, no system actions).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Card {
    /// New for every card issued; feedback names it.
    pub uuid: Uuid,
    /// Fewer than 140 characters.
    pub summary: String,
    pub indicator: Indicator,
    /// GitHub-flavoured Markdown.
    pub detail: String,
    pub source: CardSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<CardLink>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CdsCards {
    pub cards: Vec<Card>,
}

/// The CDS Hooks request rapport reads (other members are ignored; `fhirAuthorization` is
/// never stored or logged).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct CdsRequestDoc {
    #[schema(example = "patient-view")]
    pub hook: String,
    pub hookInstance: String,
    /// `userId`, `patientId`, `encounterId`; for the order hooks `draftOrders` (a FHIR
    /// Bundle) and, for `order-select`, `selections`.
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    pub fhirServer: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub fhirAuthorization: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub prefetch: Option<serde_json::Value>,
}

/// `{"feedback": [{"card", "outcome", "outcomeTimestamp", "overrideReason"}]}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CdsFeedbackDoc {
    #[schema(value_type = Vec<Object>)]
    pub feedback: Vec<serde_json::Value>,
}

/// Feedback on a card that carried an alert, as `GET /v1/alerts/{id}` shows it.
#[derive(Debug, Clone, Serialize, ToSchema, diesel::Queryable)]
pub struct CardFeedback {
    /// `accepted` or `overridden`.
    pub outcome: String,
    pub outcome_timestamp: DateTime<Utc>,
    /// The CDS client's `overrideReason` (`{reason: Coding, userComment}`), as sent.
    #[schema(value_type = Option<Object>)]
    pub override_reason: Option<serde_json::Value>,
    pub received_at: DateTime<Utc>,
}

/// A CDS client to trust: an EHR whose JWTs call rapport's services for this organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCdsClient {
    /// The `iss` of the client's JWTs (unique across organisations).
    #[schema(example = "https://ehr.north-clinic.example")]
    pub issuer: String,
    /// Where the client publishes its keys (https, the webhook target rules); or `jwks`.
    pub jwks_uri: Option<String>,
    /// The client's public keys inline; or `jwks_uri`.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
    /// The EHR connection (SMART App Launch) whose launch the cards' "Open in rapport" link
    /// uses; without one, cards carry no link.
    pub ehr_connection_id: Option<Uuid>,
}

/// A registered CDS client.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CdsClient {
    pub id: Uuid,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub description: String,
    pub ehr_connection_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CdsClientList {
    pub items: Vec<CdsClient>,
}
