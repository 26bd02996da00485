use actix_web::{HttpResponse, get, post, web};
use serde_json::json;
use uuid::Uuid;

use super::model::{
    Administration, AdministrationPage, BatchRequest, BatchResponse, ListQuery, NewResponse, Source, VoidRequest,
};
use super::{Ingested, MAX_BATCH, service, store};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, LargeJson};
use crate::ids::ResponseId;
use crate::pagination;
use crate::state::AppState;

/// Ingest one response: checked against the pinned (or latest published) version, scored,
/// stored with its audit event. A re-post with the same `external_id` and payload answers
/// 200 with the stored response; a different payload 409.
#[utoipa::path(
    tag = "responses",
    request_body = NewResponse,
    responses(
        (status = 201, description = "Stored, with its score", body = Administration, headers(("Location" = String, description = "The response's URL"))),
        (status = 200, description = "Already stored with this external_id and the same payload", body = Administration),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:write`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "external_id stored with a different payload", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "Invalid content; every bad field named by pointer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:write"]))
)]
#[post("/responses")]
pub async fn create_response(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewResponse>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::ResponsesWrite).await?;
    match service::ingest(&mut conn, &state.ingest, &principal, body.0, Source::Api).await? {
        Ingested::Created(row) => Ok(HttpResponse::Created()
            .insert_header(("Location", format!("/v1/responses/{}", row.id)))
            .json(Administration::from(row))),
        Ingested::Duplicate(row) => Ok(HttpResponse::Ok()
            .insert_header(("Location", format!("/v1/responses/{}", row.id)))
            .json(Administration::from(row))),
    }
}

/// Ingest up to 1,000 responses. Each gets a result in input order; one bad item does not
/// reject the others. Valid items are written with one multi-row statement.
#[utoipa::path(
    tag = "responses",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per item, in input order", body = BatchResponse),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:write`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::NotJson,
        (status = 422, description = "No `responses` array, or more than 1,000 items", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:write"]))
)]
#[post("/responses/batch")]
pub async fn create_responses_batch(
    principal: Principal,
    state: web::Data<AppState>,
    body: LargeJson<BatchRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesWrite)?;
    let items = body.0.responses;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "/responses",
            format!("must hold 1 to {MAX_BATCH} responses"),
        ));
    }
    let mut conn = crate::db::conn(&state.pool).await?;
    let results = service::ingest_many(&mut conn, &state.ingest, &principal, items).await?;
    Ok(HttpResponse::Ok().json(BatchResponse { results }))
}

/// One response with its score.
#[utoipa::path(
    tag = "responses",
    params(("id" = Uuid, Path, description = "The response id")),
    responses(
        (status = 200, description = "The response", body = Administration),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such response in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/responses/{id}")]
pub async fn get_response(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let id = id.into_inner();
    // One pooled connection for the read and its audit event.
    let mut conn = crate::db::conn(&state.pool).await?;
    let row = store::find(&mut conn, principal.org, ResponseId(id))
        .await?
        .filter(|row| principal.sees(&row.patient))
        .ok_or(ApiError::NotFound)?;
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::ResponseRead,
        "response",
        Some(id.to_string()),
        json!({}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(Administration::from(row)))
}

/// Responses, filtered, in the order they were stored; keyset-paged with an opaque cursor.
#[utoipa::path(
    tag = "responses",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = AdministrationPage),
        (status = 400, description = "Bad `limit`, `cursor`, date or enum value", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/responses")]
pub async fn list_responses(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<ListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let mut query = query.into_inner();
    let limit = pagination::limit(query.limit.as_deref())?;
    let after: Option<i64> = pagination::decode_cursor(query.cursor.as_deref())?;
    // A launch token lists its patient only; a filter naming another finds nothing.
    let crate::auth::PatientFilter::Filter(patient) = principal.patient_filter(query.patient.as_deref()) else {
        return Ok(HttpResponse::Ok().json(AdministrationPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    };
    query.patient = patient;
    let mut conn = state.read_conn().await?;
    let rows = store::list(&mut conn, principal.org, &query, after, limit).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.seq);
    // The filters name patients: the audit detail records which filters were used, not values.
    let filters = audit::filters_used(&[
        ("patient", query.patient.is_some()),
        ("clinician", query.clinician.is_some()),
        ("episode", query.episode.is_some()),
        ("instrument", query.instrument.is_some()),
    ]);
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::ResponsesListed,
        "response",
        None,
        json!({"rows": rows.len(), "filters": filters}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(AdministrationPage {
        items: rows.into_iter().map(Administration::from).collect(),
        next_cursor,
    }))
}

/// Mark a response entered-in-error. It leaves trends and summaries but stays readable,
/// with its reason, and in the audit trail. Voiding again changes nothing. A caller without
/// `responses:read` gets `{"id", "status"}` only (a write-only feed never reads answers back).
#[utoipa::path(
    tag = "responses",
    params(("id" = Uuid, Path, description = "The response id")),
    request_body = VoidRequest,
    responses(
        (status = 200, description = "The voided response (`{\"id\", \"status\"}` only without `responses:read`)", body = Administration),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such response in this organisation", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "Reason missing or over 500 characters", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:write"]))
)]
#[post("/responses/{id}/void")]
pub async fn void_response(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: ApiJson<VoidRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesWrite)?;
    let reason = body.0.reason;
    let len = reason.trim().chars().count();
    if len == 0 || reason.chars().count() > 500 || reason.contains('\0') {
        return Err(ApiError::validation(
            "/reason",
            "must be 1 to 500 characters, without NUL",
        ));
    }
    let mut conn = crate::db::conn(&state.pool).await?;
    let row = service::void(
        &mut conn,
        &state.ingest,
        &principal,
        ResponseId(id.into_inner()),
        reason.trim(),
        Source::Api,
    )
    .await?;
    if !principal.has(Scope::ResponsesRead) {
        return Ok(HttpResponse::Ok().json(serde_json::json!({"id": row.id, "status": row.status})));
    }
    Ok(HttpResponse::Ok().json(Administration::from(row)))
}
