use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Scope;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// 2 to 63 of a-z, 0-9 and '-'; unique.
    #[schema(example = "north-clinic")]
    pub slug: String,
    #[schema(example = "North Clinic")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCredentials {
    #[schema(value_type = String)]
    pub client_id: crate::ids::ClientId,
    pub client_secret: String,
    pub scopes: Vec<Scope>,
}

/// The answer to a create: the new organisation and its first administrator client,
/// whose secret is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOrganization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub admin_client: IssuedCredentials,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationList {
    pub items: Vec<Organization>,
}
