//! `GET /.well-known/smart-configuration` (at the root and under `/fhir/r4`): what a SMART
//! Backend Services client needs to find the token endpoint and what it accepts. No token.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::Scope;
use crate::state::AppState;

/// The token endpoint URL: what client assertions must name as `aud`.
pub fn token_url(state: &AppState) -> String {
    format!("{}/v1/oauth/token", state.public_url)
}

/// SMART App Launch 2.x discovery document (the parts a backend service uses).
#[derive(Debug, Serialize, ToSchema)]
pub struct SmartConfiguration {
    pub token_endpoint: String,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    /// rapport's scopes and the SMART v2 system scopes accepted as their aliases.
    pub scopes_supported: Vec<&'static str>,
    pub capabilities: Vec<&'static str>,
}

fn configuration(state: &AppState) -> SmartConfiguration {
    let mut scopes: Vec<&'static str> = Scope::all_but_platform().into_iter().map(Scope::as_str).collect();
    scopes.extend(Scope::SMART_ALIASES);
    SmartConfiguration {
        token_endpoint: token_url(state),
        token_endpoint_auth_methods_supported: vec!["private_key_jwt", "client_secret_basic", "client_secret_post"],
        token_endpoint_auth_signing_alg_values_supported: vec!["RS384", "ES384", "RS256", "ES256"],
        grant_types_supported: vec!["client_credentials"],
        scopes_supported: scopes,
        capabilities: vec!["client-confidential-asymmetric", "client-confidential-symmetric"],
    }
}

fn answer(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(configuration(state))
}

/// SMART configuration (discovery for SMART Backend Services clients).
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "The SMART configuration", body = SmartConfiguration)),
    security(())
)]
#[get("/.well-known/smart-configuration")]
pub async fn smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    answer(&state)
}

/// The same SMART configuration, under the FHIR base.
#[utoipa::path(
    tag = "fhir",
    responses((status = 200, description = "The SMART configuration", body = SmartConfiguration)),
    security(())
)]
#[get("/.well-known/smart-configuration")]
pub async fn fhir_smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    answer(&state)
}
