use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::resources::{self, RATED_CLINICIAN_PATH, SESSION_NUMBER_PATH};
use super::{FhirFailure, base_url, fhir_json, outcome, plain_outcome};
use crate::audit::{self, AuditEntry};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;
use crate::responses::model::{Administration, NewResponse, Source};
use crate::responses::{Ingested, InstrumentCache, ingest_one, prepare, store};
use crate::state::AppState;

type FhirResult = Result<HttpResponse, FhirFailure>;

fn fail(e: ApiError) -> FhirFailure {
    plain_outcome(&e)
}

fn invalid(expression: &str, detail: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(expression, detail)])
}

fn authorised(principal: Result<Principal, ApiError>, scope: Option<Scope>) -> Result<Principal, FhirFailure> {
    let principal = principal.map_err(fail)?;
    if let Some(scope) = scope {
        principal.require(scope).map_err(fail)?;
    }
    Ok(principal)
}

/// The server's CapabilityStatement.
#[utoipa::path(
    tag = "fhir",
    responses((status = 200, description = "CapabilityStatement (R4)", body = Object, content_type = "application/fhir+json")),
    security(())
)]
#[get("/metadata")]
pub async fn metadata(req: HttpRequest) -> HttpResponse {
    fhir_json(StatusCode::OK, &resources::capability_statement(&base_url(&req)))
}

