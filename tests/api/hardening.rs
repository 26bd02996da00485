//! Robustness under bad input, limits, concurrency, pool exhaustion, shutdown, and logs.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::builders::wai_sr;
use crate::helpers::{
    ADMIN_ID, ADMIN_SECRET, SERVER_URL, TestApp, assert_problem, drop_database_blocking, start_binary, unique_db_name,
};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn bodies_over_each_limit_are_413_however_they_arrive() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "instruments:write"]).await;
    let rss_before = rss_kib();
    for _ in 0..3 {
        // 64 KiB routes, with Content-Length.
        let mut big = wai_sr("p", None);
        big["patient"] = json!("x".repeat(70 * 1024));
        assert_problem(app.post_json(&token, "/v1/responses", big.clone()).await, 413).await;
        // Chunked (no Content-Length).
        let body = big.to_string().into_bytes();
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(4096).map(|c| Ok(c.to_vec())).collect();
        let res = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_problem(res, 413).await;
        // A small gzip body that inflates past the limit.
        let mut padded = wai_sr("p", None).to_string();
        padded.insert_str(1, &" ".repeat(2 * 1024 * 1024));
        let compressed = gzip(padded.as_bytes());
        assert!(compressed.len() < 64 * 1024);
        let res = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(compressed)
            .send()
            .await
            .unwrap();
        assert_problem(res, 413).await;
        // 1 MiB routes.
        let batch = json!({"responses": (0..1000).map(|i| { let mut r = wai_sr(&format!("p{i}"), None); r["episode"] = json!("e".repeat(1100)); r }).collect::<Vec<_>>()});
        assert_problem(app.post_json(&token, "/v1/responses/batch", batch).await, 413).await;
        let mut definition = crate::instruments::custom_instrument("huge");
        definition["citation"] = json!("c".repeat(1100 * 1024));
        assert_problem(app.post_json(&token, "/v1/instruments", definition).await, 413).await;
    }
    // Answers with 100,000 keys: over the body limit.
    let many: serde_json::Map<String, Value> = (0..100_000).map(|i| (i.to_string(), json!(1))).collect();
    let mut body = wai_sr("p", None);
    body["answers"] = Value::Object(many);
    let res = app.post_json(&token, "/v1/responses", body).await;
    assert!(res.status() == 413 || res.status() == 422);
    let growth = rss_kib().saturating_sub(rss_before);
    assert!(
        growth < 100 * 1024,
        "RSS grew by {growth} KiB across oversized requests"
    );
}

#[tokio::test]
async fn two_hundred_headers_are_431() {
    let app = TestApp::spawn().await;
    let mut req = app.http.get(app.url("/healthz"));
    for i in 0..200 {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 431);
}

#[tokio::test]
async fn an_authorization_header_over_8_kib_is_401_without_decoding() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(app.url("/v1/clients"))
        .header("authorization", format!("Bearer {}", "a".repeat(9000)))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401).await;
}

#[tokio::test]
async fn a_client_sending_its_head_a_byte_at_a_time_is_cut_off_with_408() {
    let app = TestApp::spawn_with(|s| s.client_request_timeout = Duration::from_millis(800)).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for byte in head {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            let mut peek = [0u8; 1];
            stream.set_nonblocking(true).unwrap();
            let got = stream.peek(&mut peek);
            stream.set_nonblocking(false).unwrap();
            if matches!(got, Ok(n) if n > 0) || matches!(got, Ok(0)) {
                break;
            }
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(outcome.starts_with("HTTP/1.1 408"), "got {outcome:?}");
}

#[tokio::test]
async fn concurrent_clients_with_shared_external_ids_store_exactly_one_row_each() {
    let app = TestApp::spawn_with(|s| s.pool_size = 8).await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for client in 0..32 {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..32 {
                let n = client * 32 + i;
                if n >= 1000 {
                    break;
                }
                let ext = format!("ext-{}", n % 100);
                let res = app
                    .post_json(&token, "/v1/responses", wai_sr(&format!("p-{}", n % 100), Some(&ext)))
                    .await;
                let status = res.status().as_u16();
                let id = res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                seen.push((ext, status, id));
            }
            seen
        }));
    }
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    let mut total = 0;
    for task in tasks {
        for (ext, status, id) in task.await.unwrap() {
            assert!(status == 201 || status == 200, "{status}");
            ids.entry(ext).or_default().insert(id);
            total += 1;
        }
    }
    assert_eq!(total, 1000);
    assert_eq!(ids.len(), 100);
    assert!(
        ids.values().all(|set| set.len() == 1),
        "every post of an external_id got the same id"
    );
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    let rows: i64 = crate::helpers::count_rows(&mut conn, "responses").await;
    assert_eq!(rows, 100);
}

