//! Public keys of asymmetric clients and identity providers (JWK sets), and the checks a
//! token signed by one of them must pass.
//!
//! The algorithm always comes from the registered key, never from the token alone: an RSA
//! key verifies RS256 or RS384, a P-256 key ES256, a P-384 key ES384. A token whose header
//! names anything else (`none`, HS256 over the public key's bytes, ...) is refused before
//! any signature check. Keys with `use: enc` are never used; `jku`, `x5u` and `jwk` headers
//! are never followed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

/// The smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;
/// The longest a fetched JWKS is reused, whatever its Cache-Control says.
pub const MAX_CACHE: Duration = Duration::from_secs(3_600);
/// How long a fetched JWKS is reused when its answer says nothing.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(300);
/// An unknown `kid` refetches the set at most this often.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Bounds on one JWKS fetch: it answers within this time or the token is refused.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    P256,
    P384,
}

impl KeyFamily {
    fn allows(self, alg: Algorithm) -> bool {
        match self {
            KeyFamily::Rsa => matches!(alg, Algorithm::RS256 | Algorithm::RS384),
            KeyFamily::P256 => alg == Algorithm::ES256,
            KeyFamily::P384 => alg == Algorithm::ES384,
        }
    }
}

/// One usable signing key.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub family: KeyFamily,
    key: DecodingKey,
}

/// Why a key of a set cannot be used.
fn key_problem(jwk: &Jwk) -> Result<Option<VerifyingKey>, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None); // an encryption key is not a signing key: ignored
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|_| "`n` is not base64url".to_string())?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA keys need at least {MIN_RSA_BITS} bits (this one has {bits})"
                ));
            }
            KeyFamily::Rsa
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyFamily::P256,
            EllipticCurve::P384 => KeyFamily::P384,
            _ => return Err("EC keys must be on P-256 or P-384".into()),
        },
        _ => return Err("only RSA and EC (P-256, P-384) public keys are accepted".into()),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("not a usable public key: {e}"))?;
    Ok(Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        family,
        key,
    }))
}

fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        Some(i) => (n.len() - i) * 8 - n.get(i).map_or(0, |b| b.leading_zeros() as usize),
        None => 0,
    }
}

/// The signing keys of a set registered by an administrator: any key that is not one
/// rapport accepts is an error naming it (`/jwks/keys/{i}`); at least one signing key.
pub fn registered_keys(set: &serde_json::Value) -> Result<Vec<VerifyingKey>, (String, String)> {
    let parsed: JwkSet =
        serde_json::from_value(set.clone()).map_err(|e| ("/jwks".to_string(), format!("not a JWK set: {e}")))?;
    let mut keys = Vec::new();
    for (i, jwk) in parsed.keys.iter().enumerate() {
        match key_problem(jwk) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(problem) => return Err((format!("/jwks/keys/{i}"), problem)),
        }
    }
    if keys.is_empty() {
        return Err(("/jwks/keys".into(), "needs at least one signing key".into()));
    }
    Ok(keys)
}

/// The usable signing keys of a fetched set (keys rapport does not accept are skipped).
pub fn usable_keys(set: &JwkSet) -> Vec<VerifyingKey> {
    set.keys.iter().filter_map(|k| key_problem(k).ok().flatten()).collect()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("the token is malformed or uses an algorithm rapport does not accept")]
    Malformed,
    #[error("no registered key has the token's `kid`")]
    UnknownKid,
    #[error("the token's algorithm does not fit the key")]
    WrongAlgorithm,
    #[error("{0}")]
    Invalid(String),
}

/// The key the token names (`kid`; without one, the only key of the set).
pub fn pick<'k>(token: &str, keys: &'k [VerifyingKey]) -> Result<(&'k VerifyingKey, Algorithm), VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    let key = match &header.kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
    .ok_or(VerifyError::UnknownKid)?;
    if !key.family.allows(header.alg) {
        return Err(VerifyError::WrongAlgorithm);
    }
    Ok((key, header.alg))
}

/// Verifies `token` with `key` under `alg` (from `pick`), `configure` setting the claims
/// checks; `exp` is always required and checked, `nbf` checked when present, 5 s leeway.
pub fn verify<T: DeserializeOwned>(
    token: &str,
    key: &VerifyingKey,
    alg: Algorithm,
    configure: impl FnOnce(&mut Validation),
) -> Result<T, VerifyError> {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = super::token::LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    configure(&mut validation);
    jsonwebtoken::decode::<T>(token, &key.key, &validation)
        .map(|d| d.claims)
        .map_err(|e| VerifyError::Invalid(e.to_string()))
}

