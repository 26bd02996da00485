//! The problem+json answers that many operations share, declared once for the OpenAPI
//! document (`responses(..., Unauthorized, NotJson)` in a `#[utoipa::path]`); an
//! operation's own answers (its 403 scope, its 404, its 422) stay written where they are.

use utoipa::IntoResponses;

use crate::error::Problem;

/// 401: no bearer token, or one that does not verify.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "Missing or invalid token",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(#[allow(dead_code)] Problem);

/// 401 from a CDS service: no JWT, or one not accepted from a registered CDS client.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "No JWT, or one rapport does not accept from a registered CDS client (always the same generic detail)",
    content_type = "application/problem+json"
)]
pub struct CdsJwtRefused(#[allow(dead_code)] Problem);

/// 400: a body that is not JSON.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "Malformed JSON",
    content_type = "application/problem+json"
)]
pub struct MalformedJson(#[allow(dead_code)] Problem);

/// 415: a body that is not (UTF-8) JSON.
#[derive(IntoResponses)]
#[response(status = 415, description = "Not JSON", content_type = "application/problem+json")]
pub struct NotJson(#[allow(dead_code)] Problem);

/// 413: a body over the standard limit.
#[derive(IntoResponses)]
#[response(
    status = 413,
    description = "Body over 64 KiB",
    content_type = "application/problem+json"
)]
pub struct BodyTooLarge(#[allow(dead_code)] Problem);
