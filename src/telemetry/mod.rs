//! Telemetry: the Prometheus metrics this instance exposes and the per-client rate limits.
//! The ground floor: no web types, no domain; the web edge renders and applies them.

pub mod metrics;
pub mod rate_limit;
