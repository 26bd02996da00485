//! The audit trail: who created, voided, read or exported what, and when.
//! `record` runs inside the caller's transaction so that a change and its event commit
//! together. Events never hold answers, secrets or patient references in clear.

pub mod model;
pub mod routes;
pub mod store;

pub use store::{AuditEntry, record};
