//! rapport as the EHR's OAuth client: reading the EHR's smart-configuration and its OpenID
//! issuer's configuration, exchanging an authorization code with the connection's client
//! authentication, and verifying the id_token. Every URL fetched follows the webhook target
//! rules (https, no internal address unless `RAPPORT_WEBHOOK_ALLOW_PRIVATE=true`, checked
//! on the address connected), and no redirect is followed. Errors are sentences for the
//! launch pages: they name what failed and never carry a token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::store::ConnectionRow;
use crate::auth::jwks::{self, JwksCache, VerifyError};

/// How long a smart-configuration is reused (the SPEC allows at most an hour).
pub const SMART_CONFIG_TTL: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 256 * 1024;

/// The parts of `{iss}/.well-known/smart-configuration` a launch uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SmartConfig {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The OpenID issuer of the EHR's id_tokens (often not its FHIR base URL).
    pub issuer: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}

#[derive(Deserialize)]
struct OpenIdConfig {
    issuer: String,
    jwks_uri: String,
}

/// The EHR's answer at its token endpoint (only what rapport reads; the access token is
/// checked for presence and then dropped, never stored, logged or used).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    id_token: Option<String>,
    patient: Option<String>,
    expires_in: Option<i64>,
    #[serde(rename = "appContext")]
    app_context: Option<serde_json::Value>,
}

/// What a finished exchange tells: the patient, the user and how long the EHR's token lives.
#[derive(Debug)]
pub struct Exchanged {
    pub patient: String,
    pub fhir_user: String,
    pub name: Option<String>,
    pub expires_in: Option<i64>,
    pub app_context: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IdClaims {
    #[serde(rename = "fhirUser")]
    fhir_user: Option<String>,
    sub: String,
    name: Option<String>,
}

pub struct EhrClient {
    http: reqwest::Client,
    allow_private: bool,
    smart: Mutex<HashMap<String, (Instant, Arc<SmartConfig>)>>,
    pub jwks: Arc<JwksCache>,
}

impl EhrClient {
    pub fn new(allow_private: bool, jwks: Arc<JwksCache>) -> reqwest::Result<EhrClient> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .dns_resolver(Arc::new(crate::outbound::CheckedResolver { allow_private }))
            .user_agent(concat!("rapport-launch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(EhrClient {
            http,
            allow_private,
            smart: Mutex::new(HashMap::new()),
            jwks,
        })
    }

    /// A URL rapport may fetch: absolute, https (unless private targets are allowed) and,
    /// when its host is an address, an allowed one.
    fn checked(&self, raw: &str, what: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(raw).map_err(|_| format!("the EHR's {what} is not a URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(format!("the EHR's {what} is not an https URL")),
        }
        crate::outbound::check_literal(&url, self.allow_private).map_err(|e| format!("the EHR's {what}: {e}"))?;
        Ok(url)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, raw: &str, what: &str) -> Result<T, String> {
        let url = self.checked(raw, what)?;
        let response = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|_| format!("the EHR's {what} could not be read"))?;
        if !response.status().is_success() {
            return Err(format!("the EHR's {what} answered {}", response.status().as_u16()));
        }
        let bytes = read_limited(response)
            .await
            .map_err(|e| format!("the EHR's {what}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the EHR's {what} is not what SMART describes ({e})"))
    }

    /// `{iss}/.well-known/smart-configuration`, reused for `SMART_CONFIG_TTL`; an answer
    /// without `authorization_endpoint`, `token_endpoint`, an OpenID `issuer` or `S256` is
    /// refused.
    pub async fn smart_configuration(&self, iss: &str) -> Result<Arc<SmartConfig>, String> {
        if let Some(found) = self.smart.lock().ok().and_then(|cache| {
            cache
                .get(iss)
                .filter(|(at, _)| at.elapsed() < SMART_CONFIG_TTL)
                .map(|(_, c)| c.clone())
        }) {
            return Ok(found);
        }
        let url = format!("{}/.well-known/smart-configuration", iss.trim_end_matches('/'));
        let config: SmartConfig = self.get_json(&url, "smart-configuration").await?;
        if !config.code_challenge_methods_supported.iter().any(|m| m == "S256") {
            return Err("the EHR's smart-configuration does not offer PKCE with S256".into());
        }
        if config.issuer.as_deref().is_none_or(str::is_empty) {
            return Err("the EHR's smart-configuration names no OpenID `issuer` (needed for `fhirUser`)".into());
        }
        self.checked(&config.authorization_endpoint, "authorization_endpoint")?;
        self.checked(&config.token_endpoint, "token_endpoint")?;
        let config = Arc::new(config);
        if let Ok(mut cache) = self.smart.lock() {
            cache.insert(iss.to_string(), (Instant::now(), config.clone()));
        }
        Ok(config)
    }

