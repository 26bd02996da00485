//! Instrument versions: built-ins (global) and the organisation's own (filtered by org_id
//! in every query). A key is either built-in or an organisation's, never both.

use crate::ids::OrgId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::{builtin_instrument_versions as builtin, instrument_versions as own};

/// A stored version; `org_id` is `None` for a built-in.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub org_id: Option<OrgId>,
    pub key: String,
    pub version: i32,
    pub status: String,
    pub definition: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

type BuiltinColumns = (
    builtin::key,
    builtin::version,
    builtin::status,
    builtin::definition,
    builtin::created_at,
);
const BUILTIN_COLUMNS: BuiltinColumns = (
    builtin::key,
    builtin::version,
    builtin::status,
    builtin::definition,
    builtin::created_at,
);
type OwnColumns = (
    own::org_id,
    own::key,
    own::version,
    own::status,
    own::definition,
    own::created_at,
);
const OWN_COLUMNS: OwnColumns = (
    own::org_id,
    own::key,
    own::version,
    own::status,
    own::definition,
    own::created_at,
);

type BuiltinTuple = (String, i32, String, serde_json::Value, DateTime<Utc>);
type OwnTuple = (OrgId, String, i32, String, serde_json::Value, DateTime<Utc>);

fn from_builtin((key, version, status, definition, created_at): BuiltinTuple) -> VersionRow {
    VersionRow {
        org_id: None,
        key,
        version,
        status,
        definition,
        created_at,
    }
}

fn from_own((org, key, version, status, definition, created_at): OwnTuple) -> VersionRow {
    VersionRow {
        org_id: Some(org),
        key,
        version,
        status,
        definition,
        created_at,
    }
}

