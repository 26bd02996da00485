//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.
//! 5xx bodies are opaque: the cause travels with the error, is attached to the response as
//! an [`ErrorCause`] extension and logged by the request-log middleware with the request id;
//! it is never sent to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field, named by JSON pointer (RFC 6901) into the request body or parameters.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer to the offending value, e.g. `/answers/3`.
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// One JSON pointer segment (RFC 6901): `~` and `/` escaped.
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The cause of a server-side error. Errors keep their source so that the request log line
/// can name it; anything `std::error::Error` (or a plain message) converts into it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What the request-log middleware logs beside the request id for a 5xx answer.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub std::sync::Arc<str>);

impl ErrorCause {
    /// Attaches `cause` (and its source chain) to a response, for the request log line.
    pub fn attach(response: &mut HttpResponse, cause: &(dyn std::error::Error + 'static)) {
        response.extensions_mut().insert(ErrorCause::describe(cause));
    }

    /// The cause and its source chain in one line.
    pub fn describe(cause: &(dyn std::error::Error + 'static)) -> ErrorCause {
        let mut text = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        ErrorCause(text.into())
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:rapport:problem:<kind>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present on validation problems: every bad field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Present on an idempotency conflict: the id of the stored response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<uuid::Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// A conflict with a stored resource, named in the problem's `existing_id`.
    #[error("{detail}")]
    ConflictWith { detail: String, existing_id: uuid::Uuid },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("invalid content")]
    Validation(Vec<FieldError>),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
    #[error("too many requests from this client: at most {} a minute; retry in {} s", .0.limit, .0.retry_after)]
    RateLimited(crate::telemetry::rate_limit::Limited),
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl ApiError {
    pub fn validation(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(pointer, detail)])
    }

    /// A server-side failure; `cause` is kept for the log, never shown to the client.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        ApiError::Internal(cause.into())
    }

    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        ApiError::Unavailable(cause.into())
    }

    /// The cause of a 5xx, for the log (None for client errors).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => Some(cause.as_ref()),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not-found",
            ApiError::Conflict(_) | ApiError::ConflictWith { .. } => "conflict",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::RequestTimeout => "request-timeout",
            ApiError::Validation(_) => "validation",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::RateLimited(_) => "rate-limited",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let detail = match self {
            ApiError::NotFound => "The resource does not exist.".to_string(),
            ApiError::Validation(_) => "The request content is invalid; see `errors`.".to_string(),
            ApiError::Unavailable(_) => "The database is unavailable; retry later.".to_string(),
            ApiError::Internal(_) => "An internal error occurred.".to_string(),
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("urn:rapport:problem:{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
            existing_id: match self {
                ApiError::ConflictWith { existing_id, .. } => Some(*existing_id),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::ConflictWith { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        builder.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            ApiError::Unauthorized(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"rapport\""));
            }
            ApiError::Unavailable(_) => {
                builder.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::RateLimited(l) => {
                builder.insert_header((header::RETRY_AFTER, l.retry_after.to_string()));
                builder.insert_header(("RateLimit-Limit", l.limit.to_string()));
                builder.insert_header(("RateLimit-Remaining", "0"));
                builder.insert_header(("RateLimit-Reset", l.retry_after.to_string()));
            }
            _ => {}
        }
        let mut response = builder.body(serde_json::to_vec(&self.problem()).unwrap_or_default());
        if let Some(cause) = self.cause() {
            ErrorCause::attach(&mut response, cause);
        }
        response
    }
}

impl From<DieselError> for ApiError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => ApiError::NotFound,
            DieselError::DatabaseError(kind, info) if is_nul_rejection(kind, info.message()) => {
                // Postgres text and jsonb cannot hold U+0000: the input was bad, not the server.
                ApiError::BadRequest("text must not contain NUL (U+0000) characters".into())
            }
            e if is_connection_loss(&e) => ApiError::Unavailable(Box::new(e)),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// True when the database, not the query, failed: the connection is gone or the server is
/// shutting down. Recognised by the error kind diesel-async assigns (an error without a
/// SQLSTATE is a transport failure: `UnableToSendCommand`; a dropped connection is
/// `ClosedConnection`) and, because diesel does not expose the SQLSTATE of server errors,
/// by the fixed messages of Postgres' class 57P (operator intervention: 57P01
/// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now).
pub fn is_connection_loss(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection, _) => {
            true
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let m = info.message();
            m.starts_with("terminating connection due to")
                || m.starts_with("the database system is")
                || m.starts_with("terminating connection because of crash")
        }
        _ => false,
    }
}

/// SQLSTATE 22021 (character_not_in_repertoire) or 22P05 (untranslatable_character), which
/// diesel reports as `Unknown` with only the message.
fn is_nul_rejection(kind: DatabaseErrorKind, message: &str) -> bool {
    matches!(kind, DatabaseErrorKind::Unknown)
        && (message.contains("invalid byte sequence for encoding \"UTF8\": 0x00")
            || message.contains("unsupported Unicode escape sequence"))
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        ApiError::Unavailable(Box::new(e))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A problem+json answer for a status that has no `ApiError` variant (405, 408, 431 ...).
pub fn problem_with_status(status: StatusCode, detail: &str) -> HttpResponse {
    let problem = Problem {
        problem_type: format!("urn:rapport:problem:http-{}", status.as_u16()),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail: detail.to_string(),
        errors: None,
        existing_id: None,
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)))
        .body(serde_json::to_vec(&problem).unwrap_or_default())
}
