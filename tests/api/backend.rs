//! The database engine under the API tests: the shared Postgres server. Each test's
//! database is a copy of one migrated template per test process; databases left by crashed
//! runs (their process is gone) are swept on the first spawn. (The Citus test binary has a
//! backend of its own: a coordinator and two workers.)

use diesel_async::RunQueryDsl;
use rapport::config::Settings;
use tokio::sync::OnceCell;

use crate::helpers::{SERVER_URL, admin_conn};

static SWEPT: OnceCell<()> = OnceCell::const_new();
/// One migrated database per test process; each test's database is a copy of it.
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

pub fn server_url() -> String {
    SERVER_URL.to_string()
}

/// Tests on the shared server run side by side: no turn to wait for.
pub struct Turn;

impl Turn {
    pub fn take() -> Turn {
        Turn
    }
}

/// Nothing to change for plain Postgres.
pub fn adjust(_settings: &mut Settings) {}

pub async fn create_database(db_name: &str) {
    SWEPT.get_or_init(sweep_stale_databases).await;
    create_test_database(db_name).await;
}

pub fn drop_database_blocking(name: String) {
    crate::helpers::drop_database_blocking(name)
}

/// Drops `rapport_test_<pid>_*` databases whose process is no longer running.
async fn sweep_stale_databases() {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let mut conn = admin_conn().await;
    let names: Vec<Name> = diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'rapport\\_test\\_%'")
        .load(&mut conn)
        .await
        .unwrap_or_default();
    for Name { datname } in names {
        let pid = datname.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Migrates this process's template database once (a copy per test is far cheaper than
/// running every migration per test).
async fn template_database() -> String {
    let name = format!("rapport_test_{}_template", std::process::id());
    let url = format!("{SERVER_URL}/{name}");
    rapport::db::ensure_database(&url)
        .await
        .expect("create the template database");
    rapport::db::run_migrations(&url)
        .await
        .expect("migrate the template database");
    name
}

/// Creates `db_name` as a copy of the migrated template.
async fn create_test_database(db_name: &str) {
    let template = TEMPLATE.get_or_init(template_database).await;
    let mut conn = admin_conn().await;
    diesel::sql_query(format!("CREATE DATABASE \"{db_name}\" TEMPLATE \"{template}\""))
        .execute(&mut conn)
        .await
        .expect("create the test database from the template");
}
