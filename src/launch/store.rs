//! EHR connections and the global directory that finds one by issuer or id, the pending
//! launch states and the one-time codes. Every query names its organisation, except the
//! directory lookups that a launch (which arrives with only an `iss`, a cookie or a code)
//! starts from.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{ClientAuth, EhrConnection};
use crate::ids::OrgId;
use crate::schema::{cds_clients, ehr_connections, ehr_issuer_directory, launch_codes, launch_states};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ehr_connections)]
pub struct ConnectionRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: String,
    pub client_secret: Option<String>,
    pub signing_key: Option<Vec<u8>>,
    pub signing_alg: Option<String>,
    pub public_jwk: Option<serde_json::Value>,
    pub frame_origins: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl ConnectionRow {
    /// The API shape; `public_url` is the base of `jwks_url`.
    pub fn to_api(&self, public_url: &str) -> EhrConnection {
        let client_auth = ClientAuth::parse(&self.client_auth).unwrap_or(ClientAuth::ClientSecretBasic);
        EhrConnection {
            id: self.id,
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_auth,
            frame_origins: self.frame_origins.clone(),
            jwks_url: (client_auth == ClientAuth::PrivateKeyJwt)
                .then(|| format!("{}/launch/jwks/{}", public_url.trim_end_matches('/'), self.id)),
            created_at: self.created_at,
        }
    }

    /// The `kid` of the connection's key (its JWK's).
    pub fn kid(&self) -> Option<&str> {
        self.public_jwk
            .as_ref()
            .and_then(|j| j.get("kid"))
            .and_then(|k| k.as_str())
    }
}

/// A connection to register (already checked; the key pair already made).
pub struct NewRow<'a> {
    pub id: Uuid,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_auth: ClientAuth,
    pub client_secret: Option<&'a str>,
    pub signing_key: Option<&'a [u8]>,
    pub signing_alg: Option<&'a str>,
    pub public_jwk: Option<&'a serde_json::Value>,
    pub frame_origins: &'a [String],
}

