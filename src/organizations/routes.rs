use actix_web::{HttpResponse, get, post, web};

use super::model::{CreatedOrganization, NewOrganization, Organization, OrganizationList};
use super::{store, validate_new_organization};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::clients::store::PreparedCredentials;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Create an organisation (tenant) with its first administrator client, which holds every
/// scope except `platform:admin`. The client secret is shown only in this answer.
#[utoipa::path(
    tag = "organizations",
    request_body = NewOrganization,
    responses(
        (status = 201, description = "Created", body = CreatedOrganization),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `platform:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The slug is taken", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "Invalid slug or name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["platform:admin"]))
)]
#[post("/organizations")]
pub async fn create_organization(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewOrganization>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::PlatformAdmin)?;
    let body = body.0;
    validate_new_organization(&body)?;
    let credentials = web::block(|| PreparedCredentials::prepare(None))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut conn = crate::db::conn(&state.pool).await?;
    let created = super::service::create(
        &mut conn,
        Actor::Caller(&principal),
        (&body.slug, &body.name),
        &Scope::all_but_platform(),
        credentials,
        crate::audit::AuditAction::OrganizationCreated,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(created))
}

/// Every organisation (platform operators only).
#[utoipa::path(
    tag = "organizations",
    responses(
        (status = 200, description = "All organisations", body = OrganizationList),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `platform:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["platform:admin"]))
)]
#[get("/organizations")]
pub async fn list_organizations(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::PlatformAdmin).await?;
    let rows = store::list(&mut conn).await?;
    Ok(HttpResponse::Ok().json(OrganizationList {
        items: rows.into_iter().map(Organization::from).collect(),
    }))
}
