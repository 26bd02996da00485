//! Postgres stopped in the middle of a load: 503 with Retry-After (never a hang), recovery
//! on its own when the database returns, nothing acknowledged lost, nothing half-written.
//! The test owns a throwaway cluster (initdb/pg_ctl as the postgres user under a temp dir),
//! so it never touches the shared server.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value;

use crate::helpers::{TestApp, count_rows};
use crate::responses::wai_sr;

/// (status, has Retry-After, response id, latency) of one request.
type Outcome = (u16, bool, Option<String>, Duration);

struct Cluster {
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
    fn create() -> Cluster {
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { dir, bin, port };
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

    fn stop(&self) {
        let data = self.dir.join("data");
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    fn url(&self, db: &str) -> String {
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
