//! Identity providers and the global issuer directory. Every query names its organisation,
//! except the directory lookup a token's issuer needs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::OrgId;
use crate::schema::{identity_providers, issuer_directory};

/// A trusted identity provider, as stored and as the API shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = identity_providers)]
pub struct ProviderRow {
    #[serde(skip)]
    pub org_id: OrgId,
    pub id: Uuid,
    pub issuer: String,
    pub jwks_uri: String,
    pub audience: String,
    pub scope_claim: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub items: Vec<ProviderRow>,
}

/// Registers a provider; `None` when another organisation (or this one) has the issuer.
pub async fn create(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    issuer: &str,
    jwks_uri: &str,
    audience: &str,
    scope_claim: &str,
) -> QueryResult<Option<ProviderRow>> {
    let id = Uuid::new_v4();
    let claimed = diesel::insert_into(issuer_directory::table)
        .values((
            issuer_directory::issuer.eq(issuer),
            issuer_directory::org_id.eq(org),
            issuer_directory::provider_id.eq(id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if claimed == 0 {
        return Ok(None);
    }
    diesel::insert_into(identity_providers::table)
        .values((
            identity_providers::org_id.eq(org),
            identity_providers::id.eq(id),
            identity_providers::issuer.eq(issuer),
            identity_providers::jwks_uri.eq(jwks_uri),
            identity_providers::audience.eq(audience),
            identity_providers::scope_claim.eq(scope_claim),
        ))
        .returning(ProviderRow::as_returning())
        .get_result(conn)
        .await
        .map(Some)
}

pub async fn list(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<ProviderRow>> {
    identity_providers::table
        .filter(identity_providers::org_id.eq(org))
        .select(ProviderRow::as_select())
        .order((identity_providers::created_at.asc(), identity_providers::id.asc()))
        .load(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<Option<ProviderRow>> {
    identity_providers::table
        .filter(identity_providers::org_id.eq(org).and(identity_providers::id.eq(id)))
        .select(ProviderRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes a provider and frees its issuer; the deleted row, or `None`.
pub async fn delete(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<Option<ProviderRow>> {
    let Some(row) = diesel::delete(identity_providers::table)
        .filter(identity_providers::org_id.eq(org).and(identity_providers::id.eq(id)))
        .returning(ProviderRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    diesel::delete(issuer_directory::table)
        .filter(issuer_directory::issuer.eq(&row.issuer))
        .filter(issuer_directory::org_id.eq(org))
        .execute(conn)
        .await?;
    Ok(Some(row))
}

/// The provider whose issuer this is, in whichever organisation registered it.
pub async fn find_by_issuer(conn: &mut AsyncPgConnection, issuer: &str) -> QueryResult<Option<ProviderRow>> {
    let owner: Option<(Uuid, Uuid)> = issuer_directory::table
        .filter(issuer_directory::issuer.eq(issuer))
        .select((issuer_directory::org_id, issuer_directory::provider_id))
        .first(conn)
        .await
        .optional()?;
    let Some((org, id)) = owner else { return Ok(None) };
    find(conn, OrgId(org), id).await
}
