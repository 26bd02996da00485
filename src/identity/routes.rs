//! `/v1/identity-providers`: the organisation's trusted identity providers (`org:admin`).

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, ProviderList, ProviderRow};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

const MAX_TEXT: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    /// The `iss` of its tokens (an https URL; unique across organisations).
    #[schema(example = "https://login.north-clinic.example/realms/clinic")]
    pub issuer: String,
    /// Where it publishes its signing keys (https, the webhook target rules).
    pub jwks_uri: String,
    /// The `aud` its tokens for rapport carry.
    pub audience: String,
    /// The claim holding scopes (a space-separated string or an array); default `scope`.
    #[serde(default)]
    pub scope_claim: Option<String>,
}

fn check_text(value: &str, pointer: &str, errors: &mut Vec<FieldError>) {
    if value.trim().is_empty() || value.chars().count() > MAX_TEXT || value.contains('\0') {
        errors.push(FieldError::new(pointer, format!("must be 1 to {MAX_TEXT} characters")));
    }
}

/// Trust an identity provider: its tokens are accepted for this organisation.
#[utoipa::path(
    tag = "identity",
    request_body = NewProvider,
    responses(
        (status = 201, description = "Registered", body = ProviderRow),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An organisation already trusts this issuer", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "A bad issuer, JWKS URI, audience or scope claim", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/identity-providers")]
pub async fn create_provider(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewProvider>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let body = body.0;
    let allow_private = state.settings.webhook_allow_private;
    let mut errors = Vec::new();
    check_text(&body.issuer, "/issuer", &mut errors);
    match url::Url::parse(&body.issuer) {
        Ok(u) if u.scheme() == "https" || (allow_private && u.scheme() == "http") => {}
        _ => errors.push(FieldError::new("/issuer", "must be an https URL")),
    }
    if body.issuer == state.settings.jwt_issuer {
        errors.push(FieldError::new("/issuer", "is rapport's own issuer"));
    }
    if let Err(problem) = crate::outbound::check_registration(&body.jwks_uri, allow_private).await {
        errors.push(FieldError::new("/jwks_uri", problem));
    }
    check_text(&body.audience, "/audience", &mut errors);
    let scope_claim = body.scope_claim.unwrap_or_else(|| "scope".into());
    if scope_claim.is_empty()
        || scope_claim.len() > 100
        || !scope_claim
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    {
        errors.push(FieldError::new(
            "/scope_claim",
            "must be 1 to 100 of A-Z, a-z, 0-9, _ - . :",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut conn = crate::db::conn(&state.pool).await?;
    let new = super::service::NewProvider {
        issuer: &body.issuer,
        jwks_uri: &body.jwks_uri,
        audience: &body.audience,
        scope_claim: &scope_claim,
    };
    let created = super::service::create(
        &mut conn,
        &state.identity,
        Actor::Caller(&principal),
        principal.org,
        &new,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/identity-providers/{}", created.id)))
        .json(created))
}

/// The organisation's trusted identity providers.
#[utoipa::path(
    tag = "identity",
    responses(
        (status = 200, description = "Every provider", body = ProviderList),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/identity-providers")]
pub async fn list_providers(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let items = store::list(&mut conn, principal.org).await?;
    Ok(HttpResponse::Ok().json(ProviderList { items }))
}

/// One trusted identity provider.
#[utoipa::path(
    tag = "identity",
    params(("id" = Uuid, Path, description = "The provider's id")),
    responses(
        (status = 200, description = "The provider", body = ProviderRow),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/identity-providers/{id}")]
pub async fn get_provider(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let row = store::find(&mut conn, principal.org, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row))
}

/// Stop trusting an identity provider: its tokens stop working within 60 s everywhere
/// (at once on this instance).
#[utoipa::path(
    tag = "identity",
    params(("id" = Uuid, Path, description = "The provider's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such provider in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[delete("/identity-providers/{id}")]
pub async fn delete_provider(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let id = *id;
    let mut conn = crate::db::conn(&state.pool).await?;
    super::service::delete(&mut conn, &state.identity, Actor::Caller(&principal), principal.org, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