/// The latest published version of an instrument as a Questionnaire.
#[utoipa::path(
    tag = "fhir",
    params(("key" = String, Path, description = "Instrument key")),
    responses(
        (status = 200, description = "Questionnaire", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = []))
)]
#[get("/Questionnaire/{key}")]
pub async fn read_questionnaire(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> FhirResult {
    let principal = authorised(principal, None)?;
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let instrument = match state.builtins.get(&key, None) {
        Some(b) => b,
        None => std::sync::Arc::new(
            crate::instruments::resolve(&mut conn, principal.org, &key, None, "")
                .await
                .map_err(|_| fail(ApiError::NotFound))?,
        ),
    };
    Ok(fhir_json(
        StatusCode::OK,
        &resources::questionnaire(&base_url(&req), &instrument),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuestionnaireSearch {
    /// Canonical URL (`{base}/fhir/r4/Questionnaire/{key}`).
    pub url: Option<String>,
    pub version: Option<String>,
}

fn key_from_canonical(url: &str) -> Option<&str> {
    let (_, key) = url.rsplit_once("/Questionnaire/")?;
    Some(key.split(['|', '/', '?']).next().unwrap_or(key)).filter(|k| !k.is_empty())
}

/// Questionnaires by canonical URL (and version), as a searchset Bundle.
#[utoipa::path(
    tag = "fhir",
    params(QuestionnaireSearch),
    responses(
        (status = 200, description = "searchset Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = []))
)]
#[get("/Questionnaire")]
pub async fn search_questionnaires(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
    query: Result<web::Query<QuestionnaireSearch>, actix_web::Error>,
) -> FhirResult {
    let principal = authorised(principal, None)?;
    let query = query.map_err(|e| fail(ApiError::BadRequest(e.to_string())))?;
    let base = base_url(&req);
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let rows = match &query.url {
        Some(url) => match key_from_canonical(url) {
            Some(key) => crate::instruments::store::versions_of(&mut conn, principal.org, key)
                .await
                .map_err(|e| fail(e.into()))?,
            None => Vec::new(),
        },
        None => crate::instruments::store::list(&mut conn, principal.org, None)
            .await
            .map_err(|e| fail(e.into()))?,
    };
    let slug = crate::organizations::store::slug_of(&mut conn, principal.org)
        .await
        .map_err(|e| fail(e.into()))?
        .unwrap_or_default();
    let mut entries = Vec::new();
    for row in rows {
        if query.version.as_deref().is_some_and(|v| v != row.version.to_string()) {
            continue;
        }
        let loaded = crate::instruments::load(row, &slug).map_err(fail)?;
        let full_url = format!(
            "{}/_history/{}",
            resources::questionnaire_url(&base, &loaded.version.key),
            loaded.version.version
        );
        entries.push((full_url, resources::questionnaire(&base, &loaded)));
    }
    let self_url = format!("{base}{}", req.uri());
    Ok(fhir_json(StatusCode::OK, &resources::bundle(&self_url, None, entries)))
}

/// What a posted QuestionnaireResponse says, in rapport's terms, and where each answer was.
struct Posted {
    body: NewResponse,
    status: String,
    /// JSON pointer of the internal request -> FHIRPath expression in the posted resource.
    expressions: HashMap<String, String>,
}

fn reference_id<'a>(value: &'a Value, kind: &str) -> Option<&'a str> {
    value
        .get("reference")?
        .as_str()?
        .strip_prefix(kind)?
        .strip_prefix('/')
        .filter(|s| !s.is_empty())
}

fn flatten(
    items: &Value,
    path: &str,
    answers: &mut BTreeMap<String, Value>,
    expressions: &mut HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) {
    let Some(items) = items.as_array() else { return };
    for (i, item) in items.iter().enumerate() {
        let here = format!("{path}.item[{i}]");
        if let Some(nested) = item.get("item") {
            flatten(nested, &here, answers, expressions, errors);
        }
        let answer_list = item
            .get("answer")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(link_id) = item.get("linkId").and_then(Value::as_str) else {
            errors.push(FieldError::new(format!("{here}.linkId"), "every item needs a linkId"));
            continue;
        };
        if answer_list.is_empty() {
            if item.get("item").is_none() {
                expressions.insert(
                    format!("/answers/{}", crate::extract::escape_pointer(link_id)),
                    here.clone(),
                );
            }
            continue;
        }
        let at = format!("{here}.answer[0]");
        expressions.insert(
            format!("/answers/{}", crate::extract::escape_pointer(link_id)),
            at.clone(),
        );
        if answer_list.len() > 1 {
            errors.push(FieldError::new(format!("{here}.answer[1]"), "one answer per item"));
            continue;
        }
        let answer = &answer_list[0];
        if let Some(nested) = answer.get("item") {
            flatten(nested, &at, answers, expressions, errors);
        }
        let value = if let Some(v) = answer.get("valueInteger").or_else(|| answer.get("valueDecimal")) {
            Some(v.clone())
        } else if let Some(code) = answer
            .get("valueCoding")
            .and_then(|c| c.get("code"))
            .and_then(Value::as_str)
        {
            code.trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        } else {
            None
        };
        match value {
            Some(v @ Value::Number(_)) => {
                answers.insert(link_id.to_string(), v);
            }
            _ => errors.push(FieldError::new(
                at,
                "the answer must be valueInteger, valueDecimal or a valueCoding whose code is the number",
            )),
        }
    }
}

fn parse_posted(qr: &Value) -> Result<Posted, ApiError> {
    let mut errors = Vec::new();
    let mut expressions: HashMap<String, String> = [
        ("/patient", "QuestionnaireResponse.subject"),
        ("/administered_at", "QuestionnaireResponse.authored"),
        ("/instrument", "QuestionnaireResponse.questionnaire"),
        ("/instrument_version", "QuestionnaireResponse.questionnaire"),
        ("/rater", "QuestionnaireResponse.author"),
        ("/external_id", "QuestionnaireResponse.identifier"),
        ("/clinician", "QuestionnaireResponse.extension"),
        ("/session", "QuestionnaireResponse.extension"),
        ("/answers", "QuestionnaireResponse.item"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if qr.get("resourceType").and_then(Value::as_str) != Some("QuestionnaireResponse") {
        return Err(invalid(
            "QuestionnaireResponse.resourceType",
            "must be QuestionnaireResponse",
        ));
    }
    let status = qr.get("status").and_then(Value::as_str).unwrap_or_default().to_string();
    let canonical = qr.get("questionnaire").and_then(Value::as_str).unwrap_or_default();
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (canonical, None),
    };
    let instrument = key_from_canonical(url).map(str::to_string);
    if instrument.is_none() {
        errors.push(FieldError::new(
            "QuestionnaireResponse.questionnaire",
            "must be a Questionnaire canonical of this server",
        ));
    }
    let instrument_version = match version.map(|v| v.parse::<i32>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                "QuestionnaireResponse.questionnaire",
                "the version after | must be a whole number",
            ));
            None
        }
    };
    let patient = qr
        .get("subject")
        .and_then(|s| reference_id(s, "Patient"))
        .map(str::to_string);
    if patient.is_none() {
        errors.push(FieldError::new(
            "QuestionnaireResponse.subject",
            "must reference a Patient (Patient/{id})",
        ));
    }
    let authored = qr.get("authored").and_then(Value::as_str).map(str::to_string);
    if authored.is_none() {
        errors.push(FieldError::new("QuestionnaireResponse.authored", "is required"));
    }
    let external_id = qr.get("identifier").and_then(|i| {
        let value = i.get("value")?.as_str()?;
        Some(match i.get("system").and_then(Value::as_str) {
            Some(system) => format!("{system}|{value}"),
            None => value.to_string(),
        })
    });
    let author = qr.get("author");
    let author_practitioner = author.and_then(|a| reference_id(a, "Practitioner")).map(str::to_string);
    let rater = if author_practitioner.is_some() {
        Some("clinician".to_string())
    } else if author.and_then(|a| reference_id(a, "RelatedPerson")).is_some() {
        Some("observer".to_string())
    } else {
        None
    };
    let mut clinician = author_practitioner;
    let mut session = None;
    for (i, ext) in qr
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let url = ext.get("url").and_then(Value::as_str).unwrap_or_default();
        if url.ends_with(RATED_CLINICIAN_PATH) {
            match ext.get("valueReference").and_then(|r| reference_id(r, "Practitioner")) {
                Some(c) => clinician = Some(c.to_string()),
                None => errors.push(FieldError::new(
                    format!("QuestionnaireResponse.extension[{i}]"),
                    "needs a valueReference to a Practitioner",
                )),
            }
            expressions.insert("/clinician".into(), format!("QuestionnaireResponse.extension[{i}]"));
        } else if url.ends_with(SESSION_NUMBER_PATH) {
            session = ext.get("valueInteger").and_then(Value::as_i64);
            expressions.insert("/session".into(), format!("QuestionnaireResponse.extension[{i}]"));
        }
    }
    let mut answers = BTreeMap::new();
    if let Some(items) = qr.get("item") {
        flatten(
            items,
            "QuestionnaireResponse",
            &mut answers,
            &mut expressions,
            &mut errors,
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Posted {
        body: NewResponse {
            instrument: instrument.unwrap_or_default(),
            instrument_version,
            patient: patient.unwrap_or_default(),
            clinician,
            episode: None,
            rater,
            administered_at: authored.unwrap_or_default(),
            session,
            answers,
            external_id,
        },
        status,
        expressions,
    })
}

