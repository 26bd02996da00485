//! A patient's erasure: everything of theirs goes in one transaction, one audit event names
//! the pseudonym only, and nothing afterwards knows of them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::builders::wai_sr_answers;
use crate::helpers::{TestApp, assert_problem, count_rows, pointers};

async fn wai(app: &TestApp, token: &str, patient: &str, day: u32, total: u32) {
    let body = json!({"instrument": "wai-sr", "patient": patient, "clinician": "dr-e",
        "administered_at": format!("2026-01-{day:02}T10:00:00Z"), "answers": wai_sr_answers(total)});
    assert_eq!(app.post_json(token, "/v1/responses", body).await.status(), 201);
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.db().await;
    count_rows(&mut conn, sql).await
}

#[tokio::test]
async fn an_erased_patient_is_gone_everywhere_and_the_audit_keeps_the_pseudonym_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // A webhook endpoint, so that messages naming the patient are queued for delivery.
    let res = app
        .post_json(
            &admin,
            "/v1/webhooks",
            json!({"url": "https://93.184.215.14/hook", "events": ["alert.created", "response.created"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    for (day, total) in [(1, 48), (8, 48), (15, 48), (22, 12)] {
        wai(&app, &admin, "p-erase", day, total).await;
    }
    wai(&app, &admin, "p-keep", 1, 40).await;
    let started = Instant::now();
    while app.get_json(&admin, "/v1/alerts?patient=p-erase").await["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(started.elapsed() < Duration::from_secs(10), "no alert for p-erase");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(count(&app, "webhook_deliveries WHERE body LIKE '%p-erase%'").await > 0);

    // The guard and the scope.
    let problem = assert_problem(
        app.post_json(&admin, "/v1/patients/p-erase/erase", json!({"confirm": "p-keep"}))
            .await,
        422,
    )
    .await;
    assert_eq!(pointers(&problem), vec!["/confirm"]);
    let reader = app.token(&["responses:read", "responses:write"]).await;
    assert_problem(
        app.post_json(&reader, "/v1/patients/p-erase/erase", json!({"confirm": "p-erase"}))
            .await,
        403,
    )
    .await;

    let res = app
        .post_json(&admin, "/v1/patients/p-erase/erase", json!({"confirm": "p-erase"}))
        .await;
    assert_eq!(res.status(), 200);
    let erased: Value = res.json().await.unwrap();
    let pseudonym = erased["patient_pseudonym"].as_str().unwrap().to_string();
    assert_eq!(pseudonym.len(), 16);
    assert_eq!(
        (erased["responses_deleted"].as_i64(), erased["alerts_deleted"].as_i64()),
        (Some(4), Some(1))
    );

    // Nothing knows of the patient any more.
    assert_problem(
        app.get(&admin, "/v1/patients/p-erase/trends?instrument=wai-sr").await,
        404,
    )
    .await;
    assert_eq!(
        app.get_json(&admin, "/v1/responses?patient=p-erase").await["items"],
        json!([])
    );
    assert_eq!(
        app.get_json(&admin, "/v1/alerts?patient=p-erase&status=all").await["items"],
        json!([])
    );
    let export = app
        .get(&admin, "/v1/exports/responses?instrument=wai-sr")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 1, "only p-keep's response is exported");
    assert!(!export.contains(&pseudonym));
    for table in ["responses", "alerts", "outbox_events", "clinician_series"] {
        assert_eq!(
            count(&app, &format!("{table} WHERE patient = 'p-erase'")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(count(&app, "webhook_deliveries WHERE body LIKE '%p-erase%'").await, 0);
    // One audit event, with the pseudonym; the reference itself is nowhere in the log.
    let audit = app
        .get(&admin, "/v1/audit-events?limit=500")
        .await
        .text()
        .await
        .unwrap();
    assert!(!audit.contains("p-erase"), "the audit log names the patient");
    let events: Value = serde_json::from_str(&audit).unwrap();
    let erasures: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "patient.erased")
        .collect();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["resource_id"], pseudonym.as_str());

    // A second erase finds nothing; the other patient is untouched.
    assert_problem(
        app.post_json(&admin, "/v1/patients/p-erase/erase", json!({"confirm": "p-erase"}))
            .await,
        404,
    )
    .await;
    assert_eq!(
        app.get_json(&admin, "/v1/responses?patient=p-keep").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another organisation cannot erase (or learn of) this organisation's patient.
    let (_, other) = app.create_org("erase-other").await;
    assert_problem(
        app.post_json(&other, "/v1/patients/p-keep/erase", json!({"confirm": "p-keep"}))
            .await,
        404,
    )
    .await;
    assert_eq!(count(&app, "responses WHERE patient = 'p-keep'").await, 1);
}
