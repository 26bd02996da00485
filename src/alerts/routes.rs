use actix_web::{HttpResponse, get, post, web};
use diesel_async::AsyncConnection as _;
use serde_json::json;

use super::model::{AcknowledgeRequest, Alert, AlertDetail, AlertKind, AlertPage, AlertQuery, AlertStatus};
use super::store;
use crate::audit::{self, AuditEntry};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::pagination;
use crate::state::AppState;

const MAX_NOTE: usize = 1_000;

/// The organisation's alerts, newest first, keyset-paged (`status` defaults to `open`): a new
/// safety flag is always on the first page.
#[utoipa::path(
    tag = "alerts",
    params(AlertQuery),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        (status = 400, description = "Bad `status`, `kind`, `since`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/alerts")]
pub async fn list_alerts(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<AlertQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let status = match query.status.as_deref().unwrap_or("open") {
        "all" => None,
        s => Some(AlertStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest("`status` must be open, acknowledged, resolved, withdrawn or all".into())
        })?),
    };
    if query.kind.as_deref().is_some_and(|k| AlertKind::parse(k).is_none()) {
        return Err(ApiError::BadRequest(
            "`kind` must be rupture, below_cutoff, deterioration, item_flag or not_on_track".into(),
        ));
    }
    let limit = pagination::limit(query.limit.as_deref())?;
    let after: Option<i64> = pagination::decode_cursor(query.cursor.as_deref())?;
    let mut query = query.into_inner();
    // A launch token lists its patient only; a filter naming another finds nothing.
    let crate::auth::PatientFilter::Filter(patient) = principal.patient_filter(query.patient.as_deref()) else {
        return Ok(HttpResponse::Ok().json(AlertPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    };
    query.patient = patient;
    let mut conn = state.read_conn().await?;
    let rows = store::list(&mut conn, principal.org, &query, status, after, limit).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.seq);
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::AlertsListed,
        "alert",
        None,
        json!({"rows": rows.len(), "filters": audit::filters_used(&[
            ("patient", query.patient.is_some()),
            ("clinician", query.clinician.is_some()),
            ("instrument", query.instrument.is_some()),
            ("kind", query.kind.is_some()),
        ])}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(AlertPage {
        items: rows.into_iter().map(Alert::from).collect(),
        next_cursor,
    }))
}

/// One alert.
#[utoipa::path(
    tag = "alerts",
    params(("id" = Uuid, Path, description = "The alert id")),
    responses(
        (status = 200, description = "The alert, with the feedback on CDS cards that carried it", body = AlertDetail),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/alerts/{id}")]
pub async fn get_alert(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::AlertId>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let id = id.into_inner();
    let mut conn = crate::db::conn(&state.pool).await?;
    let row = store::find(&mut conn, principal.org, id)
        .await?
        .filter(|row| principal.sees(&row.patient))
        .ok_or(ApiError::NotFound)?;
    let cds_feedback = crate::cds::store::feedback_for_alert(&mut conn, principal.org, row.id).await?;
    audit::record_read(
        &state.writer,
        &principal,
        crate::audit::AuditAction::AlertRead,
        "alert",
        Some(id.to_string()),
        json!({}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(AlertDetail {
        alert: Alert::from(row),
        cds_feedback,
    }))
}

/// Acknowledge an alert, with an optional note (at most 1,000 characters). Acknowledging
/// again changes nothing; the event is audited. Needs `responses:read`: the clinician who can
/// read the alert acts on it (a write-only feed cannot silence alerts it cannot see).
#[utoipa::path(
    tag = "alerts",
    params(("id" = Uuid, Path, description = "The alert id")),
    request_body = AcknowledgeRequest,
    responses(
        (status = 200, description = "The acknowledged alert", body = Alert),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such alert in this organisation", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::NotJson,
        (status = 422, description = "Note over 1,000 characters or with NUL", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[post("/alerts/{id}/acknowledge")]
pub async fn acknowledge_alert(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<crate::ids::AlertId>,
    body: ApiJson<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::ResponsesRead)?;
    let id = id.into_inner();
    let mut conn = crate::db::conn(&state.pool).await?;
    // The path decides first: an id the caller cannot see is 404 whatever the body says.
    store::find(&mut conn, principal.org, id)
        .await?
        .filter(|row| principal.sees(&row.patient))
        .ok_or(ApiError::NotFound)?;
    let body: AcknowledgeRequest = crate::extract::from_value(body.0)?;
    let note = body.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &note
        && (n.chars().count() > MAX_NOTE || n.contains('\0'))
    {
        return Err(ApiError::validation(
            "/note",
            "must be at most 1,000 characters, without NUL",
        ));
    }
    let org = principal.org;
    let row = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let row = store::acknowledge(conn, org, id, principal.client_id.as_str(), note.as_deref())
                .await?
                .ok_or(ApiError::NotFound)?;
            audit::record(
                conn,
                AuditEntry {
                    org,
                    actor: principal.client_id.as_str(),
                    action: crate::audit::AuditAction::AlertAcknowledged,
                    resource_type: "alert",
                    resource_id: Some(id.to_string()),
                    detail: json!({"kind": row.kind, "note": note.is_some()}),
                },
            )
            .await?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Alert::from(row)))
}
