//! `POST /v1/patients/{patient}/erase`: a patient's erasure request, honoured in one
//! transaction. Gone: every response of the patient, their alerts, outbox events, kept
//! clinician series, every webhook delivery whose message names them (pending or
//! logged), and the CDS cards issued about them with their feedback. One audit event remains, naming the patient's pseudonym only. Backups still hold
//! the data until they expire (the README says so).

use actix_web::{HttpResponse, post, web};
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, AuditEntry};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::ApiJson;
use crate::ids::OrgId;
use crate::series::SeriesKey;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The patient reference again, as a guard against erasing the wrong one.
    pub confirm: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// The patient's pseudonym (as in exports): what the audit log keeps.
    pub patient_pseudonym: String,
    pub responses_deleted: i64,
    pub alerts_deleted: i64,
}

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    responses: i64,
    #[diesel(sql_type = BigInt)]
    alerts: i64,
    #[diesel(sql_type = BigInt)]
    deliveries: i64,
}

#[derive(diesel::QueryableByName)]
struct Series {
    #[diesel(sql_type = Text)]
    instrument_key: String,
    #[diesel(sql_type = Text)]
    rater: String,
}

/// Deletes what the organisation holds of one patient; the counts.
async fn erase(conn: &mut AsyncPgConnection, org: OrgId, patient: &str) -> diesel::QueryResult<Counts> {
    // Under the patient's series locks: an outbox worker evaluating one of them finishes
    // first, or starts after and finds nothing.
    let series: Vec<Series> = crate::db::Prepared::new(
        "SELECT DISTINCT instrument_key, rater FROM responses WHERE org_id = $1 AND patient = $2
         UNION SELECT DISTINCT instrument_key, rater FROM alerts WHERE org_id = $1 AND patient = $2",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(patient)
    .load(conn)
    .await?;
    let keys: Vec<SeriesKey> = series
        .into_iter()
        .map(|s| SeriesKey {
            org,
            patient: patient.to_string(),
            instrument: s.instrument_key,
            rater: s.rater,
        })
        .collect();
    crate::series::lock(conn, &keys).await?;
    // The expected-response models of these instruments lose the patient's courses.
    let changed: Vec<(String, String)> = keys.iter().map(|k| (k.instrument.clone(), k.rater.clone())).collect();
    crate::expected::store::mark_changed(conn, org, &changed).await?;
    crate::db::Prepared::new(
        "WITH r AS (DELETE FROM responses WHERE org_id = $1 AND patient = $2 RETURNING 1),
              a AS (DELETE FROM alerts WHERE org_id = $1 AND patient = $2 RETURNING 1),
              o AS (DELETE FROM outbox_events WHERE org_id = $1 AND patient = $2 RETURNING 1),
              c AS (DELETE FROM clinician_series WHERE org_id = $1 AND patient = $2 RETURNING 1),
              d AS (DELETE FROM webhook_deliveries
                    WHERE org_id = $1 AND (body::jsonb -> 'data' ->> 'patient') = $2 RETURNING 1),
              k AS (DELETE FROM webhook_events WHERE org_id = $1 AND patient = $2 RETURNING 1),
              cc AS (DELETE FROM cds_cards WHERE org_id = $1 AND patient = $2 RETURNING 1),
              cf AS (DELETE FROM cds_feedback WHERE org_id = $1 AND patient = $2 RETURNING 1),
              lc AS (DELETE FROM launch_codes WHERE org_id = $1 AND patient = $2 RETURNING 1)
         SELECT (SELECT count(*) FROM r) AS responses, (SELECT count(*) FROM a) AS alerts,
                (SELECT count(*) FROM d) AS deliveries, (SELECT count(*) FROM o) AS outbox,
                (SELECT count(*) FROM c) AS series, (SELECT count(*) FROM k) AS kept_events,
                (SELECT count(*) FROM cc) AS cds_cards, (SELECT count(*) FROM cf) AS cds_feedback",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(patient)
    .get_result(conn)
    .await
}

/// Erase a patient: every response, alert, outbox event and webhook delivery of theirs, in
/// one transaction. The body repeats the reference. A second erase answers 404.
#[utoipa::path(
    tag = "responses",
    params(("patient" = String, Path, description = "The patient reference")),
    request_body = EraseRequest,
    responses(
        (status = 200, description = "Erased", body = Erased),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation holds nothing of this patient", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "`confirm` is not the patient reference", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/patients/{patient}/erase")]
pub async fn erase_patient(
    principal: Principal,
    state: web::Data<AppState>,
    patient: web::Path<String>,
    body: ApiJson<EraseRequest>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let patient = crate::refs::Reference::parse(&patient.into_inner())
        .map_err(|_| ApiError::NotFound)?
        .into_inner();
    if crate::refs::nfc(&body.0.confirm) != patient {
        return Err(ApiError::Validation(vec![FieldError::new(
            "/confirm",
            "must repeat the patient reference of the path",
        )]));
    }
    let org = principal.org;
    let mut conn = crate::db::conn(&state.pool).await?;
    let erased = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let counts = erase(conn, org, &patient).await?;
            if counts.responses == 0 && counts.alerts == 0 {
                return Err(ApiError::NotFound);
            }
            let secret = crate::pseudonyms::pseudonym_secret(conn, org).await?;
            let pseudonym = crate::pseudonyms::pseudonym(&secret, &patient);
            audit::record(
                conn,
                AuditEntry {
                    org,
                    actor: principal.client_id.as_str(),
                    action: crate::audit::AuditAction::PatientErased,
                    resource_type: "patient",
                    resource_id: Some(pseudonym.clone()),
                    detail: json!({"responses_deleted": counts.responses, "alerts_deleted": counts.alerts,
                        "deliveries_deleted": counts.deliveries}),
                },
            )
            .await?;
            Ok(Erased {
                patient_pseudonym: pseudonym,
                responses_deleted: counts.responses,
                alerts_deleted: counts.alerts,
            })
        })
        .await?;
    // Organisation norms may have counted the patient's first response.
    state.norms.invalidate_organisation(org);
    state.worker_norms.invalidate_organisation(org);
    Ok(HttpResponse::Ok().json(erased))
}
