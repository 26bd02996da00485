//! The database engine under the Citus tests: a coordinator (127.0.0.1:9710) and two workers
//! (9711, 9712), each its own initdb cluster with `shared_preload_libraries = 'citus'`, made
//! on first use under the temp directory and run as the postgres user (as the replica test
//! makes its standby). A running cluster from an earlier run is used again; `pg_ctl stop`
//! on `/tmp/rapport-citus-tests/n971*` stops it.
//!
//! Each test gets a database of its own on every node, with the extension, the workers
//! registered on the coordinator; rapport itself distributes the schema when the test's
//! server starts (`RAPPORT_CITUS=require`). On 2 cores the tests take turns: one database
//! and one server at a time, small pools.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::ThreadId;

use rapport::config::{CitusMode, Settings};

pub const PORTS: [u16; 3] = [9710, 9711, 9712];
pub const COORDINATOR: u16 = PORTS[0];

pub fn server_url() -> String {
    format!("postgres://postgres@127.0.0.1:{COORDINATOR}")
}

pub fn node_url(port: u16, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{db}")
}

/// The server binaries (the newest installed PostgreSQL).
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn cluster_dir() -> PathBuf {
    std::env::temp_dir().join("rapport-citus-tests")
}

/// Runs a server tool as the postgres user (directly when this is not root).
fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// psql against one node; stdout on success.
pub fn psql(port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &port.to_string(), "-d", db, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "psql on {port}: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn answers(port: u16) -> bool {
    psql(port, "postgres", "SELECT 1").is_ok()
}

/// Starts the three nodes (making them first when they do not exist).
fn start_cluster() -> Result<(), String> {
    let bin = bin_dir().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
    let pkglib = Command::new(bin.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .map_err(|e| format!("pg_config: {e}"))?;
    if !Path::new(&pkglib).join("citus.so").exists() {
        return Err(format!(
            "the citus extension is not installed in {pkglib} (../shared/citus/install.sh builds it)"
        ));
    }
    let dir = cluster_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _ = Command::new("chown").arg("postgres:postgres").arg(&dir).status();
    for port in PORTS {
        if answers(port) {
            allow_citus_output_plugin(port)?;
            continue;
        }
        let data = dir.join(format!("n{port}"));
        let data_s = data.to_string_lossy().to_string();
        if !data.join("PG_VERSION").exists() {
            let _ = std::fs::remove_dir_all(&data);
            as_postgres(
                &bin,
                "initdb",
                &[
                    "-D",
                    &data_s,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
            )?;
            let conf = format!(
                "shared_preload_libraries = 'citus'\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{}'\nmax_connections = 200\nmax_prepared_transactions = 200\n\
                 wal_level = logical\nfsync = off\nsynchronous_commit = off\ncitus.shard_count = 4\n",
                dir.display()
            );
            // The server's own files belong to postgres: append through it.
            let conf_path = data.join("postgresql.conf");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&conf_path)
                .map_err(|e| format!("{}: {e}", conf_path.display()))?;
            file.write_all(conf.as_bytes()).map_err(|e| e.to_string())?;
        }
        let log = dir.join(format!("n{port}.log"));
        let _ = Command::new("chown").arg("postgres:postgres").arg(&log).status();
        as_postgres(
            &bin,
            "pg_ctl",
            &["-D", &data_s, "-l", &log.to_string_lossy(), "-w", "start"],
        )?;
        allow_citus_output_plugin(port)?;
    }
    drop_stale_slots()
}

/// Moving shards decodes the WAL with Citus's own output plugin. A server hardened with an
/// `output_plugin_libraries` list (this machine's build has one; upstream PostgreSQL has no
/// such setting) must name citus in it.
fn allow_citus_output_plugin(port: u16) -> Result<(), String> {
    let current = psql(
        port,
        "postgres",
        "SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'",
    )?;
    let mut libraries: Vec<&str> = current
        .split(',')
        .map(|l| l.trim().trim_matches('"'))
        .filter(|l| !l.is_empty())
        .collect();
    if current.is_empty() || libraries.contains(&"citus") {
        return Ok(());
    }
    libraries.push("citus");
    // A list setting: one quoted item each.
    let items: Vec<String> = libraries.iter().map(|l| format!("'{l}'")).collect();
    psql(
        port,
        "postgres",
        &format!("ALTER SYSTEM SET output_plugin_libraries = {}", items.join(", ")),
    )?;
    psql(port, "postgres", "SELECT pg_reload_conf()").map(|_| ())
}

static CLUSTER: OnceLock<Result<(), String>> = OnceLock::new();

/// The cluster, or what stops it: SKIPPED (the whole binary passes) unless
/// `RAPPORT_REQUIRE_CITUS=1`, when it is a failure.
pub fn cluster() {
    let outcome = CLUSTER.get_or_init(start_cluster);
    if let Err(why) = outcome {
        if std::env::var("RAPPORT_REQUIRE_CITUS").is_ok_and(|v| v == "1") {
            panic!("RAPPORT_REQUIRE_CITUS=1 and no Citus cluster: {why}");
        }
        // Past the test harness's capture, so that it shows.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: the Citus tests need a cluster: {why}. \
             RAPPORT_REQUIRE_CITUS=1 makes this a failure.\n"
        );
        std::process::exit(0);
    }
}

