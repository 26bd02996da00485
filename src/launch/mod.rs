//! SMART App Launch (EHR launch) into the console: an organisation's EHR connections, the
//! launch and its callback (rapport as the EHR's confidential OAuth client, PKCE S256), and
//! the launch session, whose token reads one patient only.
//!
//! A launch token is one of rapport's own tokens with the connection and the patient in its
//! claims. It holds `responses:read`; the edge lets it reach only the routes in
//! `PATIENT_ROUTES`, every other operation is 403, and those handlers find nothing of
//! another patient (404; a list filtered by another patient is empty).

pub mod connection_routes;
pub mod ehr;
pub mod keys;
pub mod model;
pub mod pages;
pub mod routes;
pub mod service;
pub mod store;

/// The operations a launch token may call (method and route pattern): its patient's
/// trends, chart, responses, alerts (acknowledging them too) and FHIR resources, and the
/// instruments.
pub const PATIENT_ROUTES: [(&str, &str); 15] = [
    ("GET", "/v1/instruments"),
    ("GET", "/v1/instruments/{key}"),
    ("GET", "/v1/instruments/{key}/versions/{v}"),
    ("GET", "/v1/patients/{patient}/trends"),
    ("GET", "/v1/patients/{patient}/trends.svg"),
    ("GET", "/v1/responses"),
    ("GET", "/v1/responses/{id}"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/alerts/{id}"),
    ("POST", "/v1/alerts/{id}/acknowledge"),
    ("GET", "/fhir/r4/Questionnaire"),
    ("GET", "/fhir/r4/Questionnaire/{key}"),
    ("GET", "/fhir/r4/QuestionnaireResponse/{id}"),
    ("GET", "/fhir/r4/Observation"),
    ("GET", "/fhir/r4/Observation/{id}"),
];

/// Whether a launch token may call this operation.
pub fn patient_route(method: &str, pattern: &str) -> bool {
    let method = if method == "HEAD" { "GET" } else { method };
    PATIENT_ROUTES.iter().any(|(m, p)| *m == method && *p == pattern)
}
