//! `private_key_jwt` client authentication (RFC 7523, SMART Backend Services v2): the client
//! signs a short-lived JWT with its private key; rapport checks it against the client's
//! registered key set and remembers its `jti` in Postgres until it expires, so no instance
//! accepts it twice.

use base64::Engine as _;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;

use super::jwks::{self, VerifyError};
use super::token::{LEEWAY_SECS, MAX_AUTHORIZATION_BYTES, now_secs};
use crate::clients::store::{self as clients_store, ClientRow};
use crate::error::ApiError;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// An assertion may expire at most this far ahead (SMART: five minutes).
pub const MAX_LIFETIME_SECS: u64 = 300;
/// Tokens issued to asymmetric clients live at most this long.
pub const TOKEN_TTL_SECS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// `invalid_client`, with a description that names what failed (never key material).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for AssertionError {
    fn from(e: ApiError) -> Self {
        AssertionError::Unavailable(e.problem().detail)
    }
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    jti: String,
}

/// The `iss` of a JWT before any check: only to find whose keys to check it with.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Unverified>(&bytes).ok()?.iss
}

fn invalid(description: impl Into<String>) -> AssertionError {
    AssertionError::Invalid(description.into())
}

/// The active asymmetric client that signed `assertion` for `token_url` (its registered key
/// set, or the one fetched from its `jwks_uri` through `jwks`).
pub async fn authenticate(
    pool: &crate::db::DbPool,
    jwks_cache: &jwks::JwksCache,
    assertion: &str,
    client_id: Option<&str>,
    token_url: &str,
) -> Result<ClientRow, AssertionError> {
    if assertion.len() > MAX_AUTHORIZATION_BYTES {
        return Err(invalid("client_assertion is too large"));
    }
    let issuer = unverified_issuer(assertion).ok_or_else(|| invalid("client_assertion is not a JWT with `iss`"))?;
    if client_id.is_some_and(|c| c != issuer) {
        return Err(invalid("client_id differs from the assertion's `iss`"));
    }
    let mut conn = crate::db::conn(pool).await?;
    let client = clients_store::find_by_client_id(&mut conn, &issuer)
        .await
        .map_err(ApiError::from)?
        .filter(|c| c.revoked_at.is_none() && c.token_endpoint_auth_method == "private_key_jwt")
        .ok_or_else(|| invalid("unknown client, or not one registered with a key set"))?;
    drop(conn);

    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid("client_assertion has a bad header"))?;
    let keys = match (&client.jwks, &client.jwks_uri) {
        (Some(set), _) => std::sync::Arc::new(jwks::registered_keys(set).map_err(|(_, p)| invalid(p))?),
        (None, Some(uri)) => jwks_cache
            .keys(uri, header.kid.as_deref())
            .await
            .map_err(|e| invalid(format!("the client's key set is unavailable: {e}")))?,
        (None, None) => return Err(invalid("the client has no key set")),
    };
    let (key, alg) = jwks::pick(assertion, &keys).map_err(|e| invalid(e.to_string()))?;
    let claims: Claims = jwks::verify(assertion, key, alg, |v| {
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.set_issuer(&[client.client_id.as_str()]);
        v.set_audience(&[token_url]);
        v.sub = Some(client.client_id.to_string());
    })
    .map_err(|e| match e {
        VerifyError::Invalid(why) => invalid(format!("client_assertion refused: {why}")),
        other => invalid(other.to_string()),
    })?;
    if claims.sub != client.client_id.as_str() {
        return Err(invalid("`sub` must be the client_id"));
    }
    if claims.exp > now_secs() + MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err(invalid("`exp` is more than 5 minutes ahead"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 255 {
        return Err(invalid("`jti` must be 1 to 255 characters"));
    }
    let mut conn = crate::db::conn(pool).await?;
    if !remember_jti(&mut conn, &client, &claims.jti, claims.exp)
        .await
        .map_err(ApiError::from)?
    {
        return Err(invalid("this client_assertion was used before (`jti` replayed)"));
    }
    Ok(client)
}

/// Records a `jti` until `exp`; false when the client used it before. Expired entries of
/// the organisation go in the same statement.
async fn remember_jti(
    conn: &mut AsyncPgConnection,
    client: &ClientRow,
    jti: &str,
    exp: u64,
) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Fresh {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let fresh: Fresh = crate::db::Prepared::new(
        "WITH swept AS (
             DELETE FROM client_assertion_jtis WHERE org_id = $1 AND expires_at < now() - interval '1 minute'),
         kept AS (
             INSERT INTO client_assertion_jtis (org_id, client_id, jti, expires_at)
             VALUES ($1, $2, $3, to_timestamp($4) + interval '5 seconds')
             ON CONFLICT DO NOTHING
             RETURNING 1)
         SELECT count(*) AS n FROM kept",
    )
    .bind::<SqlUuid, _>(client.org_id)
    .bind::<Text, _>(&client.client_id)
    .bind::<Text, _>(jti)
    .bind::<BigInt, _>(exp as i64)
    .get_result(conn)
    .await?;
    Ok(fresh.n == 1)
}
