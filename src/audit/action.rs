//! What the audit log says was done: the closed set of actions, mapped to their text in the
//! `audit_events` table (`response.voided`, ...). A new action is a new variant here.

/// An audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum AuditAction {
    AlertRead,
    AlertsListed,
    AllianceOutcomeRead,
    ClinicianSummariesRead,
    ClinicianSummaryRead,
    ObservationRead,
    ObservationsCounted,
    ObservationsSearched,
    PatientsListed,
    ResponseRead,
    ResponsesListed,
    TrajectoryRead,
    TrendRead,
    AlertAcknowledged,
    ClientCreated,
    ClientRevoked,
    IdentityProviderCreated,
    IdentityProviderDeleted,
    PatientErased,
    PseudonymKeyRotated,
    ResponseAmended,
    ResponseVoided,
    ResponsesExported,
    InstrumentCreated,
    InstrumentUpdated,
    InstrumentPublished,
    InstrumentRetired,
    OrganizationCreated,
    OrganizationBootstrapped,
    WebhookCreated,
    WebhookDeleted,
    WebhookSecretRotated,
    WebhookEnabled,
    WebhookReplayed,
    ResponseCreated,
    ResponsesBatchCreated,
    CdsClientCreated,
    CdsClientDeleted,
    CdsCall,
    CdsFeedback,
    EhrConnectionCreated,
    EhrConnectionDeleted,
    LaunchCompleted,
    LaunchContextIgnored,
    LaunchSessionStarted,
    ExpectedModelRefitted,
}

crate::db::text_enum!(AuditAction {
    AlertRead => "alert.read",
    AlertsListed => "alerts.listed",
    AllianceOutcomeRead => "alliance_outcome.read",
    ClinicianSummariesRead => "clinician_summaries.read",
    ClinicianSummaryRead => "clinician_summary.read",
    ObservationRead => "observation.read",
    ObservationsCounted => "observations.counted",
    ObservationsSearched => "observations.searched",
    PatientsListed => "patients.listed",
    ResponseRead => "response.read",
    ResponsesListed => "responses.listed",
    TrajectoryRead => "trajectory.read",
    TrendRead => "trend.read",
    AlertAcknowledged => "alert.acknowledged",
    ClientCreated => "client.created",
    ClientRevoked => "client.revoked",
    IdentityProviderCreated => "identity_provider.created",
    IdentityProviderDeleted => "identity_provider.deleted",
    PatientErased => "patient.erased",
    PseudonymKeyRotated => "pseudonym_key.rotated",
    ResponseAmended => "response.amended",
    ResponseVoided => "response.voided",
    ResponsesExported => "responses.exported",
    InstrumentCreated => "instrument.created",
    InstrumentUpdated => "instrument.updated",
    InstrumentPublished => "instrument.published",
    InstrumentRetired => "instrument.retired",
    OrganizationCreated => "organization.created",
    OrganizationBootstrapped => "organization.bootstrapped",
    WebhookCreated => "webhook.created",
    WebhookDeleted => "webhook.deleted",
    WebhookSecretRotated => "webhook.secret_rotated",
    WebhookEnabled => "webhook.enabled",
    WebhookReplayed => "webhook.replayed",
    ResponseCreated => "response.created",
    ResponsesBatchCreated => "responses.batch_created",
    CdsClientCreated => "cds_client.created",
    CdsClientDeleted => "cds_client.deleted",
    CdsCall => "cds.call",
    CdsFeedback => "cds.feedback",
    EhrConnectionCreated => "ehr_connection.created",
    EhrConnectionDeleted => "ehr_connection.deleted",
    LaunchCompleted => "launch.completed",
    LaunchContextIgnored => "launch.context_ignored",
    LaunchSessionStarted => "launch.session_started",
    ExpectedModelRefitted => "expected_model.refitted",
});

impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    const ALL: [AuditAction; 46] = [
        AuditAction::AlertRead,
        AuditAction::AlertsListed,
        AuditAction::AllianceOutcomeRead,
        AuditAction::ClinicianSummariesRead,
        AuditAction::ClinicianSummaryRead,
        AuditAction::ObservationRead,
        AuditAction::ObservationsCounted,
        AuditAction::ObservationsSearched,
        AuditAction::PatientsListed,
        AuditAction::ResponseRead,
        AuditAction::ResponsesListed,
        AuditAction::TrajectoryRead,
        AuditAction::TrendRead,
        AuditAction::AlertAcknowledged,
        AuditAction::ClientCreated,
        AuditAction::ClientRevoked,
        AuditAction::IdentityProviderCreated,
        AuditAction::IdentityProviderDeleted,
        AuditAction::PatientErased,
        AuditAction::PseudonymKeyRotated,
        AuditAction::ResponseAmended,
        AuditAction::ResponseVoided,
        AuditAction::ResponsesExported,
        AuditAction::InstrumentCreated,
        AuditAction::InstrumentUpdated,
        AuditAction::InstrumentPublished,
        AuditAction::InstrumentRetired,
        AuditAction::OrganizationCreated,
        AuditAction::OrganizationBootstrapped,
        AuditAction::WebhookCreated,
        AuditAction::WebhookDeleted,
        AuditAction::WebhookSecretRotated,
        AuditAction::WebhookEnabled,
        AuditAction::WebhookReplayed,
        AuditAction::ResponseCreated,
        AuditAction::ResponsesBatchCreated,
        AuditAction::CdsClientCreated,
        AuditAction::CdsClientDeleted,
        AuditAction::CdsCall,
        AuditAction::CdsFeedback,
        AuditAction::EhrConnectionCreated,
        AuditAction::EhrConnectionDeleted,
        AuditAction::LaunchCompleted,
        AuditAction::LaunchContextIgnored,
        AuditAction::LaunchSessionStarted,
        AuditAction::ExpectedModelRefitted,
    ];

    #[test]
    fn every_action_has_one_text_that_reads_back() {
        let mut seen = std::collections::BTreeSet::new();
        for a in ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert!(seen.insert(a.as_str()), "{} twice", a.as_str());
            assert_eq!(serde_json::to_value(a).unwrap(), serde_json::json!(a.as_str()));
        }
    }
}
