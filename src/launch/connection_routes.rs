//! `/v1/ehr-connections`: the EHRs that launch rapport's console (SMART App Launch) for
//! this organisation (`org:admin`).

use actix_web::{HttpResponse, delete, get, post, web};
use uuid::Uuid;

use super::model::{ClientAuth, EhrConnection, EhrConnectionList, NewEhrConnection};
use super::store::{self, NewRow};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

const MAX_TEXT: usize = 500;
const MAX_FRAME_ORIGINS: usize = 20;

fn plain_text(value: &str) -> bool {
    !value.is_empty() && value.chars().count() <= MAX_TEXT && !value.chars().any(char::is_control)
}

/// Register an EHR connection. With `private_key_jwt`, rapport makes an ES384 key pair for
/// it and publishes the public key at `jwks_url` (register that URL at the EHR); with
/// `client_secret_basic`, the secret is kept to authenticate at the EHR and never shown
/// again. The EHR registers rapport's launch URL `{RAPPORT_PUBLIC_URL}/launch` and
/// redirect URI `{RAPPORT_PUBLIC_URL}/launch/callback`. An issuer belongs to one
/// organisation. When the EHR's smart-configuration can be read and lists signing
/// algorithms without ES384, the connection is refused (rapport makes ES384 keys only).
#[utoipa::path(
    tag = "smart-launch",
    request_body = NewEhrConnection,
    responses(
        (status = 201, description = "Registered", body = EhrConnection),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An EHR connection with this issuer is already registered (in any organisation)", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::BodyTooLarge,
        crate::edge::problems::NotJson,
        (status = 422, description = "A bad issuer, client id, client authentication, secret or frame origin", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[post("/ehr-connections")]
pub async fn create_ehr_connection(
    principal: Principal,
    state: web::Data<AppState>,
    body: ApiJson<NewEhrConnection>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let body = body.0;
    let mut errors = Vec::new();
    let issuer = body.issuer.trim().trim_end_matches('/');
    if let Err(problem) = crate::outbound::check_registration(issuer, state.settings.webhook_allow_private).await {
        errors.push(FieldError::new("/issuer", problem));
    }
    let client_id = body.client_id.trim();
    if !plain_text(client_id) {
        errors.push(FieldError::new(
            "/client_id",
            format!("must be 1 to {MAX_TEXT} characters, without control characters"),
        ));
    }
    let client_auth = ClientAuth::parse(&body.client_auth);
    match (client_auth, body.client_secret.as_deref()) {
        (None, _) => errors.push(FieldError::new(
            "/client_auth",
            "must be client_secret_basic or private_key_jwt",
        )),
        (Some(ClientAuth::ClientSecretBasic), Some(secret)) if plain_text(secret) => {}
        (Some(ClientAuth::ClientSecretBasic), _) => errors.push(FieldError::new(
            "/client_secret",
            format!("client_secret_basic needs the secret: 1 to {MAX_TEXT} characters, without control characters"),
        )),
        (Some(ClientAuth::PrivateKeyJwt), Some(_)) => errors.push(FieldError::new(
            "/client_secret",
            "must be absent with private_key_jwt (rapport makes a key pair instead)",
        )),
        (Some(ClientAuth::PrivateKeyJwt), None) => {}
    }
    let mut frame_origins = Vec::new();
    if body.frame_origins.len() > MAX_FRAME_ORIGINS {
        errors.push(FieldError::new(
            "/frame_origins",
            format!("at most {MAX_FRAME_ORIGINS} origins"),
        ));
    }
    for (i, given) in body.frame_origins.iter().enumerate() {
        match crate::outbound::web_origin(given.trim()) {
            Ok(origin) if !frame_origins.contains(&origin) => frame_origins.push(origin),
            Ok(_) => {}
            Err(problem) => errors.push(FieldError::new(format!("/frame_origins/{i}"), problem)),
        }
    }
    if errors.is_empty() && client_auth == Some(ClientAuth::PrivateKeyJwt) {
        // The EHR may say which algorithms its token endpoint verifies; unreadable, ES384.
        if let Ok(config) = state.ehr.smart_configuration(issuer).await {
            let algs = &config.token_endpoint_auth_signing_alg_values_supported;
            if !algs.is_empty() && !algs.iter().any(|a| a == "ES384") {
                errors.push(FieldError::new(
                    "/client_auth",
                    format!(
                        "the EHR's token endpoint verifies {} but not ES384, the only key rapport makes; use client_secret_basic",
                        algs.join(", ")
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let client_auth = client_auth.ok_or_else(|| ApiError::internal("client_auth checked above"))?;
    let id = Uuid::new_v4();
    let key = match client_auth {
        ClientAuth::PrivateKeyJwt => Some(
            super::keys::generate(&format!("rapport-{}", id.simple()))
                .map_err(|e| ApiError::internal(format!("making the key pair: {e}")))?,
        ),
        ClientAuth::ClientSecretBasic => None,
    };
    let new = NewRow {
        id,
        issuer,
        client_id,
        client_auth,
        client_secret: body
            .client_secret
            .as_deref()
            .filter(|_| client_auth == ClientAuth::ClientSecretBasic),
        signing_key: key.as_ref().map(|k| k.private_der.as_slice()),
        signing_alg: key.as_ref().map(|k| k.alg),
        public_jwk: key.as_ref().map(|k| &k.public_jwk),
        frame_origins: &frame_origins,
    };
    let mut conn = crate::db::conn(&state.pool).await?;
    let created = super::service::create(&mut conn, Actor::Caller(&principal), principal.org, &new).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/ehr-connections/{}", created.id)))
        .json(created.to_api(&state.public_url)))
}

/// The organisation's EHR connections.
#[utoipa::path(
    tag = "smart-launch",
    responses(
        (status = 200, description = "Every EHR connection", body = EhrConnectionList),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/ehr-connections")]
pub async fn list_ehr_connections(principal: Principal, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let items = store::list(&mut conn, principal.org).await?;
    Ok(HttpResponse::Ok().json(EhrConnectionList {
        items: items.iter().map(|r| r.to_api(&state.public_url)).collect(),
    }))
}

/// One EHR connection.
#[utoipa::path(
    tag = "smart-launch",
    params(("id" = Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "The EHR connection", body = EhrConnection),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such EHR connection in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[get("/ehr-connections/{id}")]
pub async fn get_ehr_connection(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::OrgAdmin).await?;
    let row = store::find(&mut conn, principal.org, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row.to_api(&state.public_url)))
}

/// Delete an EHR connection: its pending launches and unused codes go at once, and its
/// launch tokens stop here at once and within 60 s on every instance.
#[utoipa::path(
    tag = "smart-launch",
    params(("id" = Uuid, Path, description = "The connection's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `org:admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such EHR connection in this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["org:admin"]))
)]
#[delete("/ehr-connections/{id}")]
pub async fn delete_ehr_connection(
    principal: Principal,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::OrgAdmin)?;
    let mut conn = crate::db::conn(&state.pool).await?;
    let (deleted, unlinked) = super::service::delete(
        &mut conn,
        &state.client_status,
        Actor::Caller(&principal),
        principal.org,
        *id,
    )
    .await?;
    state.ehr.forget(&deleted.issuer);
    for issuer in &unlinked {
        state.cds.forget(issuer);
    }
    Ok(HttpResponse::NoContent().finish())
}
