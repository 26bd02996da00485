//! Catalogue reads: the instruments a caller can see, one instrument, one version.

use crate::ids::OrgId;

use actix_web::{HttpResponse, get, web};
use diesel_async::AsyncPgConnection;
use serde::Deserialize;
use utoipa::IntoParams;

use super::model::{InstrumentList, InstrumentOverview, InstrumentStatus, InstrumentVersion, VersionInfo};
use super::{LoadedInstrument, load, owner_slug, store};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only versions in this state.
    pub status: Option<InstrumentStatus>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The instrument key, e.g. `wai-sr`.
    pub key: String,
    /// The integer version.
    pub v: i32,
}

pub(super) async fn org_slug(conn: &mut AsyncPgConnection, org: OrgId) -> ApiResult<String> {
    Ok(crate::organizations::store::slug_of(conn, org)
        .await?
        .unwrap_or_default())
}

pub(super) use super::service::read_only;

/// Built-in instruments and the caller's organisation's own, every version.
#[utoipa::path(
    tag = "instruments",
    params(ListQuery),
    responses(
        (status = 200, description = "Instrument versions, built-ins first, by key and version", body = InstrumentList),
        (status = 400, description = "Unknown `status`", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
    ),
    security(("bearer" = []))
)]
#[get("/instruments")]
pub async fn list_instruments(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<ListQuery>,
) -> ApiResult<HttpResponse> {
    let mut conn = crate::db::conn(&state.pool).await?;
    let slug = org_slug(&mut conn, principal.org).await?;
    let rows = store::list(&mut conn, principal.org, query.status.map(InstrumentStatus::as_str)).await?;
    let items = rows
        .into_iter()
        .map(|r| load(r, &slug).map(|l| l.version))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(InstrumentList { items }))
}

/// One instrument: its latest published version and the status of every version.
#[utoipa::path(
    tag = "instruments",
    params(("key" = String, Path, description = "The instrument key")),
    responses(
        (status = 200, description = "The instrument", body = InstrumentOverview),
        crate::edge::problems::Unauthorized,
        (status = 404, description = "No such instrument for this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/instruments/{key}")]
pub async fn get_instrument(
    principal: Principal,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let mut conn = crate::db::conn(&state.pool).await?;
    let rows = store::versions_of(&mut conn, principal.org, &key).await?;
    let Some(first) = rows.first() else {
        return Err(ApiError::NotFound);
    };
    let owner = owner_slug(&mut conn, first).await?;
    let loaded = rows
        .into_iter()
        .map(|r| load(r, &owner))
        .collect::<ApiResult<Vec<LoadedInstrument>>>()?;
    let versions = loaded
        .iter()
        .map(|l| VersionInfo {
            version: l.version.version,
            status: l.status(),
            created_at: l.created_at,
        })
        .collect::<Vec<_>>();
    let latest = loaded
        .iter()
        .rev()
        .find(|l| l.status() == InstrumentStatus::Published)
        .map(|l| l.version.clone());
    Ok(HttpResponse::Ok().json(InstrumentOverview {
        key: key.into_inner(),
        owner,
        latest,
        versions,
    }))
}

/// One instrument version.
#[utoipa::path(
    tag = "instruments",
    params(VersionPath),
    responses(
        (status = 200, description = "The version", body = InstrumentVersion),
        crate::edge::problems::Unauthorized,
        (status = 404, description = "No such version for this organisation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/instruments/{key}/versions/{v}")]
pub async fn get_version(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<VersionPath>,
) -> ApiResult<HttpResponse> {
    let mut conn = crate::db::conn(&state.pool).await?;
    let row = store::find_version(&mut conn, principal.org, &path.key, path.v)
        .await?
        .ok_or(ApiError::NotFound)?;
    let owner = owner_slug(&mut conn, &row).await?;
    Ok(HttpResponse::Ok().json(load(row, &owner)?.version))
}
