//! Webhooks: a real HTTP receiver on 127.0.0.1:0 inside each test receives what rapport's
//! delivery workers send. Every message received is also written to
//! `$CARGO_TARGET_TMPDIR/webhook-captures/` with its secrets, so CI can verify the
//! signatures with the official Standard Webhooks library (scripts/verify-webhooks.py):
//! rapport's own verifier is not the judge.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::builders::phq9_answers;
use crate::helpers::{
    ADMIN_ID, ADMIN_SECRET, SERVER_URL, TestApp, assert_problem, drop_database_blocking, pointers, start_binary,
    unique_db_name,
};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    /// The status the receiver answered.
    pub answered: u16,
    pub at: Instant,
    /// Unix seconds (for the independent verifier's clock).
    pub received_at: f64,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    /// Statuses to answer, in order; then `then`.
    script: Mutex<VecDeque<u16>>,
    then: Mutex<u16>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let answered = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*shared.then.lock().unwrap());
    shared.got.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
        at: Instant::now(),
        received_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64(),
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).body("ok")
}

impl Receiver {
    /// A receiver answering `script` in order, then `then` to everything.
    pub async fn start(script: &[u16], then: u16) -> Receiver {
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().extend(script);
        *shared.then.lock().unwrap() = then;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            shared,
            handle,
        }
    }

    pub fn answer_from_now(&self, status: u16) {
        *self.shared.then.lock().unwrap() = status;
    }

    pub fn got(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Waits until `check` holds over what was received; panics after `within`.
    pub async fn wait(&self, within: Duration, check: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.got();
            if check(&got) {
                return got;
            }
            assert!(
                started.elapsed() < within,
                "the receiver never got what was expected: {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// Writes a received message with the secrets it must verify under, for the CI step that
/// checks it with the `standardwebhooks` package.
fn capture(name: &str, secrets: &[&str], r: &Received) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("webhook-captures");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}-{}.json", uuid::Uuid::new_v4().simple()));
    let record = json!({
        "secrets": secrets,
        "headers": {"webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature},
        "body": r.body,
        "received_at": r.received_at,
    });
    std::fs::write(file, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

/// rapport's own check (the library's `verify`), used next to the independent one.
fn verified(secret: &str, r: &Received) -> bool {
    rapport::webhooks::signature::verify(
        secret,
        &r.id,
        r.timestamp.parse().unwrap(),
        r.body.as_bytes(),
        &r.signature,
    )
}

async fn open_app(retry: &str) -> TestApp {
    let retry = retry.to_string();
    TestApp::spawn_with(move |s| {
        s.webhook_allow_private = true;
        s.webhook_retry = retry
            .split(',')
            .map(|v| Duration::from_secs_f64(v.parse().unwrap()))
            .collect();
    })
    .await
}

async fn register(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post_json(token, "/v1/webhooks", body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

fn phq9(patient: &str, day: u32, total: u32, item9: u32) -> Value {
    json!({"instrument": "phq-9", "patient": patient, "clinician": "dr-a",
        "administered_at": format!("2026-02-{day:02}T09:00:00Z"), "answers": phq9_answers(total, item9)})
}

async fn deliveries(app: &TestApp, token: &str, webhook: &str) -> Vec<Value> {
    let page = app.get_json(token, &format!("/v1/webhooks/{webhook}/deliveries")).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the endpoint's newest delivery has `status`; returns it.
async fn wait_for_delivery(app: &TestApp, token: &str, webhook: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let log = deliveries(app, token, webhook).await;
        if <[Value]>::first(&log).is_some_and(|d| d["status"] == status) {
            return log[0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never {status}: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_alert_is_sent_signed_and_a_failing_receiver_gets_retries_with_the_same_id() {
    let app = open_app("0.3,0.3,0.3").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[500, 500], 200).await;
    let hook = register(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["alert.created"], "description": "ward 3 pager"}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(hook["status"], "active");
    assert_eq!(hook["payload"], "full");
    // The secret is shown at creation only.
    let read = app
        .get_json(&admin, &format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()))
        .await;
    assert!(read.get("secret").is_none(), "{read}");
    assert_eq!(read["description"], "ward 3 pager");

    let res = app.post_json(&admin, "/v1/responses", phq9("p-flag", 1, 12, 2)).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let got = receiver.wait(Duration::from_secs(10), |g| g.len() >= 3).await;
    assert_eq!(got.len(), 3, "three attempts, then delivered: {got:#?}");
    assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 200]);
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "the same webhook-id on every attempt");
    // The schedule's 0.3 s (±10%) between attempts.
    for pair in got.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(250), "{pair:#?}");
    }
    for r in &got {
        assert_eq!(r.content_type, "application/json");
        assert!(verified(secret, r), "signature of {r:#?}");
        capture("alert-created", &[secret], r);
        // The signature covers the timestamp: a wrong one, or another secret, fails.
        let shifted = Received {
            timestamp: (r.timestamp.parse::<i64>().unwrap() + 1).to_string(),
            ..r.clone()
        };
        assert!(!verified(secret, &shifted));
        assert!(!verified(&rapport::webhooks::signature::new_secret(), r));
    }
    let message = got[2].json();
    assert_eq!(message["type"], "alert.created");
    assert!(message["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(message["data"]["kind"], "item_flag");
    assert_eq!(message["data"]["patient"], "p-flag");
    assert_eq!(message["data"]["response_id"], created["id"]);
    assert_eq!(message["data"]["detail"]["flag"], "item_9_positive");

    // The worker records the outcome after the receiver answered: wait for it.
    wait_for_delivery(&app, &admin, hook["id"].as_str().unwrap(), "delivered").await;
    let log = deliveries(&app, &admin, hook["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status"], 200);
    assert_eq!(log[0]["type"], "alert.created");
    assert_eq!(log[0]["event_id"].as_str(), Some(got[0].id.as_str()));
    assert!(log[0]["next_attempt_at"].is_null());
    let metrics = app.public_text("/metrics").await;
    assert!(
        metrics.contains("webhook_deliveries{status=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("webhook_attempts_total{outcome=\"retry\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unscored_response_with_a_safety_flag_is_announced() {
    let app = open_app("0.3").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = register(&app, &admin, json!({"url": receiver.url, "events": ["alert.created"]})).await;
    let secret = hook["secret"].as_str().unwrap();
    let body = json!({"instrument": "phq-9", "patient": "p-skipped", "clinician": "dr-a",
        "administered_at": "2026-02-03T09:00:00Z", "answers": crate::builders::phq9_unscored_with_item_9(3)});
    let res = app.post_json(&admin, "/v1/responses", body).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert!(created["score"].is_null());
    let got = receiver.wait(Duration::from_secs(10), |g| !g.is_empty()).await;
    assert!(verified(secret, &got[0]));
    capture("alert-created-unscored", &[secret], &got[0]);
    let message = got[0].json();
    assert_eq!(message["type"], "alert.created");
    assert_eq!(message["data"]["kind"], "item_flag");
    assert_eq!(message["data"]["response_id"], created["id"]);
    assert_eq!(message["data"]["detail"]["flag"], "item_9_positive");
}

#[tokio::test]
async fn response_events_in_id_only_form() {
    let app = open_app("0.2").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 204).await;
    register(
        &app,
        &admin,
        json!({"url": receiver.url, "payload": "id-only",
            "events": ["response.created", "response.voided", "alert.resolved", "response.created"]}),
    )
    .await;
    // One response, then its voiding: one message each.
    let res = app.post_json(&admin, "/v1/responses", phq9("p-ids", 1, 12, 0)).await;
    let first: Value = res.json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    let voided = app
        .post_json(
            &admin,
            &format!("/v1/responses/{id}/void"),
            json!({"reason": "wrong patient"}),
        )
        .await;
    assert_eq!(voided.status(), 200);
    let got = receiver.wait(Duration::from_secs(10), |g| g.len() >= 2).await;
    let mut types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    assert_eq!(types, ["response.created", "response.voided"]);
    for r in &got {
        let data = r.json()["data"].clone();
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "instrument", "patient"], "{data}");
        assert_eq!(data["id"], id);
        assert_eq!(data["instrument"], "phq-9");
    }
    // Nothing else (item 9 was 0: no alert to resolve either).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 2);
}

#[tokio::test]
async fn a_rupture_is_announced_when_raised_and_again_when_its_repair_resolves_it() {
    let app = open_app("0.2").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = register(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["alert.created", "alert.resolved"]}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let wai = |day: u32, total: u32| {
        json!({"instrument": "wai-sr", "patient": "p-rw", "clinician": "dr-a",
            "administered_at": format!("2026-01-{day:02}T10:00:00Z"), "answers": crate::builders::wai_sr_answers(total)})
    };
    for (day, total) in [(1, 48), (8, 48), (15, 48), (22, 12)] {
        assert_eq!(
            app.post_json(&admin, "/v1/responses", wai(day, total)).await.status(),
            201
        );
    }
    let rupture_message =
        |kind: &'static str| move |r: &Received| r.json()["type"] == kind && r.json()["data"]["kind"] == "rupture";
    let got = receiver
        .wait(Duration::from_secs(10), |g| {
            g.iter().any(rupture_message("alert.created"))
        })
        .await;
    let raised = got.iter().find(|r| rupture_message("alert.created")(r)).unwrap().json();
    assert_eq!(raised["data"]["status"], "open");
    let repair: Value = app
        .post_json(&admin, "/v1/responses", wai(29, 48))
        .await
        .json()
        .await
        .unwrap();
    let got = receiver
        .wait(Duration::from_secs(10), |g| {
            g.iter().any(rupture_message("alert.resolved"))
        })
        .await;
    let message = got.iter().find(|r| rupture_message("alert.resolved")(r)).unwrap();
    let resolved = message.json();
    assert_eq!(resolved["data"]["id"], raised["data"]["id"]);
    assert_eq!(resolved["data"]["status"], "resolved");
    assert_eq!(resolved["data"]["resolved_by_response_id"], repair["id"]);
    assert!(verified(&secret, message));
    capture("alert-resolved", &[&secret], message);
    // Each fact once: one created and one resolved message for the rupture.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let about_rupture = receiver
        .got()
        .iter()
        .filter(|r| r.json()["data"]["kind"] == "rupture")
        .count();
    assert_eq!(about_rupture, 2);
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_test_events_and_rotation_sign_with_both_secrets() {
    let app = open_app("0.2").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = register(&app, &admin, json!({"url": receiver.url, "events": ["alert.created"]})).await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let old = hook["secret"].as_str().unwrap().to_string();

    let rotated = app
        .post_json(&admin, &format!("/v1/webhooks/{hook_id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string());

    let queued = app
        .post_json(&admin, &format!("/v1/webhooks/{hook_id}/test"), json!({}))
        .await;
    assert_eq!(queued.status(), 202);
    let got = receiver.wait(Duration::from_secs(10), |g| !g.is_empty()).await;
    let r = &got[0];
    assert_eq!(r.json()["type"], "webhook.test");
    assert_eq!(r.signature.split(' ').count(), 2, "two v1 signatures: {}", r.signature);
    assert!(verified(&new, r) && verified(&old, r));
    capture("rotated", &[&new, &old], r);

    // A receiver answering 410: the endpoint is disabled and nothing more is sent.
    receiver.answer_from_now(410);
    let queued = app
        .post_json(&admin, &format!("/v1/webhooks/{hook_id}/test"), json!({}))
        .await;
    assert_eq!(queued.status(), 202);
    let queued: Value = queued.json().await.unwrap();
    receiver.wait(Duration::from_secs(10), |g| g.len() >= 2).await;
    let started = Instant::now();
    loop {
        let read = app.get_json(&admin, &format!("/v1/webhooks/{hook_id}")).await;
        if read["status"] == "disabled" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = deliveries(&app, &admin, &hook_id).await;
    let gone = log.iter().find(|d| d["id"] == queued["id"]).unwrap();
    assert_eq!(gone["status"], "failed");
    assert_eq!(gone["last_status"], 410);
    let again = app
        .post_json(&admin, &format!("/v1/webhooks/{hook_id}/test"), json!({}))
        .await;
    assert_problem(again, 409).await;
    let retry = app
        .post_json(
            &admin,
            &format!(
                "/v1/webhooks/{hook_id}/deliveries/{}/retry",
                queued["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_problem(retry, 409).await;
    let res = app.post_json(&admin, "/v1/responses", phq9("p-gone", 1, 12, 2)).await;
    assert_eq!(res.status(), 201);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.got().len(), 2, "nothing is sent to a disabled endpoint");

    // Deleting takes the endpoint and its log away.
    assert_eq!(
        app.delete(&admin, &format!("/v1/webhooks/{hook_id}")).await.status(),
        204
    );
    assert_problem(app.get(&admin, &format!("/v1/webhooks/{hook_id}")).await, 404).await;
    let list = app.get_json(&admin, "/v1/webhooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Each change to the endpoint is in the audit log, naming it.
    let audit = app.get_json(&admin, "/v1/audit-events?limit=100").await;
    for action in ["webhook.created", "webhook.secret_rotated", "webhook.deleted"] {
        let found = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == action && e["resource_id"] == hook_id.as_str());
        assert!(found, "{action} missing: {audit}");
    }
}

#[tokio::test]
async fn a_failed_delivery_is_retried_by_hand_and_other_organisations_see_nothing() {
    let app = open_app("0.1").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[500, 500], 200).await;
    let hook = register(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["response.created"]}),
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let queued: Value = app
        .post_json(&admin, &format!("/v1/webhooks/{hook_id}/test"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    let delivery = queued["id"].as_str().unwrap().to_string();
    // A first attempt and one retry: then `failed`.
    let log = wait_for_delivery(&app, &admin, &hook_id, "failed").await;
    assert_eq!(log["attempts"], 2);
    assert_eq!(log["last_status"], 500);
    assert!(log["last_error"].as_str().unwrap().contains("500"));
    let failed_only = app
        .get_json(&admin, &format!("/v1/webhooks/{hook_id}/deliveries?status=failed"))
        .await;
    assert_eq!(failed_only["items"].as_array().unwrap().len(), 1);

    let (_, other_secret_holder) = app.create_org("second-hooks").await;
    let retry_path = format!("/v1/webhooks/{hook_id}/deliveries/{delivery}/retry");
    for path in [
        format!("/v1/webhooks/{hook_id}"),
        format!("/v1/webhooks/{hook_id}/deliveries"),
    ] {
        assert_problem(app.get(&other_secret_holder, &path).await, 404).await;
    }
    assert_problem(app.post_json(&other_secret_holder, &retry_path, json!({})).await, 404).await;
    let theirs = app.get_json(&other_secret_holder, "/v1/webhooks").await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);

    let retried = app.post_json(&admin, &retry_path, json!({})).await;
    assert_eq!(retried.status(), 200);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["status"], "pending");
    let got = receiver.wait(Duration::from_secs(10), |g| g.len() >= 3).await;
    assert_eq!(got[2].answered, 200);
    assert_eq!(got[2].id, got[0].id);
    wait_for_delivery(&app, &admin, &hook_id, "delivered").await;
    assert_problem(app.post_json(&admin, &retry_path, json!({})).await, 409).await;
}

#[tokio::test]
async fn registration_refuses_internal_and_plain_http_targets() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for url in [
        "http://example.org/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fc00::]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://192.168.0.10:8443/hook",
        "https://0.0.0.0/hook",
    ] {
        let res = app
            .post_json(&admin, "/v1/webhooks", json!({"url": url, "events": ["alert.created"]}))
            .await;
        let problem = assert_problem(res, 422).await;
        assert_eq!(pointers(&problem), ["/url"], "{url}: {problem}");
    }
    let res = app
        .post_json(
            &admin,
            "/v1/webhooks",
            json!({"url": "ftp://x", "events": ["alert.made", "alert.created"], "payload": "some", "description": "x".repeat(501)}),
        )
        .await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(
        pointers(&problem),
        ["/url", "/events/0", "/description", "/payload"],
        "{problem}"
    );
    let res = app
        .post_json(
            &admin,
            "/v1/webhooks",
            json!({"url": "https://example.org/h", "events": []}),
        )
        .await;
    assert!(pointers(&assert_problem(res, 422).await).contains(&"/events".to_string()));
    // Nothing was stored.
    assert_eq!(app.get_json(&admin, "/v1/webhooks").await["items"], json!([]));
    // Not an administrator: 403.
    let writer = app.token(&["responses:write"]).await;
    let res = app
        .post_json(
            &writer,
            "/v1/webhooks",
            json!({"url": "https://example.org/h", "events": ["alert.created"]}),
        )
        .await;
    assert_problem(res, 403).await;
}

#[tokio::test]
async fn the_address_connected_is_checked_at_each_delivery() {
    // An endpoint whose name resolved to a public address at registration and resolves to
    // loopback now (DNS rebinding), and one stored with a loopback literal: neither is sent.
    let app = TestApp::spawn_with(|s| s.webhook_retry = vec![]).await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 200).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches("/hook")
        .to_string();
    let mut conn = AsyncPgConnection::establish(&app.database_url).await.unwrap();
    for (n, url) in [
        format!("https://localhost:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
    ]
    .iter()
    .enumerate()
    {
        let id = uuid::Uuid::new_v4();
        diesel::sql_query(
            "INSERT INTO webhook_endpoints (org_id, id, url, events, payload, secret)
             SELECT id, $1, $2, ARRAY['alert.created'], 'full', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
             FROM organizations WHERE slug = 'default'",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Text, _>(url)
        .execute(&mut conn)
        .await
        .unwrap();
        let queued = app
            .post_json(&admin, &format!("/v1/webhooks/{id}/test"), json!({}))
            .await;
        assert_eq!(queued.status(), 202, "{n}");
        let log = wait_for_delivery(&app, &admin, &id.to_string(), "failed").await;
        let error = log["last_error"].as_str().unwrap();
        assert!(error.contains("loopback"), "{n}: {error}");
        assert!(log["last_status"].is_null());
    }
    assert!(receiver.got().is_empty(), "{:?}", receiver.got());
}

#[tokio::test]
async fn a_delivery_survives_a_restart_of_rapport() {
    let db = unique_db_name();
    let url = format!("{SERVER_URL}/{db}");
    let env = [
        ("RAPPORT_BOOTSTRAP_CLIENT_ID", ADMIN_ID),
        ("RAPPORT_BOOTSTRAP_CLIENT_SECRET", ADMIN_SECRET),
        ("RAPPORT_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("RAPPORT_WEBHOOK_RETRY_SECS", "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5"),
        ("RUST_LOG", "error"),
    ];
    let http = reqwest::Client::new();
    // The receiver is down for rapport's first life: every attempt fails.
    let receiver = Receiver::start(&[], 503).await;
    let mut first = start_binary(&url, &env, std::process::Stdio::null());
    let admin = crate::helpers::binary_admin_token(&http, &first.address).await;
    let hook: Value = http
        .post(format!("{}/v1/webhooks", first.address))
        .bearer_auth(&admin)
        .json(&json!({"url": receiver.url, "events": ["response.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_string();
    let created = http
        .post(format!("{}/v1/responses", first.address))
        .bearer_auth(&admin)
        .json(&phq9("p-durable", 1, 10, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    receiver.wait(Duration::from_secs(10), |g| !g.is_empty()).await;
    // SIGKILL: no graceful shutdown, nothing flushed on the way out.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    receiver.answer_from_now(200);
    let mut second = start_binary(&url, &env, std::process::Stdio::null());
    let got = receiver
        .wait(Duration::from_secs(15), |g| g.iter().any(|r| r.answered == 200))
        .await;
    let _ = second.child.kill();
    let _ = second.child.wait();
    drop_database_blocking(db);
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one event, the same id before and after the restart");
    let delivered = got.iter().find(|r| r.answered == 200).unwrap();
    assert_eq!(delivered.json()["type"], "response.created");
    assert_eq!(delivered.json()["data"]["id"], created["id"]);
    assert!(verified(&secret, delivered));
    capture("after-restart", &[&secret], delivered);
}

#[tokio::test]
async fn two_instances_process_every_event_exactly_once_and_deliver_every_message() {
    let app = open_app("0.2").await;
    let db_name = app.db_name.clone();
    let second = TestApp::spawn_with(|s| {
        s.database_url = format!("{}/{db_name}", crate::backend::server_url());
        s.webhook_allow_private = true;
    })
    .await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = register(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["response.created", "alert.created"], "payload": "id-only"}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let token = app.token(&["responses:write", "responses:read"]).await;
    let posts = (0..500u32).map(|i| {
        let target = if i % 2 == 0 { &app } else { &second };
        let body = json!({"instrument": "phq-9", "patient": format!("p-{}", i % 50),
            "administered_at": format!("2026-01-{:02}T{:02}:00:00Z", 1 + i / 50, i % 24),
            "answers": phq9_answers(i % 25, u32::from(i % 7 == 0).min(i % 25))});
        let token = token.clone();
        async move { target.post_json(&token, "/v1/responses", body).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let mut conn = app.db().await;
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        events: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        done_once: i64,
    }
    let started = Instant::now();
    loop {
        let c: Counts = diesel::sql_query(
            "SELECT count(*) AS events, count(*) FILTER (WHERE processed_at IS NOT NULL AND attempts = 1) AS done_once
             FROM outbox_events",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        if c.done_once == 500 {
            assert_eq!(c.events, 500);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} processed",
            c.done_once,
            c.events
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Item 9 was answered >= 1 in every seventh response: one item_flag alert each, never two.
    let flagged = (0..500u32).filter(|i| i % 7 == 0 && i % 25 > 0).count();
    let page = app.get_json(&token, "/v1/alerts?kind=item_flag&limit=500").await;
    assert_eq!(page["items"].as_array().unwrap().len(), flagged);
    // Every queued message delivered (at least once), and none twice: no instance crashed.
    #[derive(diesel::QueryableByName)]
    struct Sent {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        queued: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        delivered: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        alert_events: i64,
    }
    let started = Instant::now();
    let sent = loop {
        let sent: Sent = diesel::sql_query(
            "SELECT count(*) AS queued, count(*) FILTER (WHERE status = 'delivered' AND attempts = 1) AS delivered,
                count(*) FILTER (WHERE event_type = 'alert.created') AS alert_events
             FROM webhook_deliveries",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        if sent.delivered == sent.queued && sent.queued >= 500 + flagged as i64 {
            break sent;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {} delivered",
            sent.delivered,
            sent.queued
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let got = receiver.got();
    assert_eq!(got.len() as i64, sent.queued, "one request per message");
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "no message twice");
    let created = got.iter().filter(|r| r.json()["type"] == "response.created").count();
    assert_eq!(created, 500);
    let alert_messages = got.iter().filter(|r| r.json()["type"] == "alert.created").count();
    assert_eq!(alert_messages as i64, sent.alert_events);
    // Every alert raised was announced.
    let announced: BTreeSet<String> = got
        .iter()
        .filter(|r| r.json()["type"] == "alert.created")
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_string())
        .collect();
    let alerts = app.get_json(&token, "/v1/alerts?status=all&limit=500").await;
    for alert in alerts["items"].as_array().unwrap() {
        assert!(announced.contains(alert["id"].as_str().unwrap()), "{alert}");
    }
    assert!(got.iter().all(|r| verified(&secret, r)));
    capture("two-instances", &[&secret], &got[0]);
    std::mem::forget(second);
}

#[tokio::test]
async fn an_endpoint_disabled_by_a_410_is_enabled_again_and_replays_what_it_missed_but_no_erased_patient() {
    let app = open_app("0.2").await;
    let admin = app.admin_token().await;
    let receiver = Receiver::start(&[], 410).await;
    let hook = register(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["response.created"]}),
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let secret = hook["secret"].as_str().unwrap().to_string();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    // The first message is answered 410: the endpoint is disabled.
    assert_eq!(
        app.post_json(&admin, "/v1/responses", phq9("p-kept", 1, 4, 0))
            .await
            .status(),
        201
    );
    let first = receiver.wait(Duration::from_secs(10), |g| !g.is_empty()).await[0].clone();
    let started = Instant::now();
    while app.get_json(&admin, &format!("/v1/webhooks/{hook_id}")).await["status"] != "disabled" {
        assert!(started.elapsed() < Duration::from_secs(5), "never disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Missed while disabled: one patient's response, and one of a patient erased later.
    assert_eq!(
        app.post_json(&admin, "/v1/responses", phq9("p-kept", 8, 6, 0))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.post_json(&admin, "/v1/responses", phq9("p-gone", 8, 6, 0))
            .await
            .status(),
        201
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.got().len(), 1, "nothing is sent to a disabled endpoint");
    let erase = app
        .post_json(&admin, "/v1/patients/p-gone/erase", json!({"confirm": "p-gone"}))
        .await;
    assert_eq!(erase.status(), 200);

    let replay = |since: chrono::DateTime<chrono::Utc>| {
        let (app, admin, hook_id) = (&app, &admin, &hook_id);
        async move {
            app.post_json(
                admin,
                &format!("/v1/webhooks/{hook_id}/replay"),
                json!({"since": since.to_rfc3339()}),
            )
            .await
        }
    };
    assert_problem(replay(since).await, 409).await;
    receiver.answer_from_now(200);
    let enabled = app
        .post_json(&admin, &format!("/v1/webhooks/{hook_id}/enable"), json!({}))
        .await;
    assert_eq!(enabled.status(), 200);
    assert_eq!(enabled.json::<Value>().await.unwrap()["status"], "active");
    let res = replay(since).await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        res.json::<Value>().await.unwrap()["queued"],
        2,
        "p-kept's two; p-gone was erased"
    );
    let got = receiver.wait(Duration::from_secs(10), |g| g.len() >= 3).await;
    let replayed = &got[1..];
    assert!(replayed.iter().all(|r| r.json()["data"]["patient"] == "p-kept"));
    assert!(replayed.iter().all(|r| verified(&secret, r)));
    let again = replayed
        .iter()
        .find(|r| r.id == first.id)
        .expect("the first event again, same id");
    assert_eq!(again.body, first.body, "the payload as it was sent");
    capture("replayed", &[&secret], again);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 3, "the erased patient is never resent");
}
