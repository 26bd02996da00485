//! The web edge: what turns HTTP into calls of the domains and back. Authentication of the
//! caller, the per-request middleware (request id, log line, metrics, rate limit, problem+json
//! for bare errors), the route table and the operations routes (liveness, readiness,
//! metrics). The log line names the route pattern, never the concrete path (which can hold a
//! patient reference), and never a header or body. Domains below never import it.

pub mod authenticate;
pub mod middleware;
pub mod ops_routes;
pub mod problems;
pub mod route_table;
