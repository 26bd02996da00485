use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};

use crate::error::{ApiError, ErrorCause};
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An incoming request id is kept when it is short and plain; otherwise a new one is made.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Request id, one log line, and metrics for every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(state) = state {
        state.metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    // A 5xx names its cause (kept by the error, never sent to the client) on the same line.
    match res.response().extensions().get::<ErrorCause>() {
        Some(ErrorCause(cause)) if status >= 500 => log::error!(
            target: "rapport::request",
            "request_id={id} method={method} route={route} status={status} latency_ms={latency_ms:.2} cause=\"{cause}\""
        ),
        _ => log::info!(
            target: "rapport::request",
            "request_id={id} method={method} route={route} status={status} latency_ms={latency_ms:.2}"
        ),
    }
    Ok(res)
}

/// Any error answer that is not already JSON (actix's own 404/405/400s, payload errors)
/// becomes problem+json with the same status; the launch's HTML pages stay pages.
pub async fn problem_fallback(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    // The launch pages answer in HTML, for a person in a browser: left as they are.
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if (status.is_client_error() || status.is_server_error()) && !is_json && !is_page {
        let error = match status.as_u16() {
            400 => ApiError::BadRequest("the request is malformed".into()),
            404 => ApiError::NotFound,
            413 => ApiError::PayloadTooLarge("the body is too large".into()),
            415 => ApiError::UnsupportedMediaType("unsupported content type".into()),
            503 => ApiError::unavailable("service unavailable"),
            s if s >= 500 => ApiError::internal(format!("bare {s} answer")),
            _ => {
                let (req, old) = res.into_parts();
                let mut fresh = crate::error::problem_with_status(status, status.canonical_reason().unwrap_or("Error"));
                for (name, value) in old.headers() {
                    if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                        fresh.headers_mut().insert(name.clone(), value.clone());
                    }
                }
                return Ok(ServiceResponse::new(req, fresh));
            }
        };
        let (req, _) = res.into_parts();
        return Ok(ServiceResponse::new(req, error.error_response()));
    }
    Ok(res.map_into_boxed_body())
}

/// U+0000 cannot be stored or matched by Postgres text: a NUL in the path names nothing that
/// exists (404); in the query string it is a bad parameter (400).
pub async fn reject_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let has_nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    let error = if has_nul(req.path()) {
        Some(ApiError::NotFound)
    } else if has_nul(req.query_string()) {
        Some(ApiError::BadRequest(
            "query parameters must not contain NUL (U+0000) characters".into(),
        ))
    } else {
        None
    };
    match error {
        Some(e) => {
            let (req, _) = req.into_parts();
            // The FHIR front door answers in FHIR: an OperationOutcome.
            let response = if req.path().starts_with("/fhir/") {
                crate::fhir::plain_outcome(&e).error_response()
            } else {
                e.error_response()
            };
            Ok(ServiceResponse::new(req, response))
        }
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Answers under `/v1` and `/fhir` may hold patient data: no cache (browser, proxy or CDN)
/// may keep them (`Cache-Control: no-store`), unless a handler chose otherwise.
pub async fn no_store(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let api =
        req.path().starts_with("/v1/") || req.path().starts_with("/fhir/") || req.path().starts_with("/cds-services/");
    let mut res = next.call(req).await?;
    if api && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// No page may be framed unless it says so: an answer without its own
/// `Content-Security-Policy` gets `frame-ancestors 'none'` (the launched console and the
/// launch pages name their connection's `frame_origins` themselves).
pub async fn frame_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    if !res.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    Ok(res)
}

/// `HEAD` works wherever `GET` does: the request is routed as a GET. actix-http's codec
/// remembers that the request was a HEAD and sends the GET's status and headers (with its
/// Content-Length) without the body. The request log and metrics record it as a GET.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// Under `/fhir/`, every error is an OperationOutcome: problem+json answers from outside the
/// FHIR handlers (unknown routes, 405s, extractor and middleware errors) are rewritten, with
/// the same status and headers, and the problem's detail and field pointers as issues.
pub async fn fhir_outcomes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let fhir = req.path().starts_with("/fhir/");
    let res = next.call(req).await?.map_into_boxed_body();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(crate::error::PROBLEM_JSON.as_bytes()));
    if !fhir || !is_problem {
        return Ok(res);
    }
    let (req, res) = res.into_parts();
    let cause = res.extensions().get::<ErrorCause>().cloned();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = actix_web::body::to_bytes(res.into_body()).await.unwrap_or_default();
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut fresh = crate::fhir::outcome_from_problem(status, &problem);
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if let Some(cause) = cause {
        fresh.extensions_mut().insert(cause);
    }
    Ok(ServiceResponse::new(req, fresh))
}

/// CORS for the CDS services only (`RAPPORT_CDS_CORS_ORIGINS`; browser-based CDS clients
/// need it): a preflight from a listed origin is answered 204, allowing `GET`, `POST` and
/// the `Authorization` and `Content-Type` headers, without credentials; other origins' are
/// 403. Answers to a listed origin name it in `Access-Control-Allow-Origin`. Every other
/// path is left alone (rapport's API is called by servers, not pages).
pub async fn cds_cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !req.path().starts_with("/cds-services") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let allowed: Option<HeaderValue> = req
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| {
            req.app_data::<web::Data<AppState>>().is_some_and(|state| {
                origin
                    .to_str()
                    .is_ok_and(|o| state.settings.cds_cors_origins.iter().any(|a| a == o))
            })
        })
        .cloned();
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed else {
            let refused = ApiError::Forbidden("this origin may not call the CDS services".into());
            return Ok(req.into_response(refused.error_response()));
        };
        let answer = actix_web::HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, Content-Type"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(answer));
    }
    let mut res = next.call(req).await?;
    if let Some(origin) = allowed {
        res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        res.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res.map_into_boxed_body())
}
