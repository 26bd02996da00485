//! Recovering an endpoint: `POST /v1/webhooks/{id}/enable` re-activates one disabled by a
//! 410, and `POST /v1/webhooks/{id}/replay` re-queues what it missed from the kept events
//! (same event ids, so receivers deduplicate; the payload as it was sent).

use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::Webhook;
use super::{service, store};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Re-activate an endpoint (one a 410 disabled, say). Enabling an active one changes
/// nothing. Events of the time it was disabled are sent by a replay.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The active endpoint", body = Webhook),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/webhooks/{id}/enable")]
pub async fn enable_webhook(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let row = service::enable(&mut conn, Actor::Caller(&principal), principal.org, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(Webhook::from(row)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Re-send the events that occurred at or after this time (RFC 3339), within the
    /// retention (`RAPPORT_EVENT_RETENTION_DAYS`, default 30).
    #[schema(example = "2026-03-04T00:00:00Z")]
    pub since: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    /// Messages queued (each with its original event id and body).
    pub queued: usize,
}

/// Re-queue, for this endpoint, every kept event of a type it takes since `since`: the same
/// event ids (receivers deduplicate) and the payload as it was sent. The endpoint must be
/// active (enable it first). An erased patient's events are gone and never resent.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Queued; delivery follows", body = ReplayResult),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled: enable it first", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::NotJson,
        (status = 422, description = "`since` missing or not an RFC 3339 time", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/webhooks/{id}/replay")]
pub async fn replay_webhook(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
    body: ApiJson<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let id = id.into_inner();
    let org = principal.org;
    let mut conn = crate::db::conn(&state.pool).await?;
    // The path decides first: an id the caller cannot see is 404 whatever the body says.
    store::find(&mut conn, org, id).await?.ok_or(ApiError::NotFound)?;
    let since = crate::extract::from_value::<ReplayRequest>(body.0)?.since;
    let queued = service::replay(&mut conn, Actor::Caller(&principal), org, id, since).await?;
    Ok(HttpResponse::Accepted().json(ReplayResult { queued }))
}
