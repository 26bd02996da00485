use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::model::{AuditEvent, AuditEventPage};
use super::store;
use crate::auth::{Principal, Scope};
use crate::error::{ApiResult, Problem};
use crate::pagination;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// The caller's organisation's audit events, newest first.
#[utoipa::path(
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditEventPage),
        (status = 400, description = "Bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/audit-events")]
pub async fn list_audit_events(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<AuditQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let limit = pagination::limit(query.limit.as_deref())?;
    let before: Option<i64> = pagination::decode_cursor(query.cursor.as_deref())?;
    let mut conn = state.read_conn().await?;
    let rows = store::list(&mut conn, principal.org, before, limit).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.seq);
    Ok(HttpResponse::Ok().json(AuditEventPage {
        items: rows.into_iter().map(AuditEvent::from).collect(),
        next_cursor,
    }))
}
