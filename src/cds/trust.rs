//! Who may call the CDS services: a registered CDS client, by a JWT it signed for the exact
//! URL called (CDS Hooks 2.0 "Trusting CDS Clients"). The header's `kid` picks a key of the
//! client's registered set (inline, or fetched from its `jwks_uri` through the shared JWKS
//! cache and its outbound address rules); `jku` only when it is that very `jwks_uri`;
//! `x5u`, `x5c` and `jwk` headers never find a key. `iss` registered, `aud` the URL,
//! `exp` at most five minutes ahead, `iat` not in the future, `jti` never seen before for the
//! issuer (kept in Postgres until `exp`, so that every instance refuses a replay). Every
//! refusal is the same 401: the reason goes to the debug log, never the token.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::store::{self, CdsClientRow};
use crate::auth::issuer_cache::IssuerCache;
use crate::auth::jwks::{self, JwksCache};
use crate::auth::token::{LEEWAY_SECS, MAX_AUTHORIZATION_BYTES, now_secs};
use crate::db::DbPool;
use crate::error::{ApiError, ApiResult};

/// A JWT may expire at most this far ahead.
pub const MAX_LIFETIME_SECS: u64 = 300;
/// How far in the future `iat` may be (clock skew).
pub const IAT_SKEW_SECS: u64 = 60;
/// What every refused call reads.
pub const REFUSED: &str = "the CDS client's JWT was refused";

/// Verifies CDS clients' JWTs: the pool (to find the client and keep `jti`s), how long a
/// client read stays fresh (`RAPPORT_CLIENT_STATUS_TTL_SECS`), the clients read so far and
/// the shared fetched key sets.
pub struct CdsVerifier {
    pub pool: DbPool,
    clients: IssuerCache<CdsClientRow>,
    pub jwks: Arc<JwksCache>,
}

#[derive(Deserialize)]
struct Claims {
    exp: u64,
    iat: Option<u64>,
    jti: Option<String>,
}

/// Why a JWT was refused (logged at debug, never shown).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Because(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn because(why: impl Into<String>) -> Refusal {
    Refusal::Because(why.into())
}

impl CdsVerifier {
    pub fn new(pool: DbPool, ttl: Duration, jwks: Arc<JwksCache>) -> Self {
        CdsVerifier {
            pool,
            clients: IssuerCache::new(ttl),
            jwks,
        }
    }

    /// Forgets what this instance read of `issuer`'s client (registered or deleted here).
    pub fn forget(&self, issuer: &str) {
        self.clients.forget(issuer);
    }

    async fn client(&self, issuer: &str) -> ApiResult<Option<CdsClientRow>> {
        self.clients
            .get(issuer, async || {
                let mut conn = crate::db::conn(&self.pool).await?;
                Ok(store::find_by_issuer(&mut conn, issuer).await?)
            })
            .await
    }

    /// The registered client that signed `token` for `url` (the exact URL called); 401 for
    /// anything else, 503 when the database is unavailable.
    pub async fn verify(&self, token: &str, url: &str) -> ApiResult<CdsClientRow> {
        match self.check(token, url).await {
            Ok(client) => Ok(client),
            Err(Refusal::Because(why)) => {
                log::debug!("cds: call refused: {why}");
                Err(ApiError::Unauthorized(REFUSED.into()))
            }
            Err(Refusal::Api(e)) => Err(e),
        }
    }

    async fn check(&self, token: &str, url: &str) -> Result<CdsClientRow, Refusal> {
        if token.len() > MAX_AUTHORIZATION_BYTES {
            return Err(because("the token is too large"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| because("not a JWT"))?;
        if !matches!(
            header.alg,
            Algorithm::RS384 | Algorithm::ES384 | Algorithm::RS256 | Algorithm::ES256
        ) {
            return Err(because("the algorithm is not RS384, ES384, RS256 or ES256"));
        }
        let kid = header.kid.as_deref().ok_or_else(|| because("no `kid`"))?;
        let issuer = crate::auth::assertion::unverified_issuer(token).ok_or_else(|| because("no `iss`"))?;
        let client = self
            .client(&issuer)
            .await?
            .ok_or_else(|| because("no CDS client has this issuer"))?;
        if let Some(jku) = &header.jku
            && client.jwks_uri.as_deref() != Some(jku.as_str())
        {
            return Err(because("`jku` is not the registered jwks_uri"));
        }
        let keys = match (&client.jwks, &client.jwks_uri) {
            (Some(set), _) => Arc::new(jwks::registered_keys(set).map_err(|(_, p)| because(p))?),
            (None, Some(uri)) => self
                .jwks
                .keys(uri, Some(kid))
                .await
                .map_err(|e| because(format!("the client's key set is unavailable: {e}")))?,
            (None, None) => return Err(because("the client has no key set")),
        };
        let (key, alg) = jwks::pick(token, &keys).map_err(|e| because(e.to_string()))?;
        let claims: Claims = jwks::verify(token, key, alg, |v| {
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            v.set_issuer(&[client.issuer.as_str()]);
            v.set_audience(&[url]);
        })
        .map_err(|e| because(e.to_string()))?;
        let now = now_secs();
        if claims.exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
            return Err(because("`exp` is more than 5 minutes ahead"));
        }
        match claims.iat {
            Some(iat) if iat <= now + IAT_SKEW_SECS => {}
            Some(_) => return Err(because("`iat` is in the future")),
            None => return Err(because("no `iat`")),
        }
        let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= 255);
        let jti = jti.ok_or_else(|| because("`jti` must be 1 to 255 characters"))?;
        // `exp` is at most five minutes ahead (checked above): it fits.
        let expires_at = chrono::DateTime::from_timestamp(claims.exp as i64 + LEEWAY_SECS as i64, 0)
            .ok_or_else(|| because("`exp` out of range"))?;
        let mut conn = crate::db::conn(&self.pool).await?;
        if !store::remember_jti(&mut conn, client.org_id, &client.issuer, &jti, expires_at)
            .await
            .map_err(ApiError::from)?
        {
            return Err(because("`jti` replayed"));
        }
        Ok(client)
    }
}
