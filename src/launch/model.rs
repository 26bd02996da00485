//! SMART App Launch shapes: the `/v1/ehr-connections` resource and the launch session the
//! console starts with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// How rapport authenticates at the EHR's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with `client_id` and `client_secret`.
    ClientSecretBasic,
    /// A client assertion signed with the key pair rapport made for the connection.
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<ClientAuth> {
        match s {
            "client_secret_basic" => Some(ClientAuth::ClientSecretBasic),
            "private_key_jwt" => Some(ClientAuth::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// An EHR connection to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEhrConnection {
    /// The EHR's FHIR base URL: the `iss` of its launches (unique across organisations).
    #[schema(example = "https://ehr.north-clinic.example/fhir")]
    pub issuer: String,
    /// rapport's client id at that EHR.
    pub client_id: String,
    #[schema(value_type = String, example = "private_key_jwt")]
    pub client_auth: String,
    /// For `client_secret_basic`: the secret the EHR gave rapport (write-only).
    pub client_secret: Option<String>,
    /// The EHR UI origins that may frame the launched view (default none).
    #[serde(default)]
    pub frame_origins: Vec<String>,
}

/// A registered EHR connection (its secret is never shown).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EhrConnection {
    pub id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub frame_origins: Vec<String>,
    /// For `private_key_jwt`: where rapport publishes the public key the EHR registers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EhrConnectionList {
    pub items: Vec<EhrConnection>,
}

/// `POST /v1/launch/session`: the one-time code from the launch redirect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchSessionRequest {
    pub code: String,
}

/// A launch session: a rapport token bound to the organisation and one patient.
#[derive(Debug, Serialize, ToSchema)]
pub struct LaunchSession {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds: at most an hour, and never longer than the EHR's token.
    pub expires_in: i64,
    #[schema(example = "responses:read")]
    pub scope: &'static str,
    /// The patient the token reads (the EHR's Patient id, rapport's patient reference).
    pub patient: String,
    /// Who launched: the id_token's `name`, else its `fhirUser`.
    pub user: String,
    /// The id_token's `fhirUser`.
    pub fhir_user: String,
    /// The alert a CDS card's link opened on (when its context named this patient's alert).
    pub alert: Option<Uuid>,
    /// The instrument that link named.
    pub instrument: Option<String>,
}