pub async fn upsert_builtin(
    conn: &mut AsyncPgConnection,
    key: &str,
    version: i32,
    definition: serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(builtin::table)
        .values((
            builtin::key.eq(key),
            builtin::version.eq(version),
            builtin::status.eq("published"),
            builtin::definition.eq(&definition),
        ))
        .on_conflict((builtin::key, builtin::version))
        .do_update()
        .set((
            builtin::definition.eq(&definition),
            builtin::updated_at.eq(chrono::Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn is_builtin_key(conn: &mut AsyncPgConnection, key: &str) -> QueryResult<bool> {
    let n: i64 = builtin::table
        .filter(builtin::key.eq(key))
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}

/// Built-ins and the organisation's versions, by key then version; optionally one status.
pub async fn list(conn: &mut AsyncPgConnection, org: OrgId, status: Option<&str>) -> QueryResult<Vec<VersionRow>> {
    let mut b = builtin::table
        .select(BUILTIN_COLUMNS)
        .order((builtin::key, builtin::version))
        .into_boxed();
    let mut o = own::table
        .filter(own::org_id.eq(org))
        .select(OWN_COLUMNS)
        .order((own::key, own::version))
        .into_boxed();
    if let Some(s) = status {
        b = b.filter(builtin::status.eq(s.to_string()));
        o = o.filter(own::status.eq(s.to_string()));
    }
    let mut rows: Vec<VersionRow> = b
        .load::<BuiltinTuple>(conn)
        .await?
        .into_iter()
        .map(from_builtin)
        .collect();
    rows.extend(o.load::<OwnTuple>(conn).await?.into_iter().map(from_own));
    Ok(rows)
}

/// Every version of one key visible to the organisation, oldest first.
pub async fn versions_of(conn: &mut AsyncPgConnection, org: OrgId, key: &str) -> QueryResult<Vec<VersionRow>> {
    let rows: Vec<VersionRow> = builtin::table
        .filter(builtin::key.eq(key))
        .select(BUILTIN_COLUMNS)
        .order(builtin::version)
        .load::<BuiltinTuple>(conn)
        .await?
        .into_iter()
        .map(from_builtin)
        .collect();
    if !rows.is_empty() {
        return Ok(rows);
    }
    Ok(own::table
        .filter(own::org_id.eq(org).and(own::key.eq(key)))
        .select(OWN_COLUMNS)
        .order(own::version)
        .load::<OwnTuple>(conn)
        .await?
        .into_iter()
        .map(from_own)
        .collect())
}

pub async fn find_version(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    version: i32,
) -> QueryResult<Option<VersionRow>> {
    let found = builtin::table
        .filter(builtin::key.eq(key).and(builtin::version.eq(version)))
        .select(BUILTIN_COLUMNS)
        .first::<BuiltinTuple>(conn)
        .await
        .optional()?;
    if let Some(row) = found {
        return Ok(Some(from_builtin(row)));
    }
    Ok(own::table
        .filter(own::org_id.eq(org).and(own::key.eq(key)).and(own::version.eq(version)))
        .select(OWN_COLUMNS)
        .first::<OwnTuple>(conn)
        .await
        .optional()?
        .map(from_own))
}

pub async fn latest_published(conn: &mut AsyncPgConnection, org: OrgId, key: &str) -> QueryResult<Option<VersionRow>> {
    let found = builtin::table
        .filter(builtin::key.eq(key).and(builtin::status.eq("published")))
        .select(BUILTIN_COLUMNS)
        .order(builtin::version.desc())
        .first::<BuiltinTuple>(conn)
        .await
        .optional()?;
    if let Some(row) = found {
        return Ok(Some(from_builtin(row)));
    }
    Ok(own::table
        .filter(
            own::org_id
                .eq(org)
                .and(own::key.eq(key))
                .and(own::status.eq("published")),
        )
        .select(OWN_COLUMNS)
        .order(own::version.desc())
        .first::<OwnTuple>(conn)
        .await
        .optional()?
        .map(from_own))
}

/// A new draft: version 1 for a new key, else one past the highest; `Err(version)` when
/// the key already has an open draft (one draft at a time). Run inside a transaction.
pub async fn insert_draft(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    definition: &serde_json::Value,
) -> QueryResult<Result<VersionRow, i32>> {
    // One writer per (organisation, key) at a time, until the caller's transaction ends:
    // concurrent creates of one key queue here instead of racing for a version number.
    crate::db::Prepared::new("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))")
        .bind::<diesel::sql_types::Text, _>(org.to_string())
        .bind::<diesel::sql_types::Text, _>(key)
        .execute(conn)
        .await?;
    let versions: Vec<(i32, String)> = own::table
        .filter(own::org_id.eq(org).and(own::key.eq(key)))
        .select((own::version, own::status))
        .load(conn)
        .await?;
    if let Some((open, _)) = versions.iter().find(|(_, status)| status == "draft") {
        return Ok(Err(*open));
    }
    let next = versions.iter().map(|(v, _)| *v).max().unwrap_or(0) + 1;
    let row = diesel::insert_into(own::table)
        .values((
            own::org_id.eq(org),
            own::key.eq(key),
            own::version.eq(next),
            own::status.eq("draft"),
            own::definition.eq(definition),
        ))
        .returning(OWN_COLUMNS)
        .get_result::<OwnTuple>(conn)
        .await?;
    Ok(Ok(from_own(row)))
}

/// Replaces a draft's definition; `None` when there is no such draft.
pub async fn update_draft(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    version: i32,
    definition: &serde_json::Value,
) -> QueryResult<Option<VersionRow>> {
    Ok(diesel::update(own::table)
        .filter(own::org_id.eq(org).and(own::key.eq(key)).and(own::version.eq(version)))
        .filter(own::status.eq("draft"))
        .set((own::definition.eq(definition), own::updated_at.eq(diesel::dsl::now)))
        .returning(OWN_COLUMNS)
        .get_result::<OwnTuple>(conn)
        .await
        .optional()?
        .map(from_own))
}

/// Moves a version from `from` to `to`; `None` when it is not in state `from`.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    version: i32,
    from: &str,
    to: &str,
) -> QueryResult<Option<VersionRow>> {
    let target = own::table
        .filter(own::org_id.eq(org).and(own::key.eq(key)).and(own::version.eq(version)))
        .filter(own::status.eq(from.to_string()));
    let now = diesel::dsl::now;
    let row = if to == "published" {
        diesel::update(target)
            .set((
                own::status.eq(to),
                own::updated_at.eq(now),
                own::published_at.eq(Some(chrono::Utc::now())),
            ))
            .returning(OWN_COLUMNS)
            .get_result::<OwnTuple>(conn)
            .await
    } else {
        diesel::update(target)
            .set((
                own::status.eq(to),
                own::updated_at.eq(now),
                own::retired_at.eq(Some(chrono::Utc::now())),
            ))
            .returning(OWN_COLUMNS)
            .get_result::<OwnTuple>(conn)
            .await
    };
    Ok(row.optional()?.map(from_own))
}
