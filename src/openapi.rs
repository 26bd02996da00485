//! The OpenAPI document, assembled from the same service registration that builds the
//! router (utoipa-actix-web), so routes and documentation cannot drift apart.

use actix_web::App;
use utoipa::openapi::security::{ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::auth::Scope;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rapport",
        description = "Working-alliance questionnaires: stored, scored exactly as published, and \
turned into trends. Errors are RFC 9457 problem+json (the token endpoint answers RFC 6749 \
errors). Ids of another organisation answer 404, never 403.",
        license(name = "Proprietary")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "OAuth2 client-credentials tokens (client secrets or SMART Backend Services private_key_jwt) and the SMART configuration"),
        (name = "organizations", description = "Tenants (platform operators)"),
        (name = "clients", description = "An organisation's API clients"),
        (name = "audit", description = "The audit trail"),
        (name = "instruments", description = "The instrument catalogue: built-ins and the organisation's own"),
        (name = "scoring", description = "Stateless scoring"),
        (name = "responses", description = "Questionnaire responses: ingest, read, void"),
        (name = "analytics", description = "Trends, ruptures, norms, clinician and cohort summaries"),
        (name = "alerts", description = "Alerts derived from each series after every change (ruptures, below cut-off, deterioration, item flags)"),
        (name = "identity", description = "An organisation's own identity providers: their bearer tokens are accepted for it"),
        (name = "cds-hooks", description = "CDS Hooks 2.0 services (the alliance when a chart opens and when a medication is ordered), called by registered CDS clients with a JWT they sign, and the organisation's CDS clients"),
        (name = "webhooks", description = "Standard Webhooks endpoints: signed alert and response events, retried, with a delivery log"),
        (name = "export", description = "Research export: streamed, pseudonymised, documented"),
        (name = "fhir", description = "FHIR R4 front door (application/fhir+json); errors are OperationOutcome"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let scopes = Scopes::from_iter(Scope::ALL.iter().map(|s| (s.as_str(), s.as_str())));
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(ClientCredentials::new(
                "/v1/oauth/token",
                scopes,
            ))])),
        );
    }
}

/// The document as the running service serves it at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes)
        .split_for_parts();
    api
}

pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_default()
}