/// One test at a time. A test that starts a second server holds the turn already: the
/// second server's turn is a no-op (tests `mem::forget` their second server, so only the
/// first one's turn may release it).
pub struct Turn {
    outer: bool,
}

static TURN: Mutex<Option<ThreadId>> = Mutex::new(None);
static TURN_FREE: Condvar = Condvar::new();

impl Turn {
    pub fn take() -> Turn {
        let me = std::thread::current().id();
        let mut owner = TURN.lock().unwrap_or_else(|e| e.into_inner());
        if *owner == Some(me) {
            return Turn { outer: false };
        }
        while owner.is_some() {
            owner = TURN_FREE.wait(owner).unwrap_or_else(|e| e.into_inner());
        }
        *owner = Some(me);
        Turn { outer: true }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.outer {
            *TURN.lock().unwrap_or_else(|e| e.into_inner()) = None;
            TURN_FREE.notify_all();
        }
    }
}

/// On the cluster, rapport must find Citus (and distribute), with small pools.
pub fn adjust(settings: &mut Settings) {
    settings.citus = CitusMode::Require;
    settings.pool_size = 3;
}

/// The test's database on every node, with the extension; the workers registered.
pub async fn create_database(db_name: &str) {
    cluster();
    for port in PORTS {
        psql(port, "postgres", &format!("CREATE DATABASE \"{db_name}\"")).unwrap();
        psql(port, db_name, "CREATE EXTENSION citus").unwrap();
    }
    psql(
        COORDINATOR,
        db_name,
        &format!("SELECT citus_set_coordinator_host('127.0.0.1', {COORDINATOR})"),
    )
    .unwrap();
    for port in &PORTS[1..] {
        psql(
            COORDINATOR,
            db_name,
            &format!("SELECT citus_add_node('127.0.0.1', {port})"),
        )
        .unwrap();
    }
}

pub fn drop_database_blocking(name: String) {
    for port in PORTS {
        // A shard move that fails leaves subscriptions (which keep their slots busy) and
        // replication slots behind; a database with a slot cannot be dropped.
        let subscriptions = psql(
            port,
            &name,
            "SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .unwrap_or_default();
        for sub in subscriptions.lines() {
            let _ = psql(port, &name, &format!("ALTER SUBSCRIPTION \"{sub}\" DISABLE"));
            let _ = psql(
                port,
                &name,
                &format!("ALTER SUBSCRIPTION \"{sub}\" SET (slot_name = NONE)"),
            );
            let _ = psql(port, &name, &format!("DROP SUBSCRIPTION \"{sub}\""));
        }
        let _ = psql(
            port,
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '{name}' AND active"
            ),
        );
        let _ = psql(
            port,
            "postgres",
            &format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'"),
        );
        let _ = psql(
            port,
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        );
    }
}

/// Databases of test processes that are gone, and the slots an earlier, interrupted run
/// left (their names come back in every new database: shard ids start again).
fn drop_stale_slots() -> Result<(), String> {
    for port in PORTS {
        let names = psql(
            port,
            "postgres",
            "SELECT datname FROM pg_database WHERE datname LIKE 'rapport\\_test\\_%'",
        )?;
        for name in names.lines() {
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            if !pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                drop_database_blocking(name.to_string());
            }
        }
    }
    for port in PORTS {
        psql(
            port,
            "postgres",
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active",
        )?;
        // And the roles a failed shard move made (roles, too, belong to the whole server).
        let roles = psql(
            port,
            "postgres",
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'citus\\_shard\\_%'",
        )?;
        for role in roles.lines() {
            let _ = psql(port, "postgres", &format!("DROP ROLE IF EXISTS \"{role}\""));
        }
    }
    Ok(())
}