async fn as_resource(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    base: &str,
    a: &Administration,
    org: Uuid,
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
            let voided = match store::void(&mut conn, principal.org, row.id, "entered-in-error (FHIR)")
                .await
                .map_err(|e| fail(e.into()))?
            {
                Some(v) => {
                    audit::record(
                        &mut conn,
                        AuditEntry {
                            org: principal.org,
                            actor: &principal.client_id,
                            action: "response.voided",
                            resource_type: "response",
                            resource_id: Some(v.id.to_string()),
                            detail: json!({"via": "fhir"}),
                        },
                    )
                    .await
                    .map_err(|e| fail(e.into()))?;
                    v
                }
                None => row,
            };
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
    let row = prepare(
        &mut conn,
        &mut InstrumentCache::new(&state.builtins),
        &principal,
        posted.body,
        Source::Fhir,
    )
    .await
    .map_err(|e| outcome(&e, &map))?;
    let (status, stored) = match ingest_one(&mut conn, &principal, row)
        .await
        .map_err(|e| outcome(&e, &map))?
    {
        Ingested::Created(row) => {
            state.norms.invalidate(principal.org, &row.instrument_key);
            (StatusCode::CREATED, row)
        }
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
    let id = Uuid::parse_str(&id).map_err(|_| fail(ApiError::NotFound))?;
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let row = store::find(&mut conn, principal.org, id)
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

fn parse_date(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        let t = t.with_timezone(&Utc);
        return Some((t, t));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    let start = day.and_hms_opt(0, 0, 0)?.and_utc();
    Some((
        start,
        start + chrono::Duration::days(1) - chrono::Duration::microseconds(1),
    ))
}

/// Score Observations of one patient, as a searchset Bundle with paging links.
/// Parameters: `subject=Patient/{id}` (required), `code` (`{key}-total`), `date` with
/// `ge`/`gt`/`le`/`lt`/`eq` prefixes (repeatable), `derived-from=QuestionnaireResponse/{id}`,
/// `_count` (1-500, default 50), `_sort=date|-date`, `_offset` (from `next` links).
#[utoipa::path(
    tag = "fhir",
    params(
        ("subject" = String, Query, description = "Patient/{id}"),
        ("code" = Option<String>, Query, description = "`{key}-total`, optionally `system|code`"),
        ("date" = Option<String>, Query, description = "e.g. ge2026-01-01"),
        ("derived-from" = Option<String>, Query, description = "QuestionnaireResponse/{id}"),
        ("_count" = Option<i64>, Query, description = "Page size, 1-500"),
        ("_sort" = Option<String>, Query, description = "date or -date"),
        ("_offset" = Option<i64>, Query, description = "Paging offset (from `next` links)"),
    ),
    responses(
        (status = 200, description = "searchset Bundle of Observations", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome", body = Object, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/Observation")]
pub async fn search_observations(
    req: HttpRequest,
    principal: Result<Principal, ApiError>,
    state: web::Data<AppState>,
) -> FhirResult {
    let principal = authorised(principal, Some(Scope::ResponsesRead))?;
    let bad = |m: &str| fail(ApiError::BadRequest(m.to_string()));
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|_| bad("malformed query string"))?;
    let mut search = store::ScoredSearch {
        limit: 50,
        ..Default::default()
    };
    let mut subject = None;
    let mut no_match = false;
    for (name, value) in &params {
        match name.as_str() {
            "subject" => {
                subject = Some(value.strip_prefix("Patient/").unwrap_or(value).to_string());
            }
            "code" => {
                let code = value.rsplit('|').next().unwrap_or(value);
                match code.strip_suffix("-total") {
                    Some(key) => search.instrument = Some(key.to_string()),
                    None => no_match = true,
                }
            }
            "derived-from" => {
                let id = value.strip_prefix("QuestionnaireResponse/").unwrap_or(value);
                match Uuid::parse_str(id) {
                    Ok(id) => search.id = Some(id),
                    Err(_) => no_match = true,
                }
            }
            "date" => {
                let (prefix, rest) = match value.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                    _ => ("eq", value.as_str()),
                };
                let (start, end) = parse_date(rest)
                    .ok_or_else(|| bad("`date` must be a date or date-time with an optional ge/gt/le/lt/eq prefix"))?;
                match prefix {
                    "ge" => (search.from, search.from_inclusive) = (Some(start), true),
                    "gt" => (search.from, search.from_inclusive) = (Some(end), false),
                    "le" => (search.to, search.to_inclusive) = (Some(end), true),
                    "lt" => (search.to, search.to_inclusive) = (Some(start), false),
                    _ => {
                        (search.from, search.from_inclusive) = (Some(start), true);
                        (search.to, search.to_inclusive) = (Some(end), true);
                    }
                }
            }
            "_count" => {
                search.limit = crate::pagination::limit(Some(value)).map_err(fail)?;
            }
            "_offset" => {
                search.offset = value
                    .parse::<i64>()
                    .ok()
                    .filter(|o| (0..=10_000_000).contains(o))
                    .ok_or_else(|| bad("`_offset` must be a whole number from 0"))?;
            }
            "_sort" => match value.as_str() {
                "date" => search.descending = false,
                "-date" => search.descending = true,
                _ => return Err(bad("`_sort` must be date or -date")),
            },
            "_format" => {}
            other => return Err(bad(&format!("unsupported search parameter `{other}`"))),
        }
    }
    search.patient = subject.ok_or_else(|| bad("`subject=Patient/{id}` is required"))?;
    let base = base_url(&req);
    let mut conn = crate::db::conn(&state.pool).await.map_err(fail)?;
    let mut rows = if no_match {
        Vec::new()
    } else {
        store::search_scored(&mut conn, principal.org, &search)
            .await
            .map_err(|e| fail(e.into()))?
    };
    let next = (rows.len() as i64 > search.limit).then(|| {
        rows.truncate(search.limit as usize);
        let mut kept: Vec<(String, String)> = params.iter().filter(|(n, _)| n != "_offset").cloned().collect();
        kept.push(("_offset".into(), (search.offset + search.limit).to_string()));
        format!(
            "{base}/fhir/r4/Observation?{}",
            serde_urlencoded::to_string(&kept).unwrap_or_default()
        )
    });
    let mut titles: HashMap<(String, i32), String> = HashMap::new();
    let mut entries = Vec::new();
    for row in rows {
        let a = Administration::from(row);
        let key = (a.instrument.clone(), a.instrument_version);
        if !titles.contains_key(&key) {
            let title = crate::analytics::instrument_at(
                &mut conn,
                &state.builtins,
                principal.org,
                &a.instrument,
                a.instrument_version,
            )
            .await
            .map(|i| i.version.title.clone())
            .unwrap_or_else(|_| a.instrument.clone());
            titles.insert(key.clone(), title);
        }
        if let Some(obs) = resources::observation(&base, &a, &titles[&key]) {
            entries.push((format!("{base}/fhir/r4/Observation/{}", a.id), obs));
        }
    }
    audit::record_read(
        &mut conn,
        &principal,
        "observations.searched",
        "response",
        None,
        json!({"via": "fhir"}),
    )
    .await
    .map_err(|e| fail(e.into()))?;
    let self_url = format!("{base}{}", req.uri());
    Ok(fhir_json(StatusCode::OK, &resources::bundle(&self_url, next, entries)))
}
