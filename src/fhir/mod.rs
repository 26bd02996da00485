//! The FHIR R4 front door: Questionnaire out, QuestionnaireResponse in (through the same
//! ingest path as `POST /v1/responses`), score Observations out. Every error is an
//! OperationOutcome. Voided responses are read back with status `entered-in-error` and are
//! left out of Observation searches.

pub mod metadata;
pub mod observation;
pub mod observation_search;
mod posted;
pub mod questionnaire;
pub mod questionnaire_response;
pub mod resources;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, FieldError};
use resources::FHIR_JSON;

/// The public base URL of this service: `RAPPORT_PUBLIC_URL` (or the bound address), never
/// the caller's `Host` unless `RAPPORT_TRUST_FORWARDED` says a proxy sets it.
pub fn base_url(req: &HttpRequest) -> String {
    match req.app_data::<crate::config::PublicBase>() {
        Some(base) => base.for_request(req),
        None => String::new(),
    }
}

pub fn fhir_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(FHIR_JSON)
        .body(body.to_string())
}

/// An OperationOutcome answer, as the error type of every FHIR handler.
#[derive(Debug)]
pub struct FhirFailure {
    status: StatusCode,
    body: Value,
    headers: Vec<(header::HeaderName, header::HeaderValue)>,
    /// A 5xx's cause, for the request log line (never in the body).
    cause: Option<crate::error::ErrorCause>,
}

impl std::fmt::Display for FhirFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FHIR {}", self.status)
    }
}

impl ResponseError for FhirFailure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = fhir_json(self.status, &self.body);
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        if let Some(cause) = &self.cause {
            response.extensions_mut().insert(cause.clone());
        }
        response
    }
}

/// The OperationOutcome issue code for an HTTP status.
fn issue_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "structure",
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        405 => "not-supported",
        408 => "timeout",
        409 => "conflict",
        413 => "too-long",
        415 => "not-supported",
        422 => "invalid",
        429 => "throttled",
        503 => "transient",
        _ => "exception",
    }
}

/// A problem+json body (as rendered by `ApiError` or `problem_with_status`) as an
/// OperationOutcome answer with the same status.
pub fn outcome_from_problem(status: StatusCode, problem: &Value) -> HttpResponse {
    let code = issue_code(status);
    let detail = problem["detail"].as_str().unwrap_or("error");
    let issues: Vec<Value> = match problem["errors"].as_array() {
        Some(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| json!({"severity": "error", "code": code, "diagnostics": e["detail"], "expression": [e["pointer"]]}))
            .collect(),
        _ => vec![json!({"severity": "error", "code": code, "diagnostics": detail})],
    };
    fhir_json(status, &json!({"resourceType": "OperationOutcome", "issue": issues}))
}

/// An `ApiError` as an OperationOutcome with the same status; `expression` turns a JSON
/// pointer of the internal request into a FHIRPath expression of the posted resource.
pub fn outcome(error: &ApiError, expression: &dyn Fn(&str) -> String) -> FhirFailure {
    let status = error.status_code();
    let code = issue_code(status);
    let issues: Vec<Value> = match error {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|e| json!({"severity": "error", "code": code, "diagnostics": e.detail, "expression": [expression(&e.pointer)]}))
            .collect(),
        other => vec![json!({"severity": "error", "code": code, "diagnostics": other.problem().detail})],
    };
    let headers = match error {
        ApiError::Unauthorized(_) => {
            vec![(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"rapport\""),
            )]
        }
        ApiError::Unavailable(_) => vec![(header::RETRY_AFTER, header::HeaderValue::from_static("5"))],
        _ => Vec::new(),
    };
    FhirFailure {
        status,
        body: json!({"resourceType": "OperationOutcome", "issue": issues}),
        headers,
        cause: error.cause().map(crate::error::ErrorCause::describe),
    }
}

pub fn plain_outcome(error: &ApiError) -> FhirFailure {
    outcome(error, &|p| p.to_string())
}

type FhirResult = Result<HttpResponse, FhirFailure>;

fn fail(e: ApiError) -> FhirFailure {
    plain_outcome(&e)
}

fn invalid(expression: &str, detail: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(expression, detail)])
}

/// The caller, holding `scope` when one is needed; otherwise an OperationOutcome.
fn authorised(principal: Result<Principal, ApiError>, scope: Option<Scope>) -> Result<Principal, FhirFailure> {
    let principal = principal.map_err(fail)?;
    if let Some(scope) = scope {
        principal.require(scope).map_err(fail)?;
    }
    Ok(principal)
}

/// The stored response a FHIR read names by id (`QuestionnaireResponse/{id}`, and the
/// Observation of the same id), in the caller's organisation: 404 for an id that is no
/// UUID, unknown, another organisation's, or another patient's for a launch token.
pub(crate) async fn stored_response(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &crate::auth::Principal,
    id: &str,
) -> Result<crate::responses::model::Administration, FhirFailure> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| fail(ApiError::NotFound))?;
    let row = crate::responses::store::find(conn, principal.org, crate::ids::ResponseId(id))
        .await
        .map_err(|e| fail(e.into()))?
        // A launch token bound to another patient finds nothing.
        .filter(|row| principal.sees(&row.patient))
        .ok_or_else(|| fail(ApiError::NotFound))?;
    Ok(crate::responses::model::Administration::from(row))
}

/// An instrument version's title for a FHIR resource (the key when it cannot be read).
pub(crate) async fn instrument_title(
    conn: &mut diesel_async::AsyncPgConnection,
    builtins: &crate::instruments::builtin::BuiltinCatalogue,
    org: crate::ids::OrgId,
    key: &str,
    version: i32,
) -> String {
    crate::instruments::instrument_at(conn, builtins, org, key, version)
        .await
        .map(|i| i.version.title.clone())
        .unwrap_or_else(|_| key.to_string())
}
