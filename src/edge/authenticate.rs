//! The web edge's authentication: a handler's `Principal` argument from the request's
//! bearer token (one of rapport's own HS256 tokens, or an organisation's identity
//! provider's), then the client's rate limit. Tokens elsewhere (query string, cookies) are
//! never looked at, and never logged.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::token::{MAX_AUTHORIZATION_BYTES, TokenError};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult};
use crate::ids::ClientId;
use crate::state::AppState;

fn unauthorized(detail: &str) -> ApiError {
    ApiError::Unauthorized(detail.to_string())
}

/// The bearer token from the Authorization header. Tokens elsewhere (query string, cookies)
/// are never looked at.
pub fn bearer_token(req: &HttpRequest) -> ApiResult<String> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing bearer token"))?;
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(unauthorized("authorization header too large"));
    }
    let value = value
        .to_str()
        .map_err(|_| unauthorized("malformed authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthorized("malformed authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized("authorization scheme must be Bearer"));
    }
    Ok(token.trim().to_string())
}

/// A bearer token signed by an organisation's identity provider (never one naming rapport's
/// own issuer: those are HS256 only).
async fn external(state: &AppState, token: &str) -> ApiResult<Principal> {
    let issuer =
        crate::auth::assertion::unverified_issuer(token).ok_or_else(|| unauthorized("invalid or expired token"))?;
    if issuer == state.settings.jwt_issuer {
        return Err(unauthorized("invalid or expired token"));
    }
    let (org, subject, scopes) = state
        .identity
        .verify(token, &issuer)
        .await?
        .ok_or_else(|| unauthorized("invalid or expired token: no identity provider has its issuer"))?;
    Ok(Principal {
        org,
        client_id: ClientId::new(subject),
        scopes,
        patient: None,
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let (method, path, query) = (
            req.method().as_str().to_string(),
            req.path().to_string(),
            req.query_string().to_string(),
        );
        let pattern = req.match_pattern();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let principal = authenticate(&state, &token).await?;
            // A launch token (one patient, from the EHR) reaches its patient's reads only.
            if principal.patient.is_some()
                && !pattern
                    .as_deref()
                    .is_some_and(|p| crate::launch::patient_route(&method, p))
            {
                return Err(ApiError::Forbidden(
                    "a token launched from the EHR for one patient cannot use this operation".into(),
                ));
            }
            // Per client, after authentication (an unauthenticated flood costs a signature
            // check each, never a database read).
            state
                .rate_limit
                .take(&format!("{}|{}", principal.org, principal.client_id))
                .map_err(ApiError::RateLimited)?;
            // Then the query: a parameter the operation does not document is 400 naming it
            // (after the 401, before any handler reads a filter).
            state.routes.check_query(&method, &path, &query)?;
            Ok(principal)
        })
    }
}

/// The caller a bearer token names: one of rapport's own tokens, or an identity provider's.
async fn authenticate(state: &AppState, token: &str) -> ApiResult<Principal> {
    // rapport's own tokens are HS256; anything else may be an identity provider's.
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("invalid or expired token"))?;
    if header.alg != jsonwebtoken::Algorithm::HS256 {
        return external(state, token).await;
    }
    let claims = state.jwt.verify(token).map_err(|e| match e {
        TokenError::TooLarge => unauthorized("token too large"),
        TokenError::Invalid(_) => unauthorized("invalid or expired token"),
    })?;
    let scopes = Scope::parse_list(&claims.scope).map_err(|_| unauthorized("invalid token scope"))?;
    let client_id = ClientId::new(claims.sub);
    if let Some(connection) = claims.ehr {
        return launched(state, claims.org, connection, client_id, scopes, claims.patient).await;
    }
    if !state.client_status.is_known_active(claims.org, &client_id) {
        let mut conn = crate::db::conn(&state.pool).await?;
        if !crate::clients::store::is_active(&mut conn, claims.org, &client_id).await? {
            return Err(unauthorized("client revoked or unknown"));
        }
        state.client_status.remember_active(claims.org, &client_id);
    }
    Ok(Principal {
        org: claims.org,
        client_id,
        scopes,
        patient: None,
    })
}

/// A launch token's caller, while its EHR connection exists (checked at most
/// `RAPPORT_CLIENT_STATUS_TTL_SECS` ago, so a deleted connection stops its tokens within
/// that time everywhere, at once where it was deleted).
async fn launched(
    state: &AppState,
    org: crate::ids::OrgId,
    connection: uuid::Uuid,
    client_id: ClientId,
    scopes: Vec<Scope>,
    patient: Option<String>,
) -> ApiResult<Principal> {
    let patient = patient.ok_or_else(|| unauthorized("invalid or expired token"))?;
    let key = crate::launch::service::status_key(connection);
    if !state.client_status.is_known_active(org, &key) {
        let mut conn = crate::db::conn(&state.pool).await?;
        if !crate::launch::store::exists(&mut conn, org, connection).await? {
            return Err(unauthorized("the EHR connection of this launch was deleted"));
        }
        state.client_status.remember_active(org, &key);
    }
    Ok(Principal {
        org,
        client_id,
        scopes,
        patient: Some(patient),
    })
}
