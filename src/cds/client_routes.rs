//! `/v1/cds-clients`: the EHRs whose JWTs may call rapport's CDS services for this
//! organisation (`org:admin`).

use actix_web::{HttpResponse, delete, get, post, web};
use uuid::Uuid;

use super::model::{CdsClient, CdsClientList, NewCdsClient};
use super::store::{self, NewRow};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

const MAX_TEXT: usize = 500;

/// Register a CDS client: its JWTs (signed with a key of `jwks` or of the set at
/// `jwks_uri`) call rapport's CDS services for this organisation. An issuer belongs to one
/// organisation.
#[utoipa::path(
    tag = "cds-hooks",
    request_body = NewCdsClient,
    responses(
        (status = 201, description = "Registered", body = CdsClient),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A CDS client with this issuer is already registered (in any organisation)", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "A bad issuer, key set, description or EHR connection", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/cds-clients")]
pub async fn create_cds_client(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewCdsClient>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let body = body.0;
    let mut errors = Vec::new();
    let issuer = body.issuer.trim();
    if issuer.is_empty() || issuer.chars().count() > MAX_TEXT || issuer.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "/issuer",
            format!("must be 1 to {MAX_TEXT} characters, without control characters"),
        ));
    }
    match (&body.jwks, &body.jwks_uri) {
        (Some(_), Some(_)) => errors.push(FieldError::new("/jwks_uri", "give `jwks` or `jwks_uri`, not both")),
        (None, None) => errors.push(FieldError::new("/jwks_uri", "give `jwks` or `jwks_uri`")),
        (Some(set), None) => {
            if let Err((pointer, problem)) = crate::auth::jwks::registered_keys(set) {
                errors.push(FieldError::new(pointer, problem));
            }
        }
        (None, Some(uri)) => {
            if let Err(problem) = crate::outbound::check_registration(uri, state.settings.webhook_allow_private).await {
                errors.push(FieldError::new("/jwks_uri", problem));
            }
        }
    }
    let description = body.description.as_deref().map(str::trim).unwrap_or_default();
    if description.chars().count() > MAX_TEXT || description.contains('\0') {
        errors.push(FieldError::new(
            "/description",
            format!("must be at most {MAX_TEXT} characters, without NUL"),
        ));
    }
    let mut conn = crate::db::conn(&state.pool).await?;
    if let Some(id) = body.ehr_connection_id
        && crate::launch::store::find(&mut conn, principal.org, id)
            .await?
            .is_none()
    {
        errors.push(FieldError::new(
            "/ehr_connection_id",
            "is not one of the organisation's EHR connections",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let jwks_uri = body.jwks_uri.as_deref().map(str::trim);
    let new = NewRow {
        issuer,
        jwks_uri,
        jwks: body.jwks.as_ref(),
        description,
        ehr_connection_id: body.ehr_connection_id,
    };
    let created = super::service::create(&mut conn, &state.cds, Actor::Caller(&principal), principal.org, &new).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/cds-clients/{}", created.id)))
        .json(CdsClient::from(created)))
}

/// The organisation's CDS clients.
#[utoipa::path(
    tag = "cds-hooks",
    responses(
        (status = 200, description = "Every CDS client", body = CdsClientList),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/cds-clients")]
pub async fn list_cds_clients(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let items = store::list(&mut conn, principal.org).await?;
    Ok(HttpResponse::Ok().json(CdsClientList {
        items: items.into_iter().map(CdsClient::from).collect(),
    }))
}

/// One CDS client.
#[utoipa::path(
    tag = "cds-hooks",
    params(("id" = Uuid, Path, description = "The CDS client's id")),
    responses(
        (status = 200, description = "The CDS client", body = CdsClient),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CDS client in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/cds-clients/{id}")]
pub async fn get_cds_client(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let row = store::find(&mut conn, principal.org, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(CdsClient::from(row)))
}

/// Stop trusting a CDS client: its calls are refused at once here and within 60 s on
/// every instance.
#[utoipa::path(
    tag = "cds-hooks",
    params(("id" = Uuid, Path, description = "The CDS client's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CDS client in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[delete("/cds-clients/{id}")]
pub async fn delete_cds_client(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let mut conn = crate::db::conn(&state.pool).await?;
    super::service::delete(&mut conn, &state.cds, Actor::Caller(&principal), principal.org, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
