//! rapport on Citus: the one place that knows which tables are global and how the tenant
//! tables are distributed. After the migrations, on a Citus coordinator with an active
//! worker, `prepare` makes the global tables reference tables and hash-distributes every other
//! table by `org_id`, all co-located with `api_clients`. Idempotent: a table that is already
//! what it should be is left alone, so a restart, a second instance or a later migration
//! only distributes what is new. On a plain Postgres nothing of this runs.

use std::time::Duration;

use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{BoxError, STARTUP_LOCK_KEY, quote_ident};
use crate::config::CitusMode;

/// Global tables: small, read everywhere, replicated to every node. Every other table in
/// the schema is a tenant table and is distributed by `org_id` (the schema test holds each
/// tenant table to `org_id` in its keys; the Citus tests fail on a table that is neither).
pub const REFERENCE_TABLES: [&str; 7] = [
    "organizations",
    "service_secrets",
    "builtin_instrument_versions",
    "client_directory",
    "issuer_directory",
    "cds_issuer_directory",
    "ehr_issuer_directory",
];

/// The tenant table every other tenant table is co-located with.
pub const COLOCATION_ANCHOR: &str = "api_clients";

/// How long `RAPPORT_CITUS=require` waits for the extension and a worker.
const REQUIRE_WAIT: Duration = Duration::from_secs(60);

/// The engine rapport runs on, decided at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Citus,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Citus => "citus",
        }
    }
}

/// What a table is to Citus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A plain Postgres table (or a Citus local table on the coordinator).
    Local,
    Reference,
    Distributed,
}

#[derive(diesel::QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct TablePlacement {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    placement: String,
}

#[derive(diesel::QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// The active primary worker nodes that hold shards (the coordinator not counted), or `None`
/// when the database has no citus extension.
pub async fn workers(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Option<i64>> {
    let has: Flag = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS flag")
        .get_result(conn)
        .await?;
    if !has.flag {
        return Ok(None);
    }
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_dist_node
         WHERE isactive AND noderole = 'primary' AND shouldhaveshards AND groupid <> 0",
    )
    .get_result(conn)
    .await?;
    Ok(Some(count.n))
}

/// True when the server preloads Citus (then rapport never creates its database: the
/// operator creates it, with the extension, on every node).
pub async fn server_preloads_citus(conn: &mut AsyncPgConnection) -> diesel::QueryResult<bool> {
    let preloads: Flag =
        diesel::sql_query("SELECT current_setting('shared_preload_libraries') ~ '(^|[ ,])citus($|[ ,])' AS flag")
            .get_result(conn)
            .await?;
    Ok(preloads.flag)
}

/// Decides the engine and, on Citus, distributes the schema. Run after the migrations.
pub async fn prepare(database_url: &str, mode: CitusMode) -> Result<Engine, BoxError> {
    if mode == CitusMode::Off {
        return Ok(Engine::Postgres);
    }
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let deadline = tokio::time::Instant::now() + REQUIRE_WAIT;
    loop {
        match (workers(&mut conn).await?, mode) {
            (Some(n), _) if n > 0 => break,
            (_, CitusMode::Require) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            (found, CitusMode::Require) => {
                return Err(format!(
                    "RAPPORT_CITUS=require: {} after {} s",
                    if found.is_some() {
                        "the citus extension has no active worker"
                    } else {
                        "the database has no citus extension"
                    },
                    REQUIRE_WAIT.as_secs()
                )
                .into());
            }
            _ => return Ok(Engine::Postgres),
        }
    }
    diesel::sql_query(format!("SELECT pg_advisory_lock({STARTUP_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    let distributed = distribute(&mut conn).await;
    diesel::sql_query(format!("SELECT pg_advisory_unlock({STARTUP_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    distributed?;
    Ok(Engine::Citus)
}

/// Every table of the schema (diesel's own bookkeeping aside) and what it is to Citus.
pub async fn placements(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<(String, Placement)>> {
    let rows: Vec<TablePlacement> = diesel::sql_query(
        "SELECT c.relname::text AS table_name,
                CASE WHEN p.partmethod = 'h' THEN 'distributed'
                     WHEN p.partmethod = 'n' AND p.repmodel = 't' THEN 'reference'
                     ELSE 'local' END AS placement
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE '\\_\\_diesel%'
         ORDER BY 1",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let placement = match r.placement.as_str() {
                "distributed" => Placement::Distributed,
                "reference" => Placement::Reference,
                _ => Placement::Local,
            };
            (r.table_name, placement)
        })
        .collect())
}

/// The distribution itself: reference tables first; then the tenant tables not yet
/// distributed, the anchor first. Citus distributes neither side of a foreign key between
/// two tenant tables while the other side is still local, so such keys are dropped,
/// the tables distributed and the keys made again (now between co-located shards), in one
/// transaction.
async fn distribute(conn: &mut AsyncPgConnection) -> Result<(), BoxError> {
    let tables = placements(conn).await?;
    for (table, placement) in &tables {
        if REFERENCE_TABLES.contains(&table.as_str()) && *placement != Placement::Reference {
            log::info!("citus: making {table} a reference table");
            diesel::sql_query("SELECT create_reference_table($1::regclass)::text")
                .bind::<Text, _>(table)
                .execute(conn)
                .await?;
        }
    }
    let mut pending: Vec<String> = tables
        .iter()
        .filter(|(t, p)| !REFERENCE_TABLES.contains(&t.as_str()) && *p != Placement::Distributed)
        .map(|(t, _)| t.clone())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    // The anchor first: every other table is co-located with it.
    pending.sort_by_key(|t| t != COLOCATION_ANCHOR);
    let tenant: Vec<String> = tables
        .iter()
        .filter(|(t, _)| !REFERENCE_TABLES.contains(&t.as_str()))
        .map(|(t, _)| t.clone())
        .collect();
    conn.transaction::<_, BoxError, _>(async |conn| {
        // Distributing a table copies its rows; in one transaction, Citus must do that over
        // one connection per node.
        diesel::sql_query("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
            .execute(conn)
            .await?;
        let keys: Vec<ForeignKey> = diesel::sql_query(
            "SELECT c.conrelid::regclass::text AS table_name, c.conname::text AS name,
                    pg_get_constraintdef(c.oid) AS definition
             FROM pg_constraint c
             WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
               AND c.conrelid::regclass::text = ANY($1) AND c.confrelid::regclass::text = ANY($1)
               AND (c.conrelid::regclass::text = ANY($2) OR c.confrelid::regclass::text = ANY($2))",
        )
        .bind::<diesel::sql_types::Array<Text>, _>(&tenant)
        .bind::<diesel::sql_types::Array<Text>, _>(&pending)
        .load(conn)
        .await?;
        for key in &keys {
            diesel::sql_query(format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                quote_ident(&key.table_name),
                quote_ident(&key.name)
            ))
            .execute(conn)
            .await?;
        }
        for table in &pending {
            log::info!("citus: distributing {table} by org_id");
            // The anchor starts a co-location group of its own.
            let colocate_with = if table == COLOCATION_ANCHOR {
                "none"
            } else {
                COLOCATION_ANCHOR
            };
            diesel::sql_query("SELECT create_distributed_table($1::regclass, 'org_id', colocate_with => $2)::text")
                .bind::<Text, _>(table)
                .bind::<Text, _>(colocate_with)
                .execute(conn)
                .await?;
        }
        for key in &keys {
            diesel::sql_query(format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                quote_ident(&key.table_name),
                quote_ident(&key.name),
                key.definition
            ))
            .execute(conn)
            .await?;
        }
        Ok(())
    })
    .await
}