/// Registers a connection; `None` when any organisation already has its issuer.
pub async fn create(conn: &mut AsyncPgConnection, org: OrgId, new: &NewRow<'_>) -> QueryResult<Option<ConnectionRow>> {
    let claimed = diesel::insert_into(ehr_issuer_directory::table)
        .values((
            ehr_issuer_directory::issuer.eq(new.issuer),
            ehr_issuer_directory::org_id.eq(org),
            ehr_issuer_directory::connection_id.eq(new.id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if claimed == 0 {
        return Ok(None);
    }
    diesel::insert_into(ehr_connections::table)
        .values((
            ehr_connections::org_id.eq(org),
            ehr_connections::id.eq(new.id),
            ehr_connections::issuer.eq(new.issuer),
            ehr_connections::client_id.eq(new.client_id),
            ehr_connections::client_auth.eq(new.client_auth.as_str()),
            ehr_connections::client_secret.eq(new.client_secret),
            ehr_connections::signing_key.eq(new.signing_key),
            ehr_connections::signing_alg.eq(new.signing_alg),
            ehr_connections::public_jwk.eq(new.public_jwk),
            ehr_connections::frame_origins.eq(new.frame_origins),
        ))
        .returning(ConnectionRow::as_returning())
        .get_result(conn)
        .await
        .map(Some)
}

pub async fn list(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<ConnectionRow>> {
    ehr_connections::table
        .filter(ehr_connections::org_id.eq(org))
        .order((ehr_connections::created_at.desc(), ehr_connections::id))
        .select(ConnectionRow::as_select())
        .load(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<Option<ConnectionRow>> {
    ehr_connections::table
        .filter(ehr_connections::org_id.eq(org).and(ehr_connections::id.eq(id)))
        .select(ConnectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes a connection with its directory entry, pending states and unused codes; with it
/// the issuers of the CDS clients that named it (they lose their cards' link).
pub async fn delete(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: Uuid,
) -> QueryResult<Option<(ConnectionRow, Vec<String>)>> {
    let Some(row) = diesel::delete(ehr_connections::table)
        .filter(ehr_connections::org_id.eq(org).and(ehr_connections::id.eq(id)))
        .returning(ConnectionRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    diesel::delete(ehr_issuer_directory::table)
        .filter(ehr_issuer_directory::issuer.eq(&row.issuer))
        .filter(ehr_issuer_directory::org_id.eq(org))
        .execute(conn)
        .await?;
    diesel::delete(launch_states::table)
        .filter(launch_states::org_id.eq(org).and(launch_states::connection_id.eq(id)))
        .execute(conn)
        .await?;
    diesel::delete(launch_codes::table)
        .filter(launch_codes::org_id.eq(org).and(launch_codes::connection_id.eq(id)))
        .execute(conn)
        .await?;
    // CDS clients that named it lose their cards' link (it would open nothing).
    let unlinked = diesel::update(cds_clients::table)
        .filter(cds_clients::org_id.eq(org).and(cds_clients::ehr_connection_id.eq(id)))
        .set(cds_clients::ehr_connection_id.eq(None::<Uuid>))
        .returning(cds_clients::issuer)
        .get_results(conn)
        .await?;
    Ok(Some((row, unlinked)))
}

/// The connection whose issuer this is, in whichever organisation registered it.
pub async fn find_by_issuer(conn: &mut AsyncPgConnection, issuer: &str) -> QueryResult<Option<ConnectionRow>> {
    let owner: Option<(Uuid, Uuid)> = ehr_issuer_directory::table
        .filter(ehr_issuer_directory::issuer.eq(issuer))
        .select((ehr_issuer_directory::org_id, ehr_issuer_directory::connection_id))
        .first(conn)
        .await
        .optional()?;
    let Some((org, id)) = owner else { return Ok(None) };
    find(conn, OrgId(org), id).await
}

/// The connection with this id, in whichever organisation registered it.
pub async fn find_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ConnectionRow>> {
    let org: Option<Uuid> = ehr_issuer_directory::table
        .filter(ehr_issuer_directory::connection_id.eq(id))
        .select(ehr_issuer_directory::org_id)
        .first(conn)
        .await
        .optional()?;
    let Some(org) = org else { return Ok(None) };
    find(conn, OrgId(org), id).await
}

/// Whether the organisation still has this connection (a launch token's check).
pub async fn exists(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        ehr_connections::table.filter(ehr_connections::org_id.eq(org).and(ehr_connections::id.eq(id))),
    ))
    .get_result(conn)
    .await
}

/// A pending authorization, as kept between `/launch` and its callback.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = launch_states)]
pub struct StateRow {
    pub org_id: OrgId,
    pub state_hash: Vec<u8>,
    pub connection_id: Uuid,
    pub browser_hash: Vec<u8>,
    pub code_verifier: String,
    pub token_endpoint: String,
    pub oidc_issuer: String,
    pub expires_at: DateTime<Utc>,
}

/// Keeps a state, first sweeping the organisation's expired ones.
pub async fn save_state(conn: &mut AsyncPgConnection, row: &StateRow) -> QueryResult<()> {
    diesel::delete(launch_states::table)
        .filter(
            launch_states::org_id
                .eq(row.org_id)
                .and(launch_states::expires_at.lt(Utc::now())),
        )
        .execute(conn)
        .await?;
    diesel::insert_into(launch_states::table)
        .values(row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes (deletes and returns) an unexpired state, only for the browser that started it:
/// another browser's callback leaves it where it is.
pub async fn take_state(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    state_hash: &[u8],
    browser_hash: &[u8],
) -> QueryResult<Option<StateRow>> {
    diesel::delete(launch_states::table)
        .filter(launch_states::org_id.eq(org))
        .filter(launch_states::state_hash.eq(state_hash))
        .filter(launch_states::browser_hash.eq(browser_hash))
        .filter(launch_states::expires_at.gt(Utc::now()))
        .returning(StateRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// A finished launch waiting for the console to exchange its code.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = launch_codes)]
pub struct CodeRow {
    pub org_id: OrgId,
    pub code_hash: Vec<u8>,
    pub connection_id: Uuid,
    pub patient: String,
    pub fhir_user: String,
    pub user_name: Option<String>,
    pub token_seconds: i64,
    pub alert_id: Option<Uuid>,
    pub instrument: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Keeps a code, first sweeping the organisation's expired ones.
pub async fn save_code(conn: &mut AsyncPgConnection, row: &CodeRow) -> QueryResult<()> {
    diesel::delete(launch_codes::table)
        .filter(
            launch_codes::org_id
                .eq(row.org_id)
                .and(launch_codes::expires_at.lt(Utc::now())),
        )
        .execute(conn)
        .await?;
    diesel::insert_into(launch_codes::table)
        .values(row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes (deletes and returns) an unexpired code: a code works once.
pub async fn take_code(conn: &mut AsyncPgConnection, org: OrgId, code_hash: &[u8]) -> QueryResult<Option<CodeRow>> {
    diesel::delete(launch_codes::table)
        .filter(launch_codes::org_id.eq(org))
        .filter(launch_codes::code_hash.eq(code_hash))
        .filter(launch_codes::expires_at.gt(Utc::now()))
        .returning(CodeRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}
