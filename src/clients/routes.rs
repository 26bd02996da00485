use actix_web::{HttpResponse, delete, get, post, web};

use super::model::{Client, ClientList, CreatedClient, NewClient};
use super::store::{self, PreparedCredentials};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::validation::validate_name;

/// Create an API client in the caller's organisation. With `jwks` or `jwks_uri` it is an
/// asymmetric client (`private_key_jwt`, SMART Backend Services) and has no secret;
/// otherwise the secret is in this answer only.
#[utoipa::path(
    tag = "clients",
    request_body = NewClient,
    responses(
        (status = 201, description = "Created; the secret is shown only here", body = CreatedClient),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`, or asks for a scope the caller does not hold", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "Invalid name, unknown scope, or a key set or JWKS URI rapport does not accept", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/clients")]
pub async fn create_client(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewClient>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let body = body.0;
    let mut errors = Vec::new();
    validate_name(&body.name, "/name", &mut errors);
    let mut scopes = Vec::new();
    for (i, raw) in body.scopes.iter().enumerate() {
        match Scope::parse(raw) {
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => {}
            None => errors.push(FieldError::new(format!("/scopes/{i}"), "unknown scope")),
        }
    }
    match (&body.jwks, &body.jwks_uri) {
        (Some(_), Some(_)) => errors.push(FieldError::new("/jwks_uri", "give `jwks` or `jwks_uri`, not both")),
        (Some(jwks), None) => {
            if let Err((pointer, problem)) = crate::auth::jwks::registered_keys(jwks) {
                errors.push(FieldError::new(pointer, problem));
            }
        }
        (None, Some(uri)) => {
            if let Err(problem) = crate::outbound::check_registration(uri, state.settings.webhook_allow_private).await {
                errors.push(FieldError::new("/jwks_uri", problem));
            }
        }
        (None, None) => {}
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if let Some(scope) = scopes
        .iter()
        .find(|s| **s == Scope::PlatformAdmin || !principal.has(**s))
    {
        return Err(ApiError::Forbidden(format!("cannot grant `{scope}`")));
    }
    scopes.sort();
    let credentials = if body.jwks.is_some() || body.jwks_uri.is_some() {
        PreparedCredentials::public_keys(body.jwks.clone(), body.jwks_uri.clone())
    } else {
        web::block(|| PreparedCredentials::prepare(None))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?
    };
    let mut conn = crate::db::conn(&state.pool).await?;
    let created = super::service::create(
        &mut conn,
        crate::audit::Actor::Caller(&principal),
        principal.org,
        &body.name,
        &scopes,
        credentials,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/clients/{}", created.id)))
        .insert_header(("Cache-Control", "no-store"))
        .json(created))
}

/// The organisation's API clients (never their secrets).
#[utoipa::path(
    tag = "clients",
    responses(
        (status = 200, description = "All clients, revoked ones included", body = ClientList),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/clients")]
pub async fn list_clients(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let rows = store::list(&mut conn, principal.org).await?;
    Ok(HttpResponse::Ok().json(ClientList {
        items: rows.into_iter().map(Client::from).collect(),
    }))
}

/// One API client of the caller's organisation.
#[utoipa::path(
    tag = "clients",
    params(("id" = String, Path, description = "The client's id (UUID) or its client_id")),
    responses(
        (status = 200, description = "The client", body = Client),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/clients/{id}")]
pub async fn get_client(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let row = store::find(&mut conn, principal.org, &store::ClientRef::parse(&id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(Client::from(row)))
}

/// Revoke a client: its tokens stop working within 60 s (at once on this instance).
/// Revoking twice is harmless. A caller may revoke only clients whose scopes are all among
/// its own (a limited administrator cannot revoke a fuller one).
#[utoipa::path(
    tag = "clients",
    params(("id" = String, Path, description = "The client's id (UUID) or its client_id")),
    responses(
        (status = 204, description = "Revoked"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`, and every scope the client holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client in this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The organisation's last active `org:admin` client", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[delete("/clients/{id}")]
pub async fn revoke_client(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let client = store::ClientRef::parse(&id);
    let mut conn = crate::db::conn(&state.pool).await?;
    let org = principal.org;
    let revoked = super::service::revoke(&mut conn, &principal, &client, &id).await?;
    state.client_status.forget(org, &revoked.client_id);
    Ok(HttpResponse::NoContent().finish())
}
