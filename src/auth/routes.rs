//! `POST /v1/oauth/token`: the OAuth2 client-credentials grant (RFC 6749 section 4.4).
//! Errors here use the OAuth2 shape of section 5.2, not problem+json.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Scope;
use super::secrets;
use crate::clients::store as clients_store;
use crate::error::ApiError;
use crate::extract;
use crate::state::AppState;

/// The token request; as a form (`application/x-www-form-urlencoded`) or JSON body.
/// Client credentials may come in the body or as HTTP Basic authentication.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated scopes narrowing the client's own; all of them when absent. SMART v2
    /// system scopes are accepted as aliases (`system/QuestionnaireResponse.c` is
    /// `responses:write`, `system/Observation.rs` is `responses:read`, ...).
    pub scope: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for `private_key_jwt`.
    pub client_assertion_type: Option<String>,
    /// The signed JWT of a `private_key_jwt` client (RFC 7523, SMART Backend Services).
    pub client_assertion: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// RFC 6749 section 5.2 error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `invalid_scope` or `unsupported_grant_type`.
    pub error: String,
    pub error_description: String,
}

struct OAuthFailure {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
    /// Set on 429: seconds until a new attempt is allowed.
    retry_after: Option<u64>,
}

/// Failed authentications allowed per client id and minute at the token endpoint.
pub const FAILED_AUTH_PER_MINUTE: u32 = 10;

/// A 500 at the token endpoint: the cause is logged (never the secret or token), the
/// answer says only `server_error`.
fn internal(cause: impl std::fmt::Display) -> OAuthFailure {
    log::error!(target: "rapport::auth", "token endpoint: {cause}");
    fail(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
}

fn fail(status: StatusCode, error: &'static str, description: impl Into<String>) -> OAuthFailure {
    OAuthFailure {
        status,
        error,
        description: description.into(),
        basic_challenge: false,
        retry_after: None,
    }
}

impl OAuthFailure {
    fn into_response(self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        builder.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(secs) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
            builder.insert_header(("RateLimit-Limit", FAILED_AUTH_PER_MINUTE.to_string()));
            builder.insert_header(("RateLimit-Remaining", "0"));
            builder.insert_header(("RateLimit-Reset", secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic_challenge {
                "Basic realm=\"rapport\""
            } else {
                "Bearer realm=\"rapport\""
            };
            builder.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        builder.json(OAuthError {
            error: self.error.to_string(),
            error_description: self.description,
        })
    }
}

fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthFailure> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        let mut f = fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "malformed client authentication",
        );
        f.basic_challenge = true;
        f
    };
    if value.len() > super::token::MAX_AUTHORIZATION_BYTES {
        return Err(invalid());
    }
    let value = value.to_str().map_err(|_| invalid())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(invalid());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    // RFC 6749 2.3.1: both parts are form-urlencoded before base64.
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

async fn parse_request(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<TokenRequest, OAuthFailure> {
    let body = extract::read_body(req, payload.into_inner(), limit)
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge(m) => fail(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", m),
            other => fail(StatusCode::BAD_REQUEST, "invalid_request", other.to_string()),
        })?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if extract::is_json_content_type(req) {
        serde_json::from_slice(&body)
            .map_err(|_| fail(StatusCode::BAD_REQUEST, "invalid_request", "malformed JSON body"))
    } else if content_type == "application/x-www-form-urlencoded" || (content_type.is_empty() && body.is_empty()) {
        serde_urlencoded::from_bytes(&body)
            .map_err(|_| fail(StatusCode::BAD_REQUEST, "invalid_request", "malformed form body"))
    } else {
        Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded or application/json",
        ))
    }
}

async fn grant(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<TokenResponse, OAuthFailure> {
    let basic = basic_credentials(&req)?;
    let source = source_address(&req, state.settings.trust_forwarded);
    let body = parse_request(&req, payload, state.settings.body_limit).await?;
    match body.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            ));
        }
        None => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            ));
        }
    }
    if body.client_assertion.is_some() || body.client_assertion_type.is_some() {
        if basic.is_some() || body.client_secret.is_some() {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method",
            ));
        }
        let claimed = body
            .client_id
            .clone()
            .or_else(|| {
                body.client_assertion
                    .as_deref()
                    .and_then(super::assertion::unverified_issuer)
            })
            .unwrap_or_default();
        return limit_failures(&state, &claimed, &source, grant_by_assertion(&state, body)).await;
    }
    let used_basic = basic.is_some();
    let (client_id, client_secret) = match (basic, body.client_id, body.client_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method",
            ));
        }
        (Some(pair), None, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required",
            ));
        }
    };
    let claimed = client_id.clone();
    limit_failures(&state, &claimed, &source, async {
        let client = authenticate(&state, client_id, client_secret, used_basic).await?;
        token_for(&state, &client, body.scope.as_deref(), state.settings.token_ttl)
    })
    .await
}

/// The address a token request came from: the peer, or with `RAPPORT_TRUST_FORWARDED` the
/// one the proxy names (`Forwarded`/`X-Forwarded-For`).
fn source_address(req: &HttpRequest, trust_forwarded: bool) -> String {
    let address = if trust_forwarded {
        req.connection_info().realip_remote_addr().map(str::to_string)
    } else {
        req.peer_addr().map(|a| a.ip().to_string())
    };
    address.unwrap_or_default()
}

