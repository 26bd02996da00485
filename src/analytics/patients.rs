//! `GET /v1/patients`: the organisation's patients for one instrument ("my patients" with
//! `clinician`), each with its latest response's time, total and band and its open alerts,
//! so a clinician starts from a list instead of typing a reference.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit;
use crate::auth::{Principal, Scope};
use crate::error::{ApiResult, Problem};
use crate::ids::OrgId;
use crate::pagination;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientListQuery {
    /// Instrument key (required): the patients with a response to it.
    pub instrument: String,
    /// Only patients with a response rated about this clinician ("my patients").
    #[serde(default, deserialize_with = "crate::refs::nfc_option")]
    pub clinician: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// One patient of the list.
#[derive(Debug, Serialize, ToSchema, diesel::QueryableByName)]
pub struct PatientSummary {
    #[diesel(sql_type = Text)]
    pub patient: String,
    /// When the latest active response to the instrument was administered.
    #[diesel(sql_type = Timestamptz)]
    pub last_administered_at: DateTime<Utc>,
    /// Its total; null when it could not be scored.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub latest_total: Option<f64>,
    /// Its interpretation band; null without bands or without a score.
    #[diesel(sql_type = Nullable<Text>)]
    pub latest_band: Option<String>,
    /// The patient's open alerts, of any instrument (a safety flag on another measure shows
    /// here too).
    #[diesel(sql_type = BigInt)]
    pub open_alerts: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientPage {
    pub items: Vec<PatientSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The patients in reference order (by bytes, whatever the collation), after `after`.
async fn list(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    q: &PatientListQuery,
    after: Option<&str>,
    limit: i64,
) -> diesel::QueryResult<Vec<PatientSummary>> {
    crate::db::Prepared::new(
        "WITH latest AS (
            SELECT DISTINCT ON (r.patient COLLATE \"C\") r.patient, r.administered_at, r.total, r.band
            FROM responses r
            WHERE r.org_id = $1 AND r.instrument_key = $2 AND r.status = 'active'
              AND ($4::text IS NULL OR r.patient COLLATE \"C\" > $4::text COLLATE \"C\")
              AND ($3::text IS NULL OR EXISTS (
                    SELECT 1 FROM responses m
                    WHERE m.org_id = r.org_id AND m.patient = r.patient AND m.instrument_key = r.instrument_key
                      AND m.clinician = $3 AND m.status = 'active'))
            ORDER BY r.patient COLLATE \"C\", r.administered_at DESC, r.seq DESC
         )
         SELECT l.patient, l.administered_at AS last_administered_at, l.total AS latest_total,
                l.band AS latest_band,
                (SELECT count(*) FROM alerts a
                 WHERE a.org_id = $1 AND a.patient = l.patient AND a.status = 'open') AS open_alerts
         FROM latest l
         ORDER BY l.patient COLLATE \"C\"
         LIMIT $5",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(&q.instrument)
    .bind::<Nullable<Text>, _>(q.clinician.as_deref())
    .bind::<Nullable<Text>, _>(after)
    .bind::<BigInt, _>(limit + 1)
    .load(conn)
    .await
}

/// The organisation's patients with a response to `instrument` (with `clinician`: those
/// with a response rated about that clinician), in reference order, cursor-paged: each
/// with its latest response's time, total and band, and its open alerts.
#[utoipa::path(
    tag = "analytics",
    params(PatientListQuery),
    responses(
        (status = 200, description = "A page of patients", body = PatientPage),
        (status = 400, description = "Missing `instrument`, a bad `limit` or `cursor`, or an unknown parameter", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/patients")]
pub async fn list_patients(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<PatientListQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let limit = pagination::limit(query.limit.as_deref())?;
    let after: Option<String> = pagination::decode_cursor(query.cursor.as_deref())?;
    let mut conn = state.read_conn().await?;
    let rows = list(&mut conn, principal.org, &query, after.as_deref(), limit).await?;
    if rows.is_empty() {
        crate::instruments::lookup::require_visible(&mut conn, &state.builtins, principal.org, &query.instrument)
            .await?;
    }
    drop(conn);
    let (items, next_cursor) = pagination::page(rows, limit, |r| r.patient.clone());
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::PatientsListed,
        "patient",
        None,
        json!({"instrument": query.instrument, "rows": items.len(),
            "filters": audit::filters_used(&[("clinician", query.clinician.is_some())])}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(PatientPage { items, next_cursor }))
}
