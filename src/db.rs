//! Postgres access: the connection pool, creating the database when it is missing, and the
//! embedded migrations. Every query on tenant data lives in a domain `store.rs` and filters
//! by organisation; this module knows no tables.

use std::error::Error as StdError;

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::Settings;
use crate::error::ApiError;

pub mod citus;
mod json_text;
mod prepared;
mod rotation;
pub use json_text::JsonText;
pub use prepared::Prepared;
pub use rotation::OrgRotation;

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;
pub type BoxError = Box<dyn StdError + Send + Sync>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises migrations and first-start bootstrap across instances starting together.
pub const STARTUP_LOCK_KEY: i64 = 0x7261_7070_6f72;

/// A pooled connection unused for longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The pool. A checkout does not ping a connection in use a moment ago (diesel-async's
/// default runs `SELECT 1` on every checkout: a round trip and a backend wakeup per request);
/// a closed connection is still never handed out (the manager checks), and one idle for
/// `PING_AFTER_IDLE` is pinged first, so one a firewall dropped silently is replaced.
pub fn create_pool(settings: &Settings) -> Result<DbPool, BoxError> {
    create_pool_pinging_after(settings, PING_AFTER_IDLE)
}

/// `create_pool` with its idle time before a ping given (tests).
pub fn create_pool_pinging_after(settings: &Settings, ping_after: std::time::Duration) -> Result<DbPool, BoxError> {
    use diesel_async::pooled_connection::{ManagerConfig, PoolError, RecyclingMethod};
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&settings.database_url, config);
    let timeout = settings.pool_timeout;
    let ping_idle = deadpool::managed::Hook::async_fn(move |conn: &mut AsyncPgConnection, metrics| {
        Box::pin(async move {
            if metrics.last_used() < ping_after {
                return Ok(());
            }
            let ping = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")).execute(conn);
            match tokio::time::timeout(timeout, ping).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(deadpool::managed::HookError::Backend(PoolError::QueryError(e))),
                Err(_) => Err(deadpool::managed::HookError::Message("ping timed out".into())),
            }
        })
    });
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .pre_recycle(ping_idle)
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// The replica's pool, and until when it counts as down after a failed checkout (so that
/// a replica that is gone costs one connection attempt every few seconds, not one per read).
pub struct ReadPool {
    pub pool: DbPool,
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long a replica that failed a checkout is left alone.
const REPLICA_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl ReadPool {
    pub fn new(pool: DbPool) -> Self {
        ReadPool {
            pool,
            down_until: std::sync::Mutex::new(None),
        }
    }

    fn is_resting(&self) -> bool {
        self.down_until
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|until| until > std::time::Instant::now())
    }

    fn rest(&self) {
        if let Ok(mut d) = self.down_until.lock() {
            *d = Some(std::time::Instant::now() + REPLICA_RETRY);
        }
    }
}

/// A connection for a read that may lag a little behind the writes (analytics, exports,
/// FHIR searches, lists): from the replica when one is configured and up, else from the
/// primary. Also says which served it (`replica`, `primary_fallback` or `primary`), for the
/// caller's metrics.
pub async fn read_conn(primary: &DbPool, replica: Option<&ReadPool>) -> Result<(DbConn, &'static str), ApiError> {
    if let Some(read) = replica
        && !read.is_resting()
    {
        match read.pool.get().await {
            Ok(conn) => return Ok((conn, "replica")),
            Err(e) => {
                log::warn!(target: "rapport::db", "replica unavailable, reading from the primary: {e}");
                read.rest();
            }
        }
    }
    let served = if replica.is_some() {
        "primary_fallback"
    } else {
        "primary"
    };
    Ok((conn(primary).await?, served))
}

/// A pooled connection, or 503 when none is free within the pool timeout.
pub async fn conn(pool: &DbPool) -> Result<DbConn, ApiError> {
    Ok(pool.get().await?)
}

