//! Catalogue writes: new instruments and drafts, replacing a draft, publish and retire.
//! Every write is audited in the transaction that makes it.

use actix_web::{HttpResponse, post, put, web};

use super::model::{InstrumentStatus, InstrumentVersion, NewInstrument};
use super::{load, service, store, validate};
use crate::audit::Actor;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::extract::LargeJson;
use crate::state::AppState;

use super::routes::{VersionPath, org_slug, read_only};

/// Create an instrument, or a new draft version of one the organisation owns.
/// Built-in keys cannot be reused (409).
#[utoipa::path(
    tag = "instruments",
    request_body = NewInstrument,
    responses(
        (status = 201, description = "A new draft version", body = InstrumentVersion),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `instruments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is a built-in instrument's, or the key has an open draft (one draft at a time: replace it or publish it)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::NotJson,
        (status = 422, description = "Inconsistent definition; `errors` names every problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["instruments:write"]))
)]
#[post("/instruments")]
pub async fn create_instrument(
    principal: Principal,
    state: web::Data<AppState>,
    body: LargeJson<NewInstrument>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::InstrumentsWrite)?;
    let spec = body.0;
    validate::validate(&spec).map_err(ApiError::Validation)?;
    let definition = serde_json::to_value(&spec).map_err(ApiError::internal)?;
    let mut conn = crate::db::conn(&state.pool).await?;
    if store::is_builtin_key(&mut conn, &spec.key).await? {
        return Err(ApiError::Conflict(format!(
            "`{}` is a built-in instrument and cannot be redefined",
            spec.key
        )));
    }
    let org = principal.org;
    let row = service::create_draft(&mut conn, Actor::Caller(&principal), org, &spec.key, &definition).await?;
    let slug = org_slug(&mut conn, org).await?;
    let version = load(row, &slug)?.version;
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/v1/instruments/{}/versions/{}", version.key, version.version),
        ))
        .json(version))
}

/// Replace a draft version's definition. Published and retired versions are immutable (409).
#[utoipa::path(
    tag = "instruments",
    params(VersionPath),
    request_body = NewInstrument,
    responses(
        (status = 200, description = "The replaced draft", body = InstrumentVersion),
        crate::edge::problems::MalformedJson,
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `instruments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version for this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a draft, or a built-in", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::NotJson,
        (status = 422, description = "Inconsistent definition, or `key` differs from the path", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["instruments:write"]))
)]
#[put("/instruments/{key}/versions/{v}")]
pub async fn replace_draft(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<VersionPath>,
    body: LargeJson<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::InstrumentsWrite)?;
    // The path decides first: an unknown or foreign version is 404 and a version that is no
    // draft 409, before anything in the body is looked at.
    let mut conn = crate::db::conn(&state.pool).await?;
    let Some(existing) = store::find_version(&mut conn, principal.org, &path.key, path.v).await? else {
        return Err(ApiError::NotFound);
    };
    if existing.org_id.is_none() {
        return Err(read_only());
    }
    if existing.status != InstrumentStatus::Draft.as_str() {
        return Err(service::not_a_draft(&mut conn, principal.org, &path.key, path.v).await);
    }
    let spec = draft_body(body.0, &path)?;
    validate::validate(&spec).map_err(ApiError::Validation)?;
    let definition = serde_json::to_value(&spec).map_err(ApiError::internal)?;
    let org = principal.org;
    let row = service::replace_draft(
        &mut conn,
        Actor::Caller(&principal),
        org,
        &path.key,
        path.v,
        &definition,
    )
    .await?;
    let slug = org_slug(&mut conn, org).await?;
    Ok(HttpResponse::Ok().json(load(row, &slug)?.version))
}

async fn change_status(
    principal: Principal,
    state: web::Data<AppState>,
    path: VersionPath,
    to: InstrumentStatus,
) -> ApiResult<HttpResponse> {
    let mut conn = state.conn_for(&principal, Scope::InstrumentsWrite).await?;
    let org = principal.org;
    let row = service::change_status(&mut conn, Actor::Caller(&principal), org, &path.key, path.v, to).await?;
    let slug = org_slug(&mut conn, org).await?;
    Ok(HttpResponse::Ok().json(load(row, &slug)?.version))
}

/// Publish a draft: from now on it is immutable and accepts responses. Repeating is harmless.
#[utoipa::path(
    tag = "instruments",
    params(VersionPath),
    responses(
        (status = 200, description = "The published version", body = InstrumentVersion),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `instruments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version for this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Retired, or a built-in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["instruments:write"]))
)]
#[post("/instruments/{key}/versions/{v}/publish")]
pub async fn publish_version(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<VersionPath>,
) -> ApiResult<HttpResponse> {
    change_status(principal, state, path.into_inner(), InstrumentStatus::Published).await
}

/// Retire a published version: no new responses; old ones keep scoring and trending.
#[utoipa::path(
    tag = "instruments",
    params(VersionPath),
    responses(
        (status = 200, description = "The retired version", body = InstrumentVersion),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `instruments:write`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version for this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A draft, or a built-in", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["instruments:write"]))
)]
#[post("/instruments/{key}/versions/{v}/retire")]
pub async fn retire_version(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<VersionPath>,
) -> ApiResult<HttpResponse> {
    change_status(principal, state, path.into_inner(), InstrumentStatus::Retired).await
}

/// The body of a draft replacement: `key` and `version` may be omitted (the path names
/// them); when present they must equal the path.
fn draft_body(body: serde_json::Value, path: &VersionPath) -> ApiResult<NewInstrument> {
    let serde_json::Value::Object(mut body) = body else {
        return Err(ApiError::validation("", "must be a JSON object"));
    };
    let mut errors = Vec::new();
    match body.get("key") {
        None => {
            body.insert("key".into(), serde_json::Value::String(path.key.clone()));
        }
        Some(k) if k.as_str() == Some(path.key.as_str()) => {}
        Some(_) => errors.push(FieldError::new("/key", "must equal the key in the path")),
    }
    match body.remove("version") {
        None => {}
        Some(v) if v.as_i64() == Some(i64::from(path.v)) => {}
        Some(_) => errors.push(FieldError::new("/version", "must equal the version in the path")),
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    crate::extract::from_value(serde_json::Value::Object(body))
}
