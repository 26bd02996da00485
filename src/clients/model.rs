use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::ClientId;

use crate::auth::Scope;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// A label for people, 1 to 200 characters.
    pub name: String,
    /// OAuth2 scopes; each must be one the caller holds (never `platform:admin`).
    #[schema(value_type = Vec<String>, example = json!(["responses:write"]))]
    pub scopes: Vec<String>,
    /// A public key set (RSA >= 2048 bits, EC P-256/P-384; `use: enc` keys ignored): the
    /// client signs JWT assertions (`private_key_jwt`) and gets no secret.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its key set (https, the webhook target rules), instead of `jwks`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Client {
    pub id: Uuid,
    #[schema(value_type = String)]
    pub client_id: ClientId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// When the client was revoked (DELETE); its tokens stop working within 60 s.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `client_secret_basic` (a secret, by Basic or in the body) or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
}

/// The answer to a create: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub id: Uuid,
    #[schema(value_type = String)]
    pub client_id: ClientId,
    /// Only for `client_secret_basic` clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub token_endpoint_auth_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<Client>,
}
