//! rapport: stores working-alliance questionnaires, scores them exactly as published and
//! turns them into trends. `Application::build` is the one way to assemble the service; the
//! binary and the tests both use it.

// The house rules (no panics on request paths, no unchecked indexing) are in Cargo.toml's
// `[lints]` for every target; unit tests may unwrap. A rare justified exception carries an
// `#[allow]` with its reason.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod cds;
pub mod clients;
pub mod config;
pub mod console;
pub mod db;
pub mod edge;
pub mod error;
pub mod expected;
pub mod export;
pub mod extract;
pub mod fhir;
pub mod identity;
pub mod ids;
pub mod instruments;
pub mod launch;
#[cfg(test)]
mod layers;
pub mod norms;
pub mod openapi;

pub mod organizations;
pub mod outbound;
pub mod outbox;
pub mod pagination;
pub mod pseudonyms;
pub mod refs;
pub mod responses;
pub mod schema;
pub mod scoring;
pub mod series;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod validation;
pub mod webhooks;
pub mod workers;

pub use startup::Application;

/// Every route, registered once for both the router and the OpenAPI document.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    use utoipa_actix_web::scope;
    cfg.service(edge::ops_routes::healthz)
        .service(edge::ops_routes::readyz)
        .service(edge::ops_routes::metrics)
        .service(auth::smart::smart_configuration)
        .service(launch::routes::connection_jwks);
    cfg.service(
        scope::scope("/v1")
            .service(auth::routes::issue_token)
            .service(organizations::routes::create_organization)
            .service(organizations::routes::list_organizations)
            .service(clients::routes::create_client)
            .service(clients::routes::list_clients)
            .service(clients::routes::get_client)
            .service(clients::routes::revoke_client)
            .service(audit::routes::list_audit_events)
            .service(instruments::routes::list_instruments)
            .service(instruments::lifecycle::create_instrument)
            .service(instruments::routes::get_instrument)
            .service(instruments::routes::get_version)
            .service(instruments::lifecycle::replace_draft)
            .service(instruments::lifecycle::publish_version)
            .service(instruments::lifecycle::retire_version)
            .service(instruments::scoring::score_answers)
            .service(responses::routes::create_response)
            .service(responses::routes::create_responses_batch)
            .service(responses::routes::list_responses)
            .service(responses::routes::get_response)
            .service(responses::routes::void_response)
            .service(responses::erase::erase_patient)
            .service(analytics::patients::list_patients)
            .service(analytics::trends::patient_trends)
            .service(analytics::trend_chart::patient_trend_chart)
            .service(analytics::routes::instrument_norms)
            .service(analytics::clinicians::clinician_summary)
            .service(analytics::clinicians::list_clinicians)
            .service(analytics::routes::trajectory)
            .service(expected::routes::expected_response)
            .service(analytics::alliance_outcome::alliance_outcome)
            .service(alerts::routes::list_alerts)
            .service(alerts::routes::get_alert)
            .service(alerts::routes::acknowledge_alert)
            .service(cds::client_routes::create_cds_client)
            .service(cds::client_routes::list_cds_clients)
            .service(cds::client_routes::get_cds_client)
            .service(cds::client_routes::delete_cds_client)
            .service(launch::connection_routes::create_ehr_connection)
            .service(launch::connection_routes::list_ehr_connections)
            .service(launch::connection_routes::get_ehr_connection)
            .service(launch::connection_routes::delete_ehr_connection)
            .service(launch::routes::launch_session)
            .service(identity::routes::create_provider)
            .service(identity::routes::list_providers)
            .service(identity::routes::get_provider)
            .service(identity::routes::delete_provider)
            .service(webhooks::routes::create_webhook)
            .service(webhooks::routes::list_webhooks)
            .service(webhooks::routes::get_webhook)
            .service(webhooks::routes::delete_webhook)
            .service(webhooks::routes::rotate_secret)
            .service(webhooks::routes::test_webhook)
            .service(webhooks::routes::list_deliveries)
            .service(webhooks::routes::retry_delivery)
            .service(webhooks::recovery::enable_webhook)
            .service(webhooks::recovery::replay_webhook)
            .service(
                scope::scope("/exports")
                    .wrap(actix_web::middleware::Compress::default())
                    .service(export::responses::export_responses)
                    .service(export::dictionary::export_dictionary)
                    .service(export::pseudonym_key::rotate_pseudonym_key),
            ),
    );
    cfg.service(
        scope::scope("/cds-services")
            .service(cds::routes::cds_discovery)
            .service(cds::routes::call_cds_service)
            .service(cds::routes::cds_feedback),
    );
    cfg.service(
        scope::scope("/fhir/r4")
            .service(fhir::metadata::metadata)
            .service(auth::smart::fhir_smart_configuration)
            .service(fhir::questionnaire::read_questionnaire)
            .service(fhir::questionnaire::search_questionnaires)
            .service(fhir::questionnaire_response::create_questionnaire_response)
            .service(fhir::questionnaire_response::read_questionnaire_response)
            .service(fhir::observation::search_observations)
            .service(fhir::observation::read_observation),
    );
}
