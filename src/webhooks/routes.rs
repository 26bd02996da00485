use actix_web::{HttpResponse, delete, get, post, web};
use uuid::Uuid;

use super::model::{
    Delivery, DeliveryPage, DeliveryQuery, EVENT_TYPES, NewWebhook, Webhook, WebhookList, WebhookWithSecret,
};
use super::{service, signature, store, test_announcement};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::ApiJson;
use crate::outbound as target;
use crate::pagination;
use crate::state::AppState;

const MAX_DESCRIPTION: usize = 500;

/// Register a webhook endpoint. The signing secret is in this answer only. A `full` payload
/// (the default) carries patient data and needs `responses:read` as well as `org:admin`.
#[utoipa::path(
    tag = "webhooks",
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Registered; the secret is shown only here", body = WebhookWithSecret),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin` (and `responses:read` for a `full` payload)", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "A URL that is not https or reaches an internal address, an unknown event, a bad payload or description", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/webhooks")]
pub async fn create_webhook(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewWebhook>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let body = body.0;
    let mut errors = Vec::new();
    let url = match target::check_registration(&body.url, state.settings.webhook_allow_private).await {
        Ok(url) => Some(url.to_string()),
        Err(problem) => {
            errors.push(FieldError::new("/url", problem));
            None
        }
    };
    let mut events: Vec<String> = Vec::new();
    if body.events.is_empty() {
        errors.push(FieldError::new("/events", "must name at least one event"));
    }
    for (i, event) in body.events.iter().enumerate() {
        if !EVENT_TYPES.contains(&event.as_str()) {
            errors.push(FieldError::new(
                format!("/events/{i}"),
                "must be alert.created, alert.resolved, response.created or response.voided",
            ));
        } else if !events.contains(event) {
            events.push(event.clone());
        }
    }
    let description = body.description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
    if let Some(d) = &description
        && (d.chars().count() > MAX_DESCRIPTION || d.contains('\0'))
    {
        errors.push(FieldError::new(
            "/description",
            "must be at most 500 characters, without NUL",
        ));
    }
    let payload = body.payload.unwrap_or_else(|| "full".into());
    if payload != "full" && payload != "id-only" {
        errors.push(FieldError::new("/payload", "must be full or id-only"));
    }
    // A full payload carries every patient's data: only a caller who may read it registers one.
    if payload == "full" && !principal.has(Scope::ResponsesRead) {
        return Err(ApiError::Forbidden(
            "a `full` payload sends patient data: it needs `responses:read` as well as `org:admin` (or use `id-only`)"
                .into(),
        ));
    }
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let secret = signature::new_secret();
    let new = store::NewEndpoint {
        url: &url,
        events: &events,
        description: description.as_deref(),
        payload: &payload,
        secret: &secret,
    };
    let mut conn = crate::db::conn(&state.pool).await?;
    let row = service::create(&mut conn, Actor::Caller(&principal), principal.org, &new).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/webhooks/{}", row.id)))
        .json(WebhookWithSecret {
            secret: row.secret.clone(),
            webhook: Webhook::from(row),
        }))
}

/// The organisation's webhook endpoints (never their secrets).
#[utoipa::path(
    tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint, disabled ones included", body = WebhookList),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/webhooks")]
pub async fn list_webhooks(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let rows = store::list(&mut conn, principal.org).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        items: rows.into_iter().map(Webhook::from).collect(),
    }))
}

