use crate::ids::{ClientId, OrgId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{Client, CreatedClient};
use crate::auth::{Scope, secrets};
use crate::schema::{api_clients, client_directory};

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_clients)]
pub struct ClientRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub client_id: ClientId,
    pub secret_hash: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub token_endpoint_auth_method: String,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
}

impl ClientRow {
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
        scopes.sort();
        scopes
    }
}

impl From<ClientRow> for Client {
    fn from(r: ClientRow) -> Self {
        Client {
            scopes: r.scopes(),
            id: r.id,
            client_id: r.client_id,
            name: r.name,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            token_endpoint_auth_method: r.token_endpoint_auth_method,
            jwks_uri: r.jwks_uri,
            jwks: r.jwks,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = api_clients)]
struct NewClientRow<'a> {
    org_id: OrgId,
    id: Uuid,
    client_id: &'a str,
    secret_hash: Option<&'a str>,
    name: &'a str,
    scopes: Vec<String>,
    token_endpoint_auth_method: &'a str,
    jwks: Option<&'a serde_json::Value>,
    jwks_uri: Option<&'a str>,
}

/// How a client authenticates at the token endpoint.
pub enum Credential {
    /// `client_secret_basic` (or post): the secret, shown once, and its argon2 hash.
    Secret { client_secret: String, secret_hash: String },
    /// `private_key_jwt`: a key set, inline or at a URI (exactly one of them).
    PublicKeys {
        jwks: Option<serde_json::Value>,
        jwks_uri: Option<String>,
    },
}

/// Credentials prepared outside any transaction (argon2 is deliberately slow).
pub struct PreparedCredentials {
    pub client_id: String,
    pub credential: Credential,
}

impl PreparedCredentials {
    /// Generates an id and secret, or uses the given ones (bootstrap from configuration).
    pub fn prepare(given: Option<(String, String)>) -> Result<Self, String> {
        let (client_id, client_secret) =
            given.unwrap_or_else(|| (secrets::generate_client_id(), secrets::generate_secret()));
        let secret_hash = secrets::hash_secret(&client_secret)?;
        Ok(PreparedCredentials {
            client_id,
            credential: Credential::Secret {
                client_secret,
                secret_hash,
            },
        })
    }

    /// A new client id for a client that signs its assertions with its own keys.
    pub fn public_keys(jwks: Option<serde_json::Value>, jwks_uri: Option<String>) -> Self {
        PreparedCredentials {
            client_id: secrets::generate_client_id(),
            credential: Credential::PublicKeys { jwks, jwks_uri },
        }
    }
}

/// Inserts a client (and its directory entry); run inside the caller's transaction.
pub async fn create_client(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    name: &str,
    scopes: &[Scope],
    credentials: PreparedCredentials,
) -> QueryResult<CreatedClient> {
    diesel::insert_into(client_directory::table)
        .values((
            client_directory::client_id.eq(&credentials.client_id),
            client_directory::org_id.eq(org),
        ))
        .execute(conn)
        .await?;
    let (secret_hash, method, jwks, jwks_uri, client_secret) = match &credentials.credential {
        Credential::Secret {
            client_secret,
            secret_hash,
        } => (
            Some(secret_hash.as_str()),
            "client_secret_basic",
            None,
            None,
            Some(client_secret.clone()),
        ),
        Credential::PublicKeys { jwks, jwks_uri } => {
            (None, "private_key_jwt", jwks.as_ref(), jwks_uri.as_deref(), None)
        }
    };
    let row: ClientRow = diesel::insert_into(api_clients::table)
        .values(NewClientRow {
            org_id: org,
            id: Uuid::new_v4(),
            client_id: &credentials.client_id,
            secret_hash,
            name,
            scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
            token_endpoint_auth_method: method,
            jwks,
            jwks_uri,
        })
        .returning(ClientRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(CreatedClient {
        scopes: row.scopes(),
        id: row.id,
        client_id: row.client_id,
        client_secret,
        name: row.name,
        created_at: row.created_at,
        token_endpoint_auth_method: row.token_endpoint_auth_method,
        jwks_uri: row.jwks_uri,
        jwks: row.jwks,
    })
}

pub async fn list(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<ClientRow>> {
    api_clients::table
        .filter(api_clients::org_id.eq(org))
        .select(ClientRow::as_select())
        .order((api_clients::created_at.asc(), api_clients::id.asc()))
        .load(conn)
        .await
}

/// How a path names a client: its id (UUID) or its client_id, within the caller's organisation.
#[derive(Debug, Clone)]
pub enum ClientRef {
    Id(Uuid),
    ClientId(String),
}

impl ClientRef {
    pub fn parse(text: &str) -> ClientRef {
        match Uuid::parse_str(text) {
            Ok(id) => ClientRef::Id(id),
            Err(_) => ClientRef::ClientId(text.to_string()),
        }
    }
}

type ClientFilter = Box<dyn BoxableExpression<api_clients::table, diesel::pg::Pg, SqlType = diesel::sql_types::Bool>>;

fn named(org: OrgId, client: &ClientRef) -> ClientFilter {
    match client {
        ClientRef::Id(id) => Box::new(api_clients::org_id.eq(org).and(api_clients::id.eq(*id))),
        ClientRef::ClientId(c) => Box::new(api_clients::org_id.eq(org).and(api_clients::client_id.eq(c.clone()))),
    }
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, client: &ClientRef) -> QueryResult<Option<ClientRow>> {
    api_clients::table
        .filter(named(org, client))
        .select(ClientRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The client behind a client_id, looked up through the global directory.
pub async fn find_by_client_id(conn: &mut AsyncPgConnection, client_id: &str) -> QueryResult<Option<ClientRow>> {
    let org: Option<Uuid> = client_directory::table
        .filter(client_directory::client_id.eq(client_id))
        .select(client_directory::org_id)
        .first(conn)
        .await
        .optional()?;
    let Some(org) = org else { return Ok(None) };
    api_clients::table
        .filter(api_clients::org_id.eq(org).and(api_clients::client_id.eq(client_id)))
        .select(ClientRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn is_active(conn: &mut AsyncPgConnection, org: OrgId, client_id: &ClientId) -> QueryResult<bool> {
    let found: Option<Uuid> = api_clients::table
        .filter(api_clients::org_id.eq(org))
        .filter(api_clients::client_id.eq(client_id))
        .filter(api_clients::revoked_at.is_null())
        .select(api_clients::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Marks the client revoked (idempotent); `None` when no such client in this organisation.
/// The ids of the organisation's active clients holding `org:admin`, locked until the end
/// of the caller's transaction (so two revocations cannot both remove "the other" admin).
pub async fn lock_active_admins(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<Uuid>> {
    api_clients::table
        .filter(api_clients::org_id.eq(org))
        .filter(api_clients::revoked_at.is_null())
        .filter(api_clients::scopes.contains(vec![Scope::OrgAdmin.as_str().to_string()]))
        .select(api_clients::id)
        .for_update()
        .load(conn)
        .await
}

pub async fn revoke(conn: &mut AsyncPgConnection, org: OrgId, client: &ClientRef) -> QueryResult<Option<ClientRow>> {
    diesel::update(api_clients::table)
        .filter(named(org, client))
        // The time as a value: Citus takes no `now()` inside COALESCE in an UPDATE.
        .set(
            api_clients::revoked_at.eq(
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
                    "COALESCE(revoked_at, ",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(chrono::Utc::now())
                .sql(")"),
            ),
        )
        .returning(ClientRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}
