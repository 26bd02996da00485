//! `POST /v1/exports/pseudonym-key/rotate`: a new pseudonym secret for the organisation.

use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::rotate_pseudonym_secret;
use crate::audit::{self, AuditEntry};
use crate::auth::{Principal, Scope};
use crate::error::{ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    pub rotated_at: DateTime<Utc>,
}

/// A new pseudonym secret for the organisation: pseudonyms from earlier exports no longer match.
#[utoipa::path(
    tag = "export",
    responses(
        (status = 200, description = "Rotated", body = Rotated),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/pseudonym-key/rotate")]
pub async fn rotate_pseudonym_key(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    rotate_pseudonym_secret(&mut conn, principal.org).await?;
    audit::record(
        &mut conn,
        AuditEntry {
            org: principal.org,
            actor: principal.client_id.as_str(),
            action: crate::audit::AuditAction::PseudonymKeyRotated,
            resource_type: "export",
            resource_id: None,
            detail: json!({}),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(Rotated { rotated_at: Utc::now() }))
}