async fn endpoint_of(
    state: &AppState,
    principal: &Principal,
    id: crate::ids::WebhookId,
) -> ApiResult<store::EndpointRow> {
    let mut conn = state.conn_for(principal, Scope::OrgAdmin).await?;
    store::find(&mut conn, principal.org, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// One webhook endpoint.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = Webhook),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/webhooks/{id}")]
pub async fn get_webhook(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
) -> ApiResult<HttpResponse> {
    let row = endpoint_of(&state, &principal, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(Webhook::from(row)))
}

/// Delete an endpoint; its queued messages go with it.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[delete("/webhooks/{id}")]
pub async fn delete_webhook(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    service::delete(&mut conn, Actor::Caller(&principal), principal.org, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Issue a new signing secret (shown only in this answer). The replaced one keeps signing
/// alongside it for 24 hours (two `v1,` signatures), so receivers can switch without a gap;
/// a second rotation within that time drops the oldest.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = WebhookWithSecret),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/webhooks/{id}/rotate-secret")]
pub async fn rotate_secret(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let secret = signature::new_secret();
    let mut conn = crate::db::conn(&state.pool).await?;
    let row = service::rotate(
        &mut conn,
        Actor::Caller(&principal),
        principal.org,
        id.into_inner(),
        &secret,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(WebhookWithSecret {
            secret: row.secret.clone(),
            webhook: Webhook::from(row),
        }))
}

/// Queue a `webhook.test` message to this endpoint (whatever its subscriptions).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 202, description = "Queued; follow it in the deliveries", body = Delivery),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/webhooks/{id}/test")]
pub async fn test_webhook(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
) -> ApiResult<HttpResponse> {
    let endpoint = endpoint_of(&state, &principal, id.into_inner()).await?;
    if endpoint.status != "active" {
        return Err(ApiError::Conflict("the endpoint is disabled".into()));
    }
    let event = test_announcement(endpoint.id);
    let mut conn = crate::db::conn(&state.pool).await?;
    let queued = store::queue(
        &mut conn,
        principal.org,
        vec![store::NewDelivery {
            endpoint_id: endpoint.id,
            event_id: event.id,
            event_type: event.event_type.to_string(),
            body: event.body(&endpoint.payload),
        }],
    )
    .await?;
    let delivery = queued
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("the test message was not queued")))?;
    Ok(HttpResponse::Accepted().json(Delivery::from(delivery)))
}

/// The endpoint's deliveries, newest first, keyset-paged.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = Uuid, Path, description = "The endpoint id"), DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "Bad `status`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::WebhookId>,
    query: crate::extract::ApiQuery<DeliveryQuery>,
) -> ApiResult<HttpResponse> {
    let endpoint = endpoint_of(&state, &principal, id.into_inner()).await?;
    let status = query.status.as_deref();
    if status.is_some_and(|s| !["pending", "delivered", "failed"].contains(&s)) {
        return Err(ApiError::BadRequest(
            "`status` must be pending, delivered or failed".into(),
        ));
    }
    let limit = pagination::limit(query.limit.as_deref())?;
    let before: Option<i64> = pagination::decode_cursor(query.cursor.as_deref())?;
    let mut conn = crate::db::conn(&state.pool).await?;
    let rows = store::deliveries(&mut conn, principal.org, endpoint.id, status, before, limit).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.seq);
    Ok(HttpResponse::Ok().json(DeliveryPage {
        items: rows.into_iter().map(Delivery::from).collect(),
        next_cursor,
    }))
}

/// Send a failed delivery again: it goes back to `pending`, due now, for one more attempt
/// (a pending one is left as it is).
#[utoipa::path(
    tag = "webhooks",
    params(
        ("id" = Uuid, Path, description = "The endpoint id"),
        ("delivery_id" = Uuid, Path, description = "The delivery id"),
    ),
    responses(
        (status = 200, description = "The delivery, pending again", body = Delivery),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint or delivery in this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already delivered, or the endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/retry")]
pub async fn retry_delivery(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(crate::ids::WebhookId, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery_id) = path.into_inner();
    let endpoint = endpoint_of(&state, &principal, id).await?;
    let mut conn = crate::db::conn(&state.pool).await?;
    let current = store::find_delivery(&mut conn, principal.org, endpoint.id, delivery_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    match current.status.as_str() {
        "delivered" => return Err(ApiError::Conflict("the delivery was already delivered".into())),
        "pending" => return Ok(HttpResponse::Ok().json(Delivery::from(current))),
        _ => {}
    }
    if endpoint.status != "active" {
        return Err(ApiError::Conflict("the endpoint is disabled".into()));
    }
    let row = match store::retry(&mut conn, principal.org, endpoint.id, delivery_id).await? {
        Some(row) => row,
        // Another retry (or a worker) got there first: answer what it is now.
        None => store::find_delivery(&mut conn, principal.org, endpoint.id, delivery_id)
            .await?
            .ok_or(ApiError::NotFound)?,
    };
    Ok(HttpResponse::Ok().json(Delivery::from(row)))
}