/// The database name and a URL for the `postgres` maintenance database on the same server.
pub fn split_database_url(database_url: &str) -> Result<(String, String), BoxError> {
    let mut url = url::Url::parse(database_url)?;
    let name = url.path().trim_start_matches('/').to_string();
    if name.is_empty() {
        return Err("DATABASE_URL names no database".into());
    }
    url.set_path("/postgres");
    Ok((name, url.to_string()))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database named in `database_url` when it does not exist yet.
pub async fn ensure_database(database_url: &str) -> Result<(), BoxError> {
    let (name, admin_url) = split_database_url(database_url)?;
    let mut admin = AsyncPgConnection::establish(&admin_url).await?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<diesel::sql_types::Text, _>(&name)
        .get_result(&mut admin)
        .await?;
    if !found.exists {
        if citus::server_preloads_citus(&mut admin).await? {
            return Err(format!(
                "database {name} does not exist and the server preloads Citus: create it on the coordinator and \
                 every worker, with CREATE EXTENSION citus in each, and register the workers; rapport does not \
                 create a distributed database"
            )
            .into());
        }
        match diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut admin)
            .await
        {
            Ok(_) => log::info!("created database {name}"),
            // Another instance created it between our check and our CREATE.
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Applies the embedded migrations, holding an advisory lock so concurrent starts queue.
pub async fn run_migrations(database_url: &str) -> Result<(), BoxError> {
    let url = database_url.to_string();
    tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)?;
        lock_startup(&mut conn)?;
        let applied = conn.run_pending_migrations(MIGRATIONS).map(|v| v.len());
        unlock_startup(&mut conn)?;
        let applied = applied?;
        if applied > 0 {
            log::info!("applied {applied} migration(s)");
        }
        Ok(())
    })
    .await?
}

/// Reverts every migration, then applies them all again (the down-migration test).
pub async fn redo_all_migrations(database_url: &str) -> Result<(), BoxError> {
    let url = database_url.to_string();
    tokio::task::spawn_blocking(move || -> Result<(), BoxError> {
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)?;
        conn.revert_all_migrations(MIGRATIONS)?;
        conn.run_pending_migrations(MIGRATIONS)?;
        Ok(())
    })
    .await?
}

fn lock_startup(conn: &mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<(), BoxError> {
    let q = diesel::sql_query(format!("SELECT pg_advisory_lock({STARTUP_LOCK_KEY})"));
    diesel::RunQueryDsl::execute(q, conn)?;
    Ok(())
}

fn unlock_startup(conn: &mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<(), BoxError> {
    let q = diesel::sql_query(format!("SELECT pg_advisory_unlock({STARTUP_LOCK_KEY})"));
    diesel::RunQueryDsl::execute(q, conn)?;
    Ok(())
}

/// The versions of the embedded migrations, for the readiness check.
pub fn embedded_migration_versions() -> Vec<String> {
    use diesel::migration::MigrationSource;
    <EmbeddedMigrations as MigrationSource<diesel::pg::Pg>>::migrations(&MIGRATIONS)
        .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default()
}

/// True when the database answers and every embedded migration is applied.
pub async fn is_ready(pool: &DbPool, versions: &[String]) -> Result<bool, ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = conn(pool).await?;
    let count: Count =
        diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations WHERE version = ANY($1)")
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(versions)
            .get_result(&mut conn)
            .await?;
    Ok(count.n == versions.len() as i64)
}

/// Maps a fieldless enum to a Postgres `text` column by fixed names, both ways: the type
/// derives `diesel::AsExpression` and `diesel::FromSqlRow` with `sql_type = Text`; this adds
/// `as_str`, `parse` and the `ToSql`/`FromSql` impls. An unknown stored name is a
/// deserialisation error, never a silent default.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(bytes)?;
                $name::parse(&text).ok_or_else(|| format!("unknown {} `{text}`", stringify!($name)).into())
            }
        }
    };
}
pub(crate) use text_enum;

/// A rater as stored: read through this, an unknown stored value is an error (a column
/// check makes it impossible), never a silent default.
#[derive(Debug, Clone, Copy)]
pub struct StoredRater(pub crate::scoring::Rater);

impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for StoredRater {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(bytes)?;
        crate::scoring::Rater::parse(&text)
            .map(StoredRater)
            .ok_or_else(|| format!("unknown stored rater `{text}`").into())
    }
}

impl diesel::deserialize::Queryable<diesel::sql_types::Text, diesel::pg::Pg> for StoredRater {
    type Row = StoredRater;
    fn build(row: StoredRater) -> diesel::deserialize::Result<Self> {
        Ok(row)
    }
}

impl From<StoredRater> for crate::scoring::Rater {
    fn from(r: StoredRater) -> Self {
        r.0
    }
}