struct Cached {
    keys: Arc<Vec<VerifyingKey>>,
    fetched: Instant,
    fresh_for: Duration,
}

/// Fetched JWK sets by URI, per process: reused for their Cache-Control max-age (at most
/// an hour); an unknown `kid` refetches at most once a minute (so a flood of made-up kids
/// costs one fetch a minute).
pub struct JwksCache {
    client: reqwest::Client,
    sets: Mutex<HashMap<String, Cached>>,
}

impl JwksCache {
    pub fn new(allow_private: bool) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .dns_resolver(Arc::new(crate::outbound::CheckedResolver { allow_private }))
            .user_agent(concat!("rapport-jwks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(JwksCache {
            client,
            sets: Mutex::new(HashMap::new()),
        })
    }

    /// The keys at `uri`, holding `kid` if a refetch allows it.
    pub async fn keys(&self, uri: &str, kid: Option<&str>) -> Result<Arc<Vec<VerifyingKey>>, String> {
        let cached = self.sets.lock().ok().and_then(|sets| {
            sets.get(uri).map(|c| {
                let has_kid = kid.is_none_or(|kid| c.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
                let fresh = c.fetched.elapsed() < c.fresh_for;
                let may_refetch = c.fetched.elapsed() >= REFETCH_AFTER;
                (c.keys.clone(), fresh && (has_kid || !may_refetch))
            })
        });
        if let Some((keys, true)) = cached {
            return Ok(keys);
        }
        match self.fetch(uri).await {
            Ok((keys, fresh_for)) => {
                let keys = Arc::new(keys);
                if let Ok(mut sets) = self.sets.lock() {
                    sets.insert(
                        uri.to_string(),
                        Cached {
                            keys: keys.clone(),
                            fetched: Instant::now(),
                            fresh_for,
                        },
                    );
                }
                Ok(keys)
            }
            // A set still within its max-age keeps working while its endpoint is down.
            Err(e) => match cached {
                Some((keys, _)) if self.still_fresh(uri) => Ok(keys),
                _ => Err(e),
            },
        }
    }

    fn still_fresh(&self, uri: &str) -> bool {
        self.sets
            .lock()
            .ok()
            .and_then(|sets| sets.get(uri).map(|c| c.fetched.elapsed() < c.fresh_for))
            .unwrap_or(false)
    }

    /// Forgets a set (its owner was deleted or changed).
    pub fn forget(&self, uri: &str) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.remove(uri);
        }
    }

    async fn fetch(&self, uri: &str) -> Result<(Vec<VerifyingKey>, Duration), String> {
        let url = url::Url::parse(uri).map_err(|_| "the JWKS URI is not a URL".to_string())?;
        let unreachable = |what: String| format!("the JWKS at {} {what}", url.host_str().unwrap_or("?"));
        let mut response = self.client.get(url.clone()).send().await.map_err(|e| {
            unreachable(if e.is_timeout() {
                "did not answer in time".into()
            } else {
                "could not be reached".into()
            })
        })?;
        if !response.status().is_success() {
            return Err(unreachable(format!("answered {}", response.status().as_u16())));
        }
        let fresh_for = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_CACHE)
            .min(MAX_CACHE);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(format!("broke off its answer ({e})")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(unreachable("answered more than 256 KiB".into()));
            }
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| unreachable(format!("is not a JWK set ({e})")))?;
        Ok((usable_keys(&set), fresh_for))
    }
}

/// `max-age` of a Cache-Control value (`no-store`/`no-cache` mean 0).
fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for part in value.split(',').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            found = secs.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_count_from_the_first_set_bit() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0u8; 4]), 0);
        assert_eq!(modulus_bits(&[0xffu8; 256]), 2048);
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn registration_refuses_weak_and_foreign_keys_and_ignores_encryption_keys() {
        let weak = serde_json::json!({"keys": [{"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"}]});
        assert_eq!(
            registered_keys(&weak).err().map(|e| e.0),
            Some("/jwks/keys/0".to_string())
        );
        let oct = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(registered_keys(&oct).is_err());
        let only_enc = serde_json::json!({"keys": [{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]});
        assert_eq!(
            registered_keys(&only_enc).err().map(|e| e.0),
            Some("/jwks/keys".to_string())
        );
    }
}
