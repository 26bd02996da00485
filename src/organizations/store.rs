use crate::ids::OrgId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{CreatedOrganization, IssuedCredentials, Organization};
use crate::auth::Scope;
use crate::clients::store::{PreparedCredentials, create_client};
use crate::schema::organizations;

#[derive(Queryable, Selectable)]
#[diesel(table_name = organizations)]
pub struct OrganizationRow {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<OrganizationRow> for Organization {
    fn from(r: OrganizationRow) -> Self {
        Organization {
            id: r.id.0,
            slug: r.slug,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

pub fn is_valid_slug(slug: &str) -> bool {
    (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Inserts an organisation and its administrator client; run inside a transaction.
/// `admin_scopes` is every scope but `platform:admin`, except for the bootstrap organisation.
pub async fn create_organization(
    conn: &mut AsyncPgConnection,
    slug: &str,
    name: &str,
    admin_scopes: &[Scope],
    credentials: PreparedCredentials,
) -> QueryResult<CreatedOrganization> {
    let row: OrganizationRow = diesel::insert_into(organizations::table)
        .values((
            organizations::id.eq(Uuid::new_v4()),
            organizations::slug.eq(slug),
            organizations::name.eq(name),
        ))
        .returning(OrganizationRow::as_returning())
        .get_result(conn)
        .await?;
    let client = create_client(conn, row.id, "administrator", admin_scopes, credentials).await?;
    Ok(CreatedOrganization {
        id: row.id.0,
        slug: row.slug,
        name: row.name,
        created_at: row.created_at,
        admin_client: IssuedCredentials {
            client_id: client.client_id,
            client_secret: client.client_secret.unwrap_or_default(),
            scopes: client.scopes,
        },
    })
}

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<OrganizationRow>> {
    organizations::table
        .select(OrganizationRow::as_select())
        .order(organizations::slug.asc())
        .load(conn)
        .await
}

pub async fn find_by_slug(conn: &mut AsyncPgConnection, slug: &str) -> QueryResult<Option<OrganizationRow>> {
    organizations::table
        .filter(organizations::slug.eq(slug))
        .select(OrganizationRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn slug_of(conn: &mut AsyncPgConnection, id: OrgId) -> QueryResult<Option<String>> {
    organizations::table
        .filter(organizations::id.eq(id))
        .select(organizations::slug)
        .first(conn)
        .await
        .optional()
}

pub async fn count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    organizations::table.count().get_result(conn).await
}
