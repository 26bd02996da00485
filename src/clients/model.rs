use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Scope;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// A label for people, 1 to 200 characters.
    pub name: String,
    /// OAuth2 scopes; each must be one the caller holds (never `platform:admin`).
    #[schema(value_type = Vec<String>, example = json!(["responses:write"]))]
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Client {
    pub id: Uuid,
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// When the client was revoked (DELETE); its tokens stop working within 60 s.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to a create: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub id: Uuid,
    pub client_id: String,
    pub client_secret: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<Client>,
}
