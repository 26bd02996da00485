use std::process::Stdio;

use serde_json::{Value, json};

use crate::helpers::{SERVER_URL, TestApp, assert_problem, drop_database_blocking, unique_db_name};

#[tokio::test]
async fn health_readiness_metrics_and_docs() {
    let app = TestApp::spawn().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("x-request-id"));
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");

    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");

    let _ = app.http.get(app.url("/v1/clients")).send().await.unwrap();
    let metrics = app.public_text("/metrics").await;
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/readyz",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"http_requests_total{method="GET",route="/v1/clients",status="401"}"#));
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"db_pool_connections{pool="primary",state="max"} 4"#));

    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    assert!(!html.contains("cdn"), "the docs UI is served from the binary");
    let spec: Value = app.public_json("/openapi.json").await;
    assert!(spec["paths"]["/v1/oauth/token"].is_object());
}

#[tokio::test]
async fn readiness_fails_when_migrations_are_missing() {
    let app = TestApp::spawn().await;
    let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&app.database_url)
        .await
        .unwrap();
    diesel_async::RunQueryDsl::execute(diesel::sql_query("DELETE FROM __diesel_schema_migrations"), &mut conn)
        .await
        .unwrap();
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503).await;
}

#[test]
fn committed_openapi_document_matches_the_code() {
    let generated: Value = serde_json::from_str(&rapport::openapi::document_json()).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json is committed");
    let committed: Value = serde_json::from_str(&committed).unwrap();
    assert!(
        generated == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn every_error_path_is_problem_json() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let url = app.url("/v1/clients");

    let malformed = app
        .http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;

    let wrong_type = app
        .http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("hi")
        .send();
    assert_problem(wrong_type.await.unwrap(), 415).await;

    let huge = json!({"name": "x".repeat(70 * 1024), "scopes": []});
    assert_problem(app.post_json(&admin, "/v1/clients", huge).await, 413).await;

    let unknown = app.http.get(app.url("/v1/does-not-exist")).send().await.unwrap();
    assert_problem(unknown, 404).await;
    let wrong_method = app
        .http
        .put(app.url("/v1/clients"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(wrong_method.status().is_client_error());
    assert_eq!(wrong_method.headers()["content-type"], "application/problem+json");

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested = app
        .http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_problem(nested, 400).await;
}

#[tokio::test]
async fn all_migrations_go_down_and_up_again() {
    let app = TestApp::spawn().await;
    rapport::db::redo_all_migrations(&app.database_url)
        .await
        .expect("down then up");
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// Starts the real binary with nothing configured but the database and a free port; returns
/// everything it printed to stdout before it said it was listening.
fn start_binary_once(database_url: &str) -> String {
    let mut app = crate::helpers::start_binary(database_url, &[("RUST_LOG", "warn")], Stdio::null());
    let _ = app.child.kill();
    let _ = app.child.wait();
    app.printed
}

#[test]
fn bootstrap_credentials_are_printed_exactly_once() {
    let db_name = unique_db_name();
    let url = format!("{SERVER_URL}/{db_name}");
    let first = start_binary_once(&url);
    let second = start_binary_once(&url);
    drop_database_blocking(db_name);
    assert!(first.contains("listening on"), "{first}");
    assert_eq!(first.matches("RAPPORT_CLIENT_SECRET=").count(), 1, "{first}");
    assert!(first.contains("RAPPORT_CLIENT_ID=rc_"));
    assert!(second.contains("listening on"), "{second}");
    assert!(!second.contains("RAPPORT_CLIENT_SECRET"), "{second}");
}

#[tokio::test]
async fn docs_without_a_trailing_slash_lead_to_the_ui() {
    let app = TestApp::spawn().await;
    // reqwest follows the redirect: the UI is what a person typing /docs ends up on.
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert_eq!(docs.url().path(), "/docs/");
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
}

/// The metric names a PromQL expression of the ops pack reads (`name{job="rapport"...}`).
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("{job=") {
        let before = &rest[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        names.push(before[start..].to_string());
        rest = &rest[at + 5..];
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_alert_rules_read_only_metrics_the_service_exposes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    assert_eq!(app.get(&token, "/v1/clients").await.status(), 200);
    let exposed = app.public_text("/metrics").await;
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard = std::fs::read_to_string(format!("{root}/ops/grafana/rapport.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().unwrap().len() >= 8);
    let rules = std::fs::read_to_string(format!("{root}/ops/prometheus/alerts.yml")).unwrap();
    let mut checked = 0;
    for name in metric_names(&dashboard).into_iter().chain(metric_names(&rules)) {
        if name == "up" {
            continue; // Prometheus's own
        }
        let base = name.trim_end_matches("_bucket");
        assert!(
            exposed.contains(&format!("# TYPE {base} ")),
            "{name} is not in /metrics"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} metric references found");
}