/// At most `FAILED_AUTH_PER_MINUTE` failed authentications per client id and source
/// address (in this instance), then 429 until the bucket refills: guessing secrets gets
/// slow, and failures from one address never lock out the right secret from another.
async fn limit_failures(
    state: &AppState,
    client_id: &str,
    source: &str,
    attempt: impl std::future::Future<Output = Result<TokenResponse, OAuthFailure>>,
) -> Result<TokenResponse, OAuthFailure> {
    let key = format!("{client_id}|{source}");
    let client_id = key.as_str();
    if let Some(limited) = state.auth_failures.exhausted(client_id) {
        let mut f = fail(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_client",
            format!(
                "too many failed authentications for this client; retry in {} s",
                limited.retry_after
            ),
        );
        f.retry_after = Some(limited.retry_after);
        return Err(f);
    }
    let result = attempt.await;
    if matches!(&result, Err(f) if f.error == "invalid_client") {
        let _ = state.auth_failures.take(client_id);
    }
    result
}

/// The token a client earned: its scopes, narrowed by `requested` (whose words the token's
/// `scope` echoes, SMART aliases included).
fn token_for(
    state: &AppState,
    client: &clients_store::ClientRow,
    requested: Option<&str>,
    ttl: std::time::Duration,
) -> Result<TokenResponse, OAuthFailure> {
    let (granted, scope) = granted_scopes(client.scopes(), requested)?;
    let access_token = state
        .jwt
        .issue_with_scope(&client.client_id, client.org_id, &scope, ttl)
        .map_err(|e| internal(format!("signing a token: {e}")))?;
    debug_assert_eq!(Scope::parse_list(&scope).ok(), Some(granted));
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl.as_secs(),
        scope,
    })
}

/// `private_key_jwt`: the client proves itself with a JWT signed by one of its keys.
async fn grant_by_assertion(state: &AppState, body: TokenRequest) -> Result<TokenResponse, OAuthFailure> {
    if body.client_assertion_type.as_deref() != Some(super::assertion::ASSERTION_TYPE) {
        return Err(fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("client_assertion_type must be `{}`", super::assertion::ASSERTION_TYPE),
        ));
    }
    let Some(assertion) = body.client_assertion.as_deref() else {
        return Err(fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_assertion is required",
        ));
    };
    let token_url = super::smart::token_url(state);
    let client = super::assertion::authenticate(
        &state.pool,
        &state.jwks,
        assertion,
        body.client_id.as_deref(),
        &token_url,
    )
    .await
    .map_err(|e| match e {
        super::assertion::AssertionError::Invalid(why) => fail(StatusCode::UNAUTHORIZED, "invalid_client", why),
        super::assertion::AssertionError::Unavailable(why) => {
            fail(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", why)
        }
    })?;
    let ttl = state
        .settings
        .token_ttl
        .min(std::time::Duration::from_secs(super::assertion::TOKEN_TTL_SECS));
    token_for(state, &client, body.scope.as_deref(), ttl)
}

/// The active client whose secret this is. An unknown client costs the same argon2
/// verification as a known one (against a dummy hash), so timing tells nothing.
async fn authenticate(
    state: &AppState,
    client_id: String,
    client_secret: String,
    used_basic: bool,
) -> Result<clients_store::ClientRow, OAuthFailure> {
    let invalid_client = || {
        let mut f = fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
        f.basic_challenge = used_basic;
        f
    };
    if client_id.contains('\0') || client_secret.contains('\0') || client_id.len() > 200 {
        return Err(invalid_client());
    }
    let unavailable = |e: ApiError| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.problem().detail,
        )
    };
    let mut conn = crate::db::conn(&state.pool).await.map_err(unavailable)?;
    let client = clients_store::find_by_client_id(&mut conn, &client_id)
        .await
        .map_err(|e| unavailable(ApiError::from(e)))?;
    drop(conn);
    // A key-set client has no secret: it is checked against the dummy hash, and fails.
    let stored_hash = client
        .as_ref()
        .and_then(|c| c.secret_hash.clone())
        .unwrap_or_else(|| secrets::dummy_hash().to_string());
    let verified = web::block(move || secrets::verify_secret(&client_secret, &stored_hash))
        .await
        .map_err(|e| internal(format!("checking a secret: {e}")))?;
    match client {
        Some(c) if verified && c.revoked_at.is_none() => Ok(c),
        _ => Err(invalid_client()),
    }
}

/// A requested `scope` narrows the client's scopes; one it does not hold is `invalid_scope`.
/// Returns the granted scopes and the `scope` text of the token (the request's words, SMART
/// aliases included, or the client's scopes when it asked for none).
fn granted_scopes(held: Vec<Scope>, requested: Option<&str>) -> Result<(Vec<Scope>, String), OAuthFailure> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        let text = Scope::join(&held);
        return Ok((held, text));
    };
    let granted = Scope::parse_list(requested)
        .map_err(|s| fail(StatusCode::BAD_REQUEST, "invalid_scope", format!("unknown scope `{s}`")))?;
    if let Some(s) = granted.iter().find(|s| !held.contains(s)) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("the client does not hold `{s}`"),
        ));
    }
    let mut words: Vec<&str> = Vec::new();
    for word in requested.split_ascii_whitespace() {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    Ok((granted, words.join(" ")))
}

/// Exchange client credentials for an access token (OAuth2 client-credentials grant).
#[utoipa::path(
    tag = "auth",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_scope` or `unsupported_grant_type`", body = OAuthError),
        (status = 401, description = "`invalid_client` (a wrong secret, or a client assertion that fails a check: its `error_description` says which)", body = OAuthError),
        (status = 413, description = "Body too large", body = OAuthError),
        (status = 429, description = "Over 10 failed authentications for this client id in a minute", body = OAuthError),
        (status = 503, description = "Database unavailable", body = OAuthError),
    ),
    security(())
)]
#[post("/oauth/token")]
pub async fn issue_token(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    match grant(req, payload, state).await {
        Ok(token) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(token),
        Err(failure) => {
            let mut response = failure.into_response();
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            response
        }
    }
}
