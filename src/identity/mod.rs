//! An organisation's own identity provider (Keycloak, Entra ID, Okta, any OpenID provider
//! that signs JWT access tokens): its bearer tokens are accepted for that organisation.
//!
//! A token is checked against the provider registered for its `iss` (one organisation per
//! issuer): a key of the provider's JWKS (RS256/RS384/ES256/ES384, the algorithm fitting the
//! key), the registered audience, `exp` required. Its scopes come from the registered claim
//! (a space-separated string or an array); only rapport scope names count, and never
//! `platform:admin`. The principal's client id is the token's `sub`, which the audit log
//! records. Providers are looked up at most `RAPPORT_CLIENT_STATUS_TTL_SECS` ago (at most
//! 60 s), so deleting one stops its tokens within that time on every instance.

pub mod routes;
pub mod service;
pub mod store;

use std::sync::Arc;

use serde::Deserialize;

use crate::auth::Scope;
use crate::auth::issuer_cache::IssuerCache;
use crate::auth::jwks::{self, JwksCache, VerifyError};
use crate::db::DbPool;
use crate::error::{ApiError, ApiResult};
use crate::ids::OrgId;
use store::ProviderRow;

/// What verifying an identity provider's token uses: the pool (to find the provider), the
/// providers read so far (each reused for at most `RAPPORT_CLIENT_STATUS_TTL_SECS`) and the
/// fetched key sets.
pub struct IdentityVerifier {
    pub pool: DbPool,
    pub providers: IssuerCache<ProviderRow>,
    pub jwks: Arc<JwksCache>,
}

async fn provider(verifier: &IdentityVerifier, issuer: &str) -> ApiResult<Option<ProviderRow>> {
    verifier
        .providers
        .get(issuer, async || {
            let mut conn = crate::db::conn(&verifier.pool).await?;
            Ok(store::find_by_issuer(&mut conn, issuer).await?)
        })
        .await
}

#[derive(Deserialize)]
struct ExternalClaims {
    sub: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// The rapport scopes a claim grants: a space-separated string or an array of strings;
/// unknown names and `platform:admin` are dropped.
pub fn scopes_from_claim(claim: Option<&serde_json::Value>) -> Vec<Scope> {
    let words: Vec<&str> = match claim {
        Some(serde_json::Value::String(s)) => s.split_ascii_whitespace().collect(),
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let mut scopes: Vec<Scope> = words
        .into_iter()
        .filter_map(Scope::parse)
        .filter(|s| *s != Scope::PlatformAdmin)
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

impl IdentityVerifier {
    /// The organisation, actor (`idp:{provider id}:{sub}`, as the audit log and the rate
    /// limit name the user) and scopes of a token from a registered provider; `Ok(None)` when
    /// no provider has the token's issuer.
    pub async fn verify(&self, token: &str, issuer: &str) -> ApiResult<Option<(OrgId, String, Vec<Scope>)>> {
        verify(self, token, issuer).await
    }

    /// Forgets a provider (registered or deleted here: other instances catch up within the cache time).
    pub fn forget(&self, issuer: &str) {
        self.providers.forget(issuer);
    }
}

async fn verify(
    verifier: &IdentityVerifier,
    token: &str,
    issuer: &str,
) -> ApiResult<Option<(OrgId, String, Vec<Scope>)>> {
    let Some(provider) = provider(verifier, issuer).await? else {
        return Ok(None);
    };
    let unauthorized = |why: String| ApiError::Unauthorized(why);
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("invalid token".into()))?;
    let keys = verifier
        .jwks
        .keys(&provider.jwks_uri, header.kid.as_deref())
        .await
        .map_err(|e| unauthorized(format!("the identity provider's keys are unavailable: {e}")))?;
    let (key, alg) = jwks::pick(token, &keys).map_err(|e| unauthorized(e.to_string()))?;
    let claims: ExternalClaims = jwks::verify(token, key, alg, |v| {
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.set_issuer(&[provider.issuer.as_str()]);
        v.set_audience(&[provider.audience.as_str()]);
    })
    .map_err(|e| match e {
        VerifyError::Invalid(_) => unauthorized("invalid or expired token".into()),
        other => unauthorized(other.to_string()),
    })?;
    let scopes = scopes_from_claim(claims.rest.get(&provider.scope_claim));
    // Named by its provider: a `sub` can never pass for a client id (or another provider's user).
    Ok(Some((
        provider.org_id,
        format!("idp:{}:{}", provider.id, claims.sub),
        scopes,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_come_from_a_string_or_an_array_and_never_include_platform_admin() {
        assert_eq!(
            scopes_from_claim(Some(&json!("openid responses:read platform:admin export"))),
            vec![Scope::ResponsesRead, Scope::Export]
        );
        assert_eq!(
            scopes_from_claim(Some(&json!(["analytics:read", "platform:admin", 7]))),
            vec![Scope::AnalyticsRead]
        );
        assert!(scopes_from_claim(None).is_empty());
    }
}
