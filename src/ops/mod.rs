//! Operations: liveness, readiness, Prometheus metrics, the per-request log line with its
//! request id, and the last-resort conversion of any bare error into problem+json.
//! The log line names the route pattern, never the concrete path (which can hold a patient
//! reference), and never a header or body.

pub mod metrics;
pub mod middleware;
pub mod rate_limit;
pub mod route_table;
pub mod routes;
