//! The authenticated caller, as a handler argument: `Principal { org, client_id, scopes }`.

use crate::ids::OrgId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::Scope;
use super::token::{MAX_AUTHORIZATION_BYTES, TokenError};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct Principal {
    pub org: OrgId,
    pub client_id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Aggregate analytics: `analytics:read`, or `responses:read` (patient-level access
    /// includes the aggregates).
    pub fn require_analytics(&self) -> ApiResult<()> {
        if self.has(Scope::AnalyticsRead) || self.has(Scope::ResponsesRead) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this operation needs the `analytics:read` (or `responses:read`) scope".into(),
            ))
        }
    }

    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this operation needs the `{scope}` scope")))
        }
    }
}

/// Remembers, per process and for a bounded time, that a client was not revoked, so that a
/// request does not pay a database round trip for it. The bound (at most 60 s, default 30 s)
/// is how long another instance may keep honouring a revoked client's tokens; the instance
/// that revokes forgets at once.
pub struct ClientStatusCache {
    ttl: Duration,
    active_until: Mutex<HashMap<(OrgId, String), Instant>>,
}

impl ClientStatusCache {
    pub fn new(ttl: Duration) -> Self {
        ClientStatusCache {
            ttl,
            active_until: Mutex::new(HashMap::new()),
        }
    }

    fn is_known_active(&self, org: OrgId, client_id: &str) -> bool {
        let Ok(map) = self.active_until.lock() else {
            return false;
        };
        map.get(&(org, client_id.to_string()))
            .is_some_and(|until| *until > Instant::now())
    }

    fn remember_active(&self, org: OrgId, client_id: &str) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.active_until.lock() {
            if map.len() > 10_000 {
                let now = Instant::now();
                map.retain(|_, until| *until > now);
            }
            map.insert((org, client_id.to_string()), Instant::now() + self.ttl);
        }
    }

    pub fn forget(&self, org: OrgId, client_id: &str) {
        if let Ok(mut map) = self.active_until.lock() {
            map.remove(&(org, client_id.to_string()));
        }
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::Unauthorized(detail.to_string())
}

/// The bearer token from the Authorization header. Tokens elsewhere (query string, cookies)
/// are never looked at.
fn bearer_token(req: &HttpRequest) -> ApiResult<String> {
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
    let issuer = super::assertion::unverified_issuer(token).ok_or_else(|| unauthorized("invalid or expired token"))?;
    if issuer == state.settings.jwt_issuer {
        return Err(unauthorized("invalid or expired token"));
    }
    let (org, subject, scopes) = crate::identity::verify(state, token, &issuer)
        .await?
        .ok_or_else(|| unauthorized("invalid or expired token: no identity provider has its issuer"))?;
    Ok(Principal {
        org,
        client_id: subject,
        scopes,
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let principal = authenticate(&state, &token).await?;
            // Per client, after authentication (an unauthenticated flood costs a signature
            // check each, never a database read).
            state
                .rate_limit
                .take(&format!("{}|{}", principal.org, principal.client_id))
                .map_err(ApiError::RateLimited)?;
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
    if !state.client_status.is_known_active(claims.org, &claims.sub) {
        let mut conn = crate::db::conn(&state.pool).await?;
        if !crate::clients::store::is_active(&mut conn, claims.org, &claims.sub).await? {
            return Err(unauthorized("client revoked or unknown"));
        }
        state.client_status.remember_active(claims.org, &claims.sub);
    }
    Ok(Principal {
        org: claims.org,
        client_id: claims.sub,
        scopes,
    })
}