    /// Forgets what was read for an issuer (its connection was deleted).
    pub fn forget(&self, iss: &str) {
        if let Ok(mut cache) = self.smart.lock() {
            cache.remove(iss);
        }
    }

    /// Exchanges `code` at `token_endpoint` with the connection's client authentication,
    /// then verifies the id_token against the JWKS of `oidc_issuer`.
    pub async fn exchange(
        &self,
        connection: &ConnectionRow,
        token_endpoint: &str,
        oidc_issuer: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<Exchanged, String> {
        let url = self.checked(token_endpoint, "token_endpoint")?;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", redirect_uri.into()),
            ("code_verifier", code_verifier.into()),
        ];
        let mut request = self.http.post(url);
        match (&connection.client_secret, &connection.signing_key) {
            (Some(secret), _) => {
                // RFC 6749 2.3.1: both parts form-encoded before the Basic encoding.
                let user = form_encode(&connection.client_id);
                let pass = form_encode(secret);
                request = request.basic_auth(user, Some(pass));
            }
            (None, Some(key)) => {
                let kid = connection.kid().unwrap_or_default();
                let assertion = super::keys::client_assertion(key, kid, &connection.client_id, token_endpoint)
                    .map_err(|_| "rapport could not sign its client assertion".to_string())?;
                form.push(("client_id", connection.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
            (None, None) => return Err("the connection has no client authentication".into()),
        }
        let body =
            serde_urlencoded::to_string(&form).map_err(|_| "the token request could not be encoded".to_string())?;
        let response = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|_| "the EHR's token endpoint could not be reached".to_string())?;
        let status = response.status();
        let bytes = read_limited(response)
            .await
            .map_err(|e| format!("the EHR's token endpoint: {e}"))?;
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let named = error.get("error").and_then(|e| e.as_str()).unwrap_or("no error code");
            return Err(format!(
                "the EHR refused the code exchange ({}, {named})",
                status.as_u16()
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| "the EHR's token answer is not the JSON OAuth describes".to_string())?;
        if answer.access_token.as_deref().is_none_or(str::is_empty) {
            return Err("the EHR's token answer has no access_token".into());
        }
        let patient = answer
            .patient
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| "the EHR's token answer names no patient (the launch has no patient context)".to_string())?;
        let id_token = answer
            .id_token
            .ok_or_else(|| "the EHR's token answer has no id_token".to_string())?;
        let claims = self
            .verify_id_token(&id_token, oidc_issuer, &connection.client_id)
            .await?;
        let fhir_user = claims.fhir_user.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
            format!(
                "the id_token names no fhirUser (its subject is {} characters long)",
                claims.sub.len()
            )
        })?;
        Ok(Exchanged {
            patient,
            fhir_user,
            name: claims.name.filter(|n| !n.trim().is_empty()),
            expires_in: answer.expires_in,
            app_context: answer.app_context,
        })
    }

    async fn verify_id_token(&self, token: &str, oidc_issuer: &str, client_id: &str) -> Result<IdClaims, String> {
        let url = format!("{}/.well-known/openid-configuration", oidc_issuer.trim_end_matches('/'));
        let config: OpenIdConfig = self.get_json(&url, "OpenID configuration").await?;
        if config.issuer != oidc_issuer {
            return Err("the EHR's OpenID configuration names another issuer".into());
        }
        self.checked(&config.jwks_uri, "jwks_uri")?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the id_token is not a JWT".to_string())?;
        let keys = self
            .jwks
            .keys(&config.jwks_uri, header.kid.as_deref())
            .await
            .map_err(|e| format!("the EHR's id_token keys are unavailable: {e}"))?;
        let (key, alg) = jwks::pick(token, &keys).map_err(|e| format!("the id_token was refused: {e}"))?;
        jwks::verify(token, key, alg, |v| {
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v.set_issuer(&[oidc_issuer]);
            v.set_audience(&[client_id]);
        })
        .map_err(|e| match e {
            VerifyError::Invalid(_) => "the id_token was refused (signature, issuer, audience or expiry)".to_string(),
            other => format!("the id_token was refused: {other}"),
        })
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "the answer was cut off".to_string())?
    {
        if out.len() + chunk.len() > MAX_BODY {
            return Err("the answer is too large".into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn form_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_string())
        .unwrap_or_default()
}
