//! Access tokens: HS256 JWTs with every claim required and a strict validation.
//! jsonwebtoken's defaults are lenient (60 s leeway, nbf unchecked, aud/iss optional):
//! each of those is tightened here.

use crate::ids::{ClientId, OrgId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Scope;

/// The largest Authorization header value decoded at all; anything longer is refused unread.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The client id.
    pub sub: String,
    /// The organisation id.
    pub org: OrgId,
    /// Space-separated OAuth2 scopes.
    pub scope: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// A launch token's patient (SMART App Launch): the token reads only this patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// A launch token's EHR connection: deleting it stops the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehr: Option<uuid::Uuid>,
}

/// What binds a launch token: the EHR connection and the patient.
pub struct LaunchBinding<'a> {
    pub connection: uuid::Uuid,
    pub patient: &'a str,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token too large")]
    TooLarge,
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Result<JwtKeys, String> {
        let encoding = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["iss", "aud", "sub", "iat", "nbf", "exp"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(JwtKeys {
            encoding,
            decoding,
            validation,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    pub fn issue(&self, client_id: &ClientId, org: OrgId, scopes: &[Scope], ttl: Duration) -> Result<String, String> {
        self.issue_with_scope(client_id, org, &Scope::join(scopes), ttl)
    }

    /// A token whose `scope` claim is `scope` as given (rapport scopes and SMART aliases,
    /// which `Scope::parse_list` reads back).
    pub fn issue_with_scope(
        &self,
        client_id: &ClientId,
        org: OrgId,
        scope: &str,
        ttl: Duration,
    ) -> Result<String, String> {
        self.sign(client_id, org, scope, ttl, None)
    }

    /// A launch token: `responses:read` for one patient of the organisation, named
    /// `ehr:{connection}:{fhirUser}` (`actor`).
    pub fn issue_launch(
        &self,
        actor: &ClientId,
        org: OrgId,
        binding: &LaunchBinding<'_>,
        ttl: Duration,
    ) -> Result<String, String> {
        self.sign(actor, org, Scope::ResponsesRead.as_str(), ttl, Some(binding))
    }

    fn sign(
        &self,
        client_id: &ClientId,
        org: OrgId,
        scope: &str,
        ttl: Duration,
        binding: Option<&LaunchBinding<'_>>,
    ) -> Result<String, String> {
        let now = now_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: client_id.to_string(),
            org,
            scope: scope.to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            patient: binding.map(|b| b.patient.to_string()),
            ehr: binding.map(|b| b.connection),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// Verifies signature, algorithm, issuer, audience and times; `org` and `scope` must be
    /// present too (the `Claims` type has no optional fields), and `iat` may not lie ahead.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_AUTHORIZATION_BYTES {
            return Err(TokenError::TooLarge);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        if data.claims.iat > now_secs() + LEEWAY_SECS {
            return Err(TokenError::Invalid("issued in the future".into()));
        }
        Ok(data.claims)
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7u8; 32], "rapport", "rapport-api").unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys();
        let org = OrgId(uuid::Uuid::new_v4());
        let t = k
            .issue(&ClientId::new("rc_x"), org, &[Scope::Export], Duration::from_secs(60))
            .unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "rc_x");
        assert_eq!(c.org, org);
        assert_eq!(c.scope, "export");
    }

    #[test]
    fn other_keys_and_audiences_fail() {
        let t = keys()
            .issue(
                &ClientId::new("rc_x"),
                OrgId(uuid::Uuid::new_v4()),
                &[],
                Duration::from_secs(60),
            )
            .unwrap();
        assert!(
            JwtKeys::new(&[8u8; 32], "rapport", "rapport-api")
                .unwrap()
                .verify(&t)
                .is_err()
        );
        assert!(
            JwtKeys::new(&[7u8; 32], "rapport", "other")
                .unwrap()
                .verify(&t)
                .is_err()
        );
        assert!(
            JwtKeys::new(&[7u8; 32], "other", "rapport-api")
                .unwrap()
                .verify(&t)
                .is_err()
        );
    }
}
