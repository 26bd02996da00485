//! The audit trail: who created, voided, read or exported what, and when.
//! `record` runs inside the caller's transaction so that a change and its event commit
//! together. Events never hold answers, secrets or patient references in clear.

pub mod action;
pub mod model;
pub mod routes;
pub mod store;

pub use action::AuditAction;
pub use store::{AuditEntry, record};

/// Records one read of patient data by the caller (one event per request, never per row),
/// through the group-commit writer: it is committed before the read is answered.
pub async fn record_read(
    writer: &crate::responses::writer::Writer,
    principal: &crate::auth::Principal,
    action: AuditAction,
    resource_type: &str,
    resource_id: Option<String>,
    detail: serde_json::Value,
) -> crate::error::ApiResult<()> {
    writer
        .audit(crate::responses::writer::AuditRecord {
            org: principal.org,
            actor: principal.client_id.to_string(),
            action,
            resource_type: resource_type.to_string(),
            resource_id,
            detail,
        })
        .await
}

/// The names of the filters a read used, for its audit detail: which filters, never their
/// values (they can name patients).
pub fn filters_used<'a>(filters: &[(&'a str, bool)]) -> Vec<&'a str> {
    filters
        .iter()
        .filter(|(_, used)| *used)
        .map(|(name, _)| *name)
        .collect()
}

/// Who does something, as the audit log names them: an API caller (a client, or an identity
/// provider's user), the command line, or rapport itself (start-up bootstrap, workers).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An authenticated caller, acting in its own organisation.
    Caller(&'a crate::auth::Principal),
    /// `rapport` subcommands run by an operator.
    Cli,
    /// rapport on its own.
    System,
}

impl Actor<'_> {
    /// The name the audit event records.
    pub fn name(&self) -> &str {
        match self {
            Actor::Caller(p) => p.client_id.as_str(),
            Actor::Cli => "cli",
            Actor::System => "system",
        }
    }

    /// The organisation whose audit log records the act: the caller's own, else `acted_on`.
    pub fn audit_org(&self, acted_on: crate::ids::OrgId) -> crate::ids::OrgId {
        match self {
            Actor::Caller(p) => p.org,
            Actor::Cli | Actor::System => acted_on,
        }
    }
}
