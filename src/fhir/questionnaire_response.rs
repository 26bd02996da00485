//! QuestionnaireResponses in (through the same use cases as `POST /v1/responses` and its
//! void) and out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, get, post, web};
use serde_json::{Value, json};

use super::posted::{Identifier, PostedStatus, identifier_of, if_none_exist, parse_posted, status_of, subject_of};
use super::{FhirResult, authorised, base_url, fail, fhir_json, outcome, resources};
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
    body: Result<ApiJson<Box<serde_json::value::RawValue>>, ApiError>,
) -> FhirResult {
    let principal = authorised(principal, Some(Scope::ResponsesWrite))?;
    // Kept as its text too: decimal answers are judged as written, not as a double.
    let raw = body.map_err(fail)?.0;
    let qr: Value =
        serde_json::from_str(raw.get()).map_err(|e| fail(ApiError::BadRequest(format!("malformed JSON: {e}"))))?;
    let base = base_url(&req);
    let status = status_of(&qr).map_err(fail)?;
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    if status == PostedStatus::EnteredInError {
        let voided = void_posted(&mut conn, &state, &principal, &qr).await.map_err(fail)?;
        if !principal.has(Scope::ResponsesRead) {
            // A write-only feed learns that the void took, never the answers.
            return Ok(fhir_json(
                StatusCode::OK,
                &serde_json::json!({"resourceType": "QuestionnaireResponse", "id": voided.id, "status": "entered-in-error"}),
            ));
        }
        let a = Administration::from(voided);
        return Ok(fhir_json(
            StatusCode::OK,
            &as_resource(&state, &mut conn, &base, &a, principal.org).await,
        ));
    }
    let inexact = super::posted::inexact_decimals(raw.get());
    let posted = match parse_posted(&qr, &base) {
        Ok(posted) if inexact.is_empty() => posted,
        Ok(_) => return Err(fail(ApiError::Validation(inexact))),
        Err(ApiError::Validation(mut errors)) => {
            errors.extend(inexact);
            return Err(fail(ApiError::Validation(errors)));
        }
        Err(other) => return Err(fail(other)),
    };

    // Conditional create: an existing response with that identifier is the answer.
    if let Some(condition) = req.headers().get("If-None-Exist") {
        let wanted = if_none_exist(condition.to_str().unwrap_or_default()).map_err(fail)?;
        if let Some(row) = stored_under(&mut conn, &principal, &wanted).await.map_err(fail)? {
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
    // `amended` with a stored identifier corrects that response; otherwise it is stored.
    let to_amend = match (status, identifier_of(&qr)) {
        (PostedStatus::Amended, Some(identifier)) => {
            stored_under(&mut conn, &principal, &identifier).await.map_err(fail)?
        }
        _ => None,
    };
    let (status, stored) = match to_amend {
        Some(stored) => (
            StatusCode::OK,
            service::amend(&mut conn, &state.ingest, &principal, stored, posted.body, Source::Fhir)
                .await
                .map_err(|e| outcome(&e, &map))?,
        ),
        None => match service::ingest(&mut conn, &state.ingest, &principal, posted.body, Source::Fhir)
            .await
            .map_err(|e| outcome(&e, &map))?
        {
            Ingested::Created(row) => (StatusCode::CREATED, row),
            Ingested::Duplicate(row) => (StatusCode::OK, row),
        },
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
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let a = super::stored_response(&mut conn, &principal, &id).await?;
    let resource = as_resource(&state, &mut conn, &base_url(&req), &a, principal.org).await;
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::ResponseRead,
        "response",
        Some(a.id.to_string()),
        json!({"via": "fhir"}),
    )
    .await
    .map_err(fail)?;
    Ok(fhir_json(StatusCode::OK, &resource))
}

async fn stored_under(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    identifier: &Identifier,
) -> Result<Option<store::AdministrationRow>, ApiError> {
    Ok(store::find_by_external_id(conn, principal.org, identifier.system.as_deref(), &identifier.value).await?)
}

/// `entered-in-error`: voids the response stored under the identifier, only when it is the
/// same subject's (anything else is 404, as for an unknown identifier). Needs no more of
/// the resource than `identifier`, `subject` and `status`.
async fn void_posted(
    conn: &mut diesel_async::AsyncPgConnection,
    state: &AppState,
    principal: &Principal,
    qr: &Value,
) -> Result<store::AdministrationRow, ApiError> {
    let mut errors = Vec::new();
    let identifier = identifier_of(qr);
    if identifier.is_none() {
        errors.push(crate::error::FieldError::new(
            "QuestionnaireResponse.identifier",
            "entered-in-error needs the identifier of the stored response",
        ));
    }
    let subject = subject_of(qr);
    if subject.is_none() {
        errors.push(crate::error::FieldError::new(
            "QuestionnaireResponse.subject",
            "entered-in-error needs the subject (Patient/{id}) of the stored response",
        ));
    }
    let (Some(identifier), Some(subject)) = (identifier, subject) else {
        return Err(ApiError::Validation(errors));
    };
    let row = stored_under(conn, principal, &identifier)
        .await?
        .filter(|row| row.patient == subject)
        .ok_or(ApiError::NotFound)?;
    service::void(
        conn,
        &state.ingest,
        principal,
        ResponseId(row.id),
        "entered-in-error (FHIR)",
        Source::Fhir,
    )
    .await
}
