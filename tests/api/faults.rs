//! Postgres stopped in the middle of a load: 503 with Retry-After (never a hang), recovery
//! on its own when the database returns, nothing acknowledged lost, nothing half-written.
//! The test owns a throwaway cluster (initdb/pg_ctl as the postgres user under a temp dir),
//! so it never touches the shared server.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value;

use crate::builders::wai_sr;
use crate::helpers::{TestApp, count_rows, free_port};

/// (status, has Retry-After, response id, latency) of one request.
type Outcome = (u16, bool, Option<String>, Duration);

pub(crate) struct Cluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Cluster {
    /// A directory the postgres user owns, and the server binaries.
    fn room() -> (std::path::PathBuf, std::path::PathBuf) {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = std::env::temp_dir().join(format!("rapport-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
        (dir, bin)
    }

    /// A streaming standby of `primary` (`pg_basebackup -R -X stream`), started.
    pub(crate) fn standby_of(primary: &Cluster) -> Cluster {
        let (dir, bin) = Self::room();
        let data = dir.join("data");
        let port = primary.port.to_string();
        assert!(
            as_postgres(
                &bin,
                "pg_basebackup",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-R",
                    "-X",
                    "stream",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres"
                ]
            ),
            "pg_basebackup"
        );
        let standby = Cluster {
            dir,
            bin,
            port: free_port(),
        };
        standby.start();
        standby
    }

    pub(crate) fn create() -> Cluster {
        let (dir, bin) = Self::room();
        let data = dir.join("data");
        assert!(as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync"
            ]
        ));
        let cluster = Cluster {
            dir,
            bin,
            port: free_port(),
        };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        assert!(as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start"
            ]
        ));
    }

    pub(crate) fn stop(&self) {
        let data = self.dir.join("data");
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn postgres_stopped_mid_load_answers_503_and_recovers() {
    let cluster = Cluster::create();
    let url = cluster.url("rapport_fault");
    let app = TestApp::spawn_with(|s| {
        s.database_url = url.clone();
        s.pool_timeout = Duration::from_millis(1000);
    })
    .await;
    let token = app.token(&["responses:write"]).await;
    let app = Arc::new(app);
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(9);
    let mut workers = Vec::new();
    for w in 0..4 {
        let (app, token, outcomes) = (app.clone(), token.clone(), outcomes.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < stop_at {
                n += 1;
                let started = Instant::now();
                let res = app
                    .http
                    .post(app.url("/v1/responses"))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(15))
                    .json(&wai_sr("p", Some(&format!("fault-{w}-{n}"))))
                    .send()
                    .await
                    .expect("an answer, never a hang or a dropped connection");
                let status = res.status().as_u16();
                let retry_after = res.headers().contains_key("retry-after");
                let id = res
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|b| b["id"].as_str().map(str::to_string));
                outcomes
                    .lock()
                    .unwrap()
                    .push((status, retry_after, id, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start();
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let created: Vec<String> = outcomes
        .iter()
        .filter(|o| o.0 == 201)
        .filter_map(|o| o.2.clone())
        .collect();
    let unavailable = outcomes.iter().filter(|o| o.0 == 503).count();
    assert!(
        unavailable > 0,
        "the outage was seen: {:?}",
        outcomes.iter().map(|o| o.0).collect::<Vec<_>>()
    );
    assert!(
        outcomes.iter().filter(|o| o.0 == 503).all(|o| o.1),
        "every 503 carries Retry-After"
    );
    assert!(outcomes.iter().all(|o| o.0 == 201 || o.0 == 503), "only 201 or 503");
    assert!(
        outcomes.iter().all(|o| o.3 < Duration::from_secs(10)),
        "no request hung"
    );
    let last = outcomes.iter().rev().take(4).collect::<Vec<_>>();
    assert!(last.iter().all(|o| o.0 == 201), "recovered on its own: {last:?}");

    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let rows = count_rows(&mut conn, "responses").await;
    assert_eq!(
        rows as usize,
        created.len(),
        "every 201 is stored and no failed request left a row"
    );
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let audited: Count = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT count(*) AS n FROM audit_events WHERE action = 'response.created'"),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(audited.n, rows, "each stored response has its audit event");
    drop(conn);
}

/// SIGKILL under load: every response that was answered 201 is stored, with its audit event
/// and its outbox event (the client's list of acknowledged ids against the tables).
#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_response() {
    use diesel_async::RunQueryDsl;
    let db = crate::helpers::unique_db_name();
    let url = format!("{}/{db}", crate::helpers::SERVER_URL);
    let mut app = crate::helpers::start_binary(
        &url,
        &[
            ("RAPPORT_BOOTSTRAP_CLIENT_ID", crate::helpers::ADMIN_ID),
            ("RAPPORT_BOOTSTRAP_CLIENT_SECRET", crate::helpers::ADMIN_SECRET),
            ("RUST_LOG", "error"),
        ],
        std::process::Stdio::null(),
    );
    let http = reqwest::Client::new();
    let token = crate::helpers::binary_admin_token(&http, &app.address).await;
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (http, token, address, acknowledged) =
                (http.clone(), token.clone(), app.address.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let sent = http
                        .post(format!("{address}/v1/responses"))
                        .bearer_auth(&token)
                        .json(&wai_sr(&format!("p-{w}-{i}"), Some(&format!("kill-{w}-{i}"))))
                        .send()
                        .await;
                    let Ok(res) = sent else { break };
                    if res.status() == 201
                        && let Ok(body) = res.json::<Value>().await
                        && let Some(id) = body["id"].as_str()
                    {
                        acknowledged.lock().unwrap().push(id.to_string());
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.child.kill().unwrap();
    app.child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    let ids: Vec<uuid::Uuid> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(ids.len() > 50, "the load ran: {} acknowledged", ids.len());
    #[derive(diesel::QueryableByName)]
    struct Missing {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        responses: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        audit: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        outbox: i64,
    }
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let missing: Missing = diesel::sql_query(
        "SELECT
            count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM responses r WHERE r.id = a.id)) AS responses,
            count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM audit_events e
                WHERE e.action = 'response.created' AND e.resource_id = a.id::text)) AS audit,
            count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM outbox_events o
                WHERE o.kind = 'response.created' AND o.response_id = a.id)) AS outbox
         FROM unnest($1::uuid[]) AS a(id)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&ids)
    .get_result(&mut conn)
    .await
    .unwrap();
    drop(conn);
    crate::helpers::drop_database_blocking(db);
    assert_eq!(
        (missing.responses, missing.audit, missing.outbox),
        (0, 0, 0),
        "of {} acknowledged responses",
        ids.len()
    );
}
