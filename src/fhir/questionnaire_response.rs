//! QuestionnaireResponses in (through the same use cases as `POST /v1/responses` and its
//! void) and out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use serde_json::{Value, json};

use super::posted::parse_posted;
use super::{FhirResult, authorised, base_url, fail, fhir_json, invalid, outcome, resources};
use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::ids::{OrgId, ResponseId};
use crate::responses::model::{Administration, Source};
use crate::responses::{Ingested, service, store};
use crate::state::AppState;

async fn as_resource(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    base: &str,
    a: &Administration,
    org: OrgId,
) -> Value {
    let instrument = crate::analytics::instrument_at(conn, &state.builtins, org, &a.instrument, a.instrument_version)
        .await
        .ok();
    resources::questionnaire_response(base, a, instrument.as_deref())
}

/// Ingest a QuestionnaireResponse through the same path as `POST /v1/responses`.
/// `identifier` is the idempotency key (`If-None-Exist: identifier=...` honoured too);
/// `status: entered-in-error` voids the stored response with that identifier.
#[utoipa::path(
    tag = "fhir",
    request_body(content = Object, content_type = "application/fhir+json", description = "QuestionnaireResponse (R4)"),
    responses(
        (status = 201, description = "Stored; the QuestionnaireResponse as stored", body = Object, content_type = "application/fhir+json"),
        (status = 200, description = "Already stored (same identifier and payload), or voided", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome (entered-in-error for an unknown identifier)", body = Object, content_type = "application/fhir+json"),
        (status = 409, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 422, description = "OperationOutcome naming each bad element", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["responses:write"]))
)]
#[post("/QuestionnaireResponse")]
pub async fn create_questionnaire_response(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    body: Result<ApiJson<Value>, ApiError>,
) -> FhirResult {
    let principal = authorised(principal, Some(Scope::ResponsesWrite))?;
    let qr = body.map_err(fail)?.0;
    let base = base_url(&req);
    let posted = parse_posted(&qr).map_err(fail)?;
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;

    match posted.status.as_str() {
        "completed" | "amended" => {}
        "entered-in-error" => {
            let Some(external_id) = posted.body.external_id.clone() else {
                return Err(fail(invalid(
                    "QuestionnaireResponse.identifier",
                    "entered-in-error needs the identifier of the stored response",
                )));
            };
            let row = store::find_by_external_id(&mut conn, principal.org, &external_id)
                .await
                .map_err(|e| fail(e.into()))?
                .ok_or_else(|| fail(ApiError::NotFound))?;
            let voided = service::void(
                &mut conn,
                &state,
                &principal,
                ResponseId(row.id),
                "entered-in-error (FHIR)",
                Source::Fhir,
            )
            .await
            .map_err(fail)?;
            let a = Administration::from(voided);
            return Ok(fhir_json(
                StatusCode::OK,
                &as_resource(&state, &mut conn, &base, &a, principal.org).await,
            ));
        }
        "in-progress" => {
            return Err(fail(invalid(
                "QuestionnaireResponse.status",
                "in-progress responses are not accepted: post the completed response",
            )));
        }
        _ => {
            return Err(fail(invalid(
                "QuestionnaireResponse.status",
                "must be completed, amended or entered-in-error",
            )));
        }
    }

    // Conditional create: an existing response with that identifier is the answer.
    if let Some(condition) = req.headers().get("If-None-Exist").and_then(|v| v.to_str().ok()) {
        let wanted = condition
            .trim()
            .strip_prefix("identifier=")
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned());
        if let Some(existing_id) = wanted
            && let Some(row) = store::find_by_external_id(&mut conn, principal.org, &existing_id)
                .await
                .map_err(|e| fail(e.into()))?
        {
            let a = Administration::from(row);
            return Ok(fhir_json(
                StatusCode::OK,
                &as_resource(&state, &mut conn, &base, &a, principal.org).await,
            ));
        }
    }

    let expressions = posted.expressions;
    let map = |pointer: &str| {
        expressions
            .get(pointer)
            .cloned()
            .unwrap_or_else(|| "QuestionnaireResponse".to_string())
    };
    let (status, stored) = match service::ingest(&mut conn, &state, &principal, posted.body, Source::Fhir)
        .await
        .map_err(|e| outcome(&e, &map))?
    {
        Ingested::Created(row) => (StatusCode::CREATED, row),
        Ingested::Duplicate(row) => (StatusCode::OK, row),
    };
    let a = Administration::from(stored);
    let mut response = fhir_json(status, &as_resource(&state, &mut conn, &base, &a, principal.org).await);
    if let Ok(v) =
        actix_web::http::header::HeaderValue::from_str(&format!("{base}/fhir/r4/QuestionnaireResponse/{}", a.id))
    {
        response.headers_mut().insert(actix_web::http::header::LOCATION, v);
    }
    Ok(response)
}

/// A stored response as a QuestionnaireResponse (voided ones with status entered-in-error).
#[utoipa::path(
    tag = "fhir",
    params(("id" = String, Path, description = "The response id")),
    responses(
        (status = 200, description = "QuestionnaireResponse", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/QuestionnaireResponse/{id}")]
pub async fn read_questionnaire_response(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> FhirResult {
    let principal = authorised(principal, Some(Scope::ResponsesRead))?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| fail(ApiError::NotFound))?;
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let row = store::find(&mut conn, principal.org, ResponseId(id))
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(ApiError::NotFound))?;
    let a = Administration::from(row);
    let resource = as_resource(&state, &mut conn, &base_url(&req), &a, principal.org).await;
    audit::record_read(
        &mut conn,
        &principal,
        "response.read",
        "response",
        Some(id.to_string()),
        json!({"via": "fhir"}),
    )
    .await
    .map_err(|e| fail(e.into()))?;
    Ok(fhir_json(StatusCode::OK, &resource))
}
