//! `GET /fhir/r4/metadata`: the CapabilityStatement (no token needed).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};

use super::{base_url, fhir_json, resources};

/// The server's CapabilityStatement.
#[utoipa::path(
    tag = "fhir",
    responses((status = 200, description = "CapabilityStatement (R4)", body = Object, content_type = "application/fhir+json")),
    security(())
)]
#[get("/metadata")]
pub async fn metadata(req: HttpRequest, state: web::Data<crate::state::AppState>) -> HttpResponse {
    let token_url = crate::auth::smart::token_url(&state);
    fhir_json(
        StatusCode::OK,
        &resources::capability_statement(&base_url(&req), &token_url),
    )
}
