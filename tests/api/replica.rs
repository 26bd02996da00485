//! A real streaming replica (a throwaway primary and its `pg_basebackup -R` standby): the
//! analytics read from the replica once it has replayed the write, and fall back to the
//! primary when the replica stops. `/readyz` and `/metrics` say which is which.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::builders::wai_sr_answers;
use crate::faults::Cluster;
use crate::helpers::TestApp;

fn reads(metrics: &str, pool: &str) -> u64 {
    let key = format!("db_reads_total{{pool=\"{pool}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn analytics_read_the_replica_and_fall_back_to_the_primary_when_it_stops() {
    let primary = Cluster::create();
    let standby = Cluster::standby_of(&primary);
    let (write_url, read_url) = (primary.url("rapport_replica"), standby.url("rapport_replica"));
    let app = TestApp::spawn_with(|s| {
        s.database_url = write_url;
        s.database_read_url = Some(read_url);
        s.pool_timeout = Duration::from_millis(1000);
    })
    .await;
    let admin = app.admin_token().await;
    let body = json!({"instrument": "wai-sr", "patient": "p-rep", "administered_at": "2026-02-01T10:00:00Z",
        "answers": wai_sr_answers(44)});
    assert_eq!(app.post_json(&admin, "/v1/responses", body).await.status(), 201);

    // The trend comes from the replica once it has replayed the write.
    let started = Instant::now();
    loop {
        let res = app.get(&admin, "/v1/patients/p-rep/trends?instrument=wai-sr").await;
        if res.status() == 200 {
            let trend: Value = res.json().await.unwrap();
            assert_eq!(trend["points"].as_array().unwrap().len(), 1);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replica never replayed the response"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.public_text("/metrics").await;
    assert!(reads(&metrics, "replica") >= 1, "{metrics}");
    assert_eq!(reads(&metrics, "primary_fallback"), 0);
    assert!(metrics.contains(r#"db_pool_connections{pool="replica",state="max"}"#));
    let ready = app.public_json("/readyz").await;
    assert_eq!(
        (ready["primary"].as_str(), ready["replica"].as_str()),
        (Some("ready"), Some("ready"))
    );

    // The replica stops: reads go to the primary, and readiness says so but stays ready.
    standby.stop();
    let res = app.get(&admin, "/v1/patients/p-rep/trends?instrument=wai-sr").await;
    assert_eq!(res.status(), 200, "the trend falls back to the primary");
    let list = app.get(&admin, "/v1/responses?patient=p-rep").await;
    assert_eq!(list.status(), 200);
    let metrics = app.public_text("/metrics").await;
    assert!(reads(&metrics, "primary_fallback") >= 2, "{metrics}");
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ready: Value = res.json().await.unwrap();
    assert!(ready["replica"].as_str().unwrap().starts_with("unavailable"), "{ready}");
}