#[tokio::test]
async fn an_exhausted_pool_queues_then_answers_503_never_deadlocks() {
    let app = TestApp::spawn_with(|s| {
        s.pool_size = 4;
        s.pool_timeout = Duration::from_millis(1500);
    })
    .await;
    let token = app.token(&["responses:write"]).await;
    // Hold a lock that every insert waits on: requests keep their connections busy.
    let mut locker = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut locker).await.unwrap();
    diesel::sql_query("LOCK TABLE responses IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let app = std::sync::Arc::new(app);
    let started = std::time::Instant::now();
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                app.post_json(&token, "/v1/responses", wai_sr(&format!("p{i}"), None))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    diesel::sql_query("COMMIT").execute(&mut locker).await.unwrap();
    let mut statuses = HashMap::new();
    for r in requests {
        let res = r.await.unwrap();
        let status = res.status().as_u16();
        if status == 503 {
            assert!(res.headers().contains_key("retry-after"));
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(started.elapsed() < Duration::from_secs(25), "no request hung");
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.keys().all(|s| *s == 201 || *s == 503), "{statuses:?}");
    let created = statuses.get(&201).copied().unwrap_or(0) as i64;
    let rows = crate::helpers::count_rows(&mut locker, "responses").await;
    assert_eq!(rows, created, "no 503 left a row, every 201 is stored");
    // And the service is fine afterwards.
    assert_eq!(
        app.post_json(&token, "/v1/responses", wai_sr("after", None))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let db = unique_db_name();
    let url = format!("{SERVER_URL}/{db}");
    let mut app = start_binary(
        &url,
        &[
            ("RAPPORT_BOOTSTRAP_CLIENT_ID", ADMIN_ID),
            ("RAPPORT_BOOTSTRAP_CLIENT_SECRET", ADMIN_SECRET),
            ("RUST_LOG", "warn"),
        ],
        std::process::Stdio::null(),
    );
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/v1/oauth/token", app.address))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", ADMIN_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let mut locker = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut locker).await.unwrap();
    diesel::sql_query("LOCK TABLE responses IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..10)
        .map(|i| {
            let (http, token, address) = (http.clone(), token.clone(), app.address.clone());
            tokio::spawn(async move {
                http.post(format!("{address}/v1/responses"))
                    .bearer_auth(token)
                    .json(&wai_sr(&format!("p{i}"), None))
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(app.child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    diesel::sql_query("COMMIT").execute(&mut locker).await.unwrap();
    for r in in_flight {
        let res = r.await.unwrap().expect("in-flight request answered");
        assert_eq!(res.status(), 201);
    }
    let status = tokio::task::spawn_blocking(move || app.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(crate::helpers::count_rows(&mut locker, "responses").await, 10);
    drop(locker);
    drop_database_blocking(db);
}

#[tokio::test]
async fn logs_hold_no_secret_token_reference_or_answer() {
    let db = unique_db_name();
    let url = format!("{SERVER_URL}/{db}");
    let log_path = std::env::temp_dir().join(format!("{db}.log"));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut app = start_binary(
        &url,
        &[
            ("RAPPORT_BOOTSTRAP_CLIENT_ID", ADMIN_ID),
            ("RAPPORT_BOOTSTRAP_CLIENT_SECRET", ADMIN_SECRET),
            ("RUST_LOG", "info"),
        ],
        std::process::Stdio::from(log_file),
    );
    let http = reqwest::Client::new();
    let base = app.address.clone();
    let token = crate::helpers::binary_admin_token(&http, &base).await;
    let created: Value = http
        .post(format!("{base}/v1/clients"))
        .bearer_auth(&token)
        .json(&json!({"name": "feed", "scopes": ["responses:write"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    let mut body = wai_sr("patient-ref-7731", Some("enc-ref-5512"));
    body["clinician"] = json!("clinician-ref-4410");
    body["answers"]["1"] = json!(4);
    let res = http
        .post(format!("{base}/v1/responses"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let _ = http
        .get(format!("{base}/v1/patients/patient-ref-7731/trends?instrument=wai-sr"))
        .bearer_auth(&token)
        .send()
        .await;
    let _ = http
        .post(format!("{base}/v1/responses"))
        .bearer_auth(&token)
        .json(&json!({"bad": "patient-ref-7731"}))
        .send()
        .await;
    let _ = http
        .get(format!("{base}/v1/clients"))
        .bearer_auth("not-a-token-0xDEADBEEF")
        .send()
        .await;
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(app.child.id().to_string())
        .status()
        .unwrap();
    let _ = tokio::task::spawn_blocking(move || app.child.wait()).await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    drop_database_blocking(db);
    assert!(
        log.contains("route=/v1/patients/{patient}/trends"),
        "the request lines are there: {log}"
    );
    for needle in [
        ADMIN_SECRET,
        secret.as_str(),
        token.as_str(),
        "patient-ref-7731",
        "clinician-ref-4410",
        "enc-ref-5512",
        "0xDEADBEEF",
        "\"1\":4",
    ] {
        assert!(!log.contains(needle), "the log contains {needle}");
    }
}

#[tokio::test]
async fn nul_characters_are_client_errors_never_500() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&["responses:write", "responses:read", "instruments:write"])
        .await;
    let created: Value = app
        .post_json(&token, "/v1/responses", wai_sr("p", None))
        .await
        .json()
        .await
        .unwrap();
    let void = format!("/v1/responses/{}/void", created["id"].as_str().unwrap());
    assert_problem(app.post_json(&token, &void, json!({"reason": "e\u{0}x"})).await, 422).await;
    assert_problem(app.get(&token, "/v1/responses?patient=a%00b").await, 400).await;
    assert_problem(
        app.get(&token, "/v1/patients/a%00b/trends?instrument=wai-sr").await,
        404,
    )
    .await;
    assert_problem(app.get(&token, "/v1/instruments/a%00").await, 404).await;
    let mut body = wai_sr("p", None);
    body["instrument"] = json!("wai\u{0}sr");
    let res = app.post_json(&token, "/v1/responses", body).await;
    assert!(res.status() == 400 || res.status() == 422, "{}", res.status());
    let mut definition = crate::instruments::custom_instrument("nul-check");
    definition["citation"] = json!("a\u{0}b");
    assert_problem(app.post_json(&token, "/v1/instruments", definition).await, 422).await;
    let res = app
        .http
        .post(app.url("/v1/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a\u{0}b"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .post_json(&token, "/v1/clients", json!({"name": "a\u{0}b", "scopes": []}))
        .await;
    assert_eq!(res.status(), 403, "no org:admin: refused before anything is stored");
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_the_ratelimit_headers_and_probes_are_exempt() {
    let app = TestApp::spawn_with(|s| s.rate_limit_per_minute = 5).await;
    let admin = app.admin_token().await;
    let (id, secret) = app.create_client(&admin, &["responses:read"]).await;
    let reader = app.token_for(&id, &secret, None).await;
    for _ in 0..5 {
        assert_eq!(app.get(&reader, "/v1/responses").await.status(), 200);
    }
    let res = app.get(&reader, "/v1/responses").await;
    assert_eq!(res.status(), 429);
    let headers = res.headers().clone();
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "one token every 12 s: {retry}");
    assert_eq!(headers["ratelimit-limit"], "5");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_eq!(headers["ratelimit-reset"].to_str().unwrap(), retry.to_string());
    let problem = assert_problem(res, 429).await;
    assert!(problem["detail"].as_str().unwrap().contains("5 a minute"), "{problem}");
    // Another client has its own bucket (the admin used two requests so far).
    assert_eq!(app.get(&admin, "/v1/clients").await.status(), 200);
    // Health, readiness and metrics are never limited.
    for _ in 0..10 {
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(
                app.http.get(app.url(path)).send().await.unwrap().status(),
                200,
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn ten_failed_sign_ins_a_minute_then_the_client_id_waits() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (id, secret) = app.create_client(&admin, &["responses:read"]).await;
    let attempt = |secret: String| {
        let (app, id) = (&app, id.clone());
        async move {
            app.http
                .post(app.url("/v1/oauth/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..10 {
        assert_eq!(attempt("wrong".into()).await.status(), 401);
    }
    // The eleventh attempt is refused before any check, even with the right secret.
    let res = attempt(secret.clone()).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("too many failed"));
    // Other client ids are not affected.
    let (other, other_secret) = app.create_client(&admin, &["responses:read"]).await;
    let res = app
        .http
        .post(app.url("/v1/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &other),
            ("client_secret", &other_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
