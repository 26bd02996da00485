//! Alerts from the transactional outbox: raised after the commit by a worker, brought to
//! what the stored series says, never twice.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::builders::wai_sr_answers;
use crate::builders::{phq9_answers, phq9_unscored_with_item_9};
use crate::helpers::{TestApp, assert_problem, item_strings};

/// Polls the alert list until `check` holds (the worker runs after the commit); panics after 10 s.
pub(crate) async fn wait_for(app: &TestApp, token: &str, query: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page = app.get_json(token, &format!("/v1/alerts?{query}")).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if check(&items) {
            return items;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "alerts never reached the state: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post_json(token, "/v1/responses", body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn wai(app: &TestApp, token: &str, patient: &str, day: u32, total: u32) -> String {
    let body = json!({"instrument": "wai-sr", "patient": patient, "clinician": "dr-a",
        "administered_at": format!("2026-01-{day:02}T10:00:00Z"), "answers": wai_sr_answers(total)});
    post(app, token, body).await["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_rupture_raises_an_alert_and_its_repair_resolves_it() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for (day, total) in [(1, 48), (8, 48), (15, 48)] {
        wai(&app, &token, "p-r", day, total).await;
    }
    let crash = wai(&app, &token, "p-r", 22, 12).await;
    let started = Instant::now();
    let open = wait_for(&app, &token, "kind=rupture", |a| a.len() == 1).await;
    println!("rupture alert after {:?}", started.elapsed());
    let alert = &open[0];
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["response_id"], crash.as_str());
    assert_eq!(alert["patient"], "p-r");
    assert_eq!(alert["clinician"], "dr-a");
    assert_eq!(
        alert["detail"],
        json!({"from": 48.0, "to": 12.0, "drop": 36.0, "rule": "sd_drop"})
    );
    let metrics = app.public_text("/metrics").await;
    assert!(
        metrics.contains(r#"alerts{kind="rupture",status="open"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("outbox_lag_seconds 0") && metrics.contains("outbox_events_processed_total"));
    let repair = wai(&app, &token, "p-r", 29, 48).await;
    let resolved = wait_for(&app, &token, "status=resolved&kind=rupture", |a| a.len() == 1).await;
    assert_eq!(resolved[0]["id"], alert["id"]);
    assert_eq!(resolved[0]["resolved_by_response_id"], repair.as_str());
    assert!(resolved[0]["resolved_at"].is_string());
}

#[tokio::test]
async fn voiding_the_ruptured_point_withdraws_its_alert() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for (day, total) in [(1, 48), (8, 48), (15, 48)] {
        wai(&app, &token, "p-v", day, total).await;
    }
    let crash = wai(&app, &token, "p-v", 22, 12).await;
    wait_for(&app, &token, "kind=rupture", |a| a.len() == 1).await;
    let void = app
        .post_json(
            &token,
            &format!("/v1/responses/{crash}/void"),
            json!({"reason": "wrong patient"}),
        )
        .await;
    assert_eq!(void.status(), 200);
    let withdrawn = wait_for(&app, &token, "status=withdrawn", |a| a.len() == 1).await;
    assert_eq!(withdrawn[0]["kind"], "rupture");
    assert!(
        wait_for(&app, &token, "", |_| true).await.is_empty(),
        "no open alert is left"
    );
}

#[tokio::test]
async fn phq9_item_9_raises_an_item_flag_alert_that_a_person_acknowledges() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read", "org:admin"]).await;
    let created = post(
        &app,
        &token,
        json!({"instrument": "phq-9", "patient": "p-s", "administered_at": "2026-01-05T10:00:00Z",
        "answers": phq9_answers(4, 1)}),
    )
    .await;
    assert_eq!(
        created["score"]["flags"],
        json!(["item_9_positive"]),
        "the 201 carries the flag at once"
    );
    let alerts = wait_for(&app, &token, "kind=item_flag", |a| a.len() == 1).await;
    let alert = &alerts[0];
    assert_eq!(
        alert["detail"],
        json!({"flag": "item_9_positive", "item": "9", "answer": 1})
    );
    let path = format!("/v1/alerts/{}/acknowledge", alert["id"].as_str().unwrap());
    let long = "x".repeat(1001);
    assert_problem(app.post_json(&token, &path, json!({"note": long})).await, 422).await;
    let res = app
        .post_json(
            &token,
            &path,
            json!({"note": "called the patient; safety plan in place"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let acked: Value = res.json().await.unwrap();
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["note"], "called the patient; safety plan in place");
    assert!(acked["acknowledged_at"].is_string() && acked["acknowledged_by"].is_string());
    let again: Value = app
        .post_json(&token, &path, json!({"note": "second"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["note"], "called the patient; safety plan in place",
        "acknowledging twice is harmless"
    );
    assert_eq!(again["acknowledged_at"], acked["acknowledged_at"]);
    let one = app
        .get_json(&token, &format!("/v1/alerts/{}", alert["id"].as_str().unwrap()))
        .await;
    assert_eq!(one["status"], "acknowledged");
    let events = app.get_json(&token, "/v1/audit-events?limit=500").await;
    let actions = item_strings(&events, "action");
    assert_eq!(actions.iter().filter(|a| *a == "alert.acknowledged").count(), 2);
    assert!(
        !events.to_string().contains("safety plan"),
        "the note is not copied into the audit log"
    );
}

#[tokio::test]
async fn a_safety_flag_on_an_unscored_response_is_kept_alerted_and_scored_alike() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let created = post(
        &app,
        &token,
        json!({"instrument": "phq-9", "patient": "p-unscored", "administered_at": "2026-01-05T10:00:00Z",
        "answers": phq9_unscored_with_item_9(3)}),
    )
    .await;
    assert!(created["score"].is_null(), "{created}");
    assert!(
        created["score_error"].as_str().unwrap().contains("missing"),
        "{created}"
    );
    assert_eq!(
        created["score_flags"],
        json!(["item_9_positive"]),
        "the 201 carries the flag"
    );
    let read = app
        .get_json(&token, &format!("/v1/responses/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        read["score_flags"],
        json!(["item_9_positive"]),
        "stored with the response"
    );

    let alerts = wait_for(&app, &token, "kind=item_flag", |a| a.len() == 1).await;
    assert_eq!(alerts[0]["response_id"], created["id"]);
    assert_eq!(
        alerts[0]["detail"],
        json!({"flag": "item_9_positive", "item": "9", "answer": 3})
    );

    // Scoring without storing says the same.
    let res = app
        .post_json(
            &token,
            "/v1/score",
            json!({"instrument": "phq-9", "answers": phq9_unscored_with_item_9(3)}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let scored: Value = res.json().await.unwrap();
    assert!(scored["score"].is_null());
    assert_eq!(scored["score_flags"], json!(["item_9_positive"]));

    // Item 9 answered 0 and another item skipped: unscored, no flag, no alert.
    let quiet = post(
        &app,
        &token,
        json!({"instrument": "phq-9", "patient": "p-quiet", "administered_at": "2026-01-05T10:00:00Z",
        "answers": phq9_unscored_with_item_9(0)}),
    )
    .await;
    assert_eq!(quiet["score_flags"], json!([]));
    // A scored response after it in the same series keeps the flag's alert.
    post(
        &app,
        &token,
        json!({"instrument": "phq-9", "patient": "p-unscored", "administered_at": "2026-01-12T10:00:00Z",
        "answers": phq9_answers(5, 0)}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = wait_for(&app, &token, "kind=item_flag", |_| true).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["patient"], "p-unscored");
}

#[tokio::test]
async fn below_cutoff_runs_and_deteriorations_are_raised_and_resolved() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let srs = |day: u32, v: f64| {
        json!({"instrument": "srs", "patient": "p-c", "administered_at": format!("2026-01-{day:02}T10:00:00Z"),
            "answers": {"1": v, "2": v, "3": v, "4": v}})
    };
    post(&app, &token, srs(1, 9.5)).await;
    post(&app, &token, srs(8, 8.0)).await; // 32 < 36
    post(&app, &token, srs(15, 8.5)).await; // still below: the same run
    let open = wait_for(&app, &token, "kind=below_cutoff", |a| a.len() == 1).await;
    assert_eq!(
        open[0]["detail"],
        json!({"total": 32.0, "cutoff": 36.0, "comparator": "lt"})
    );
    post(&app, &token, srs(22, 9.5)).await;
    wait_for(&app, &token, "status=resolved&kind=below_cutoff", |a| a.len() == 1).await;

    // PHQ-9 5 -> 12 is a reliable deterioration (7 >= 6 points, lower is better); 12 -> 6 ends it.
    let phq = |day: u32, total: u32| {
        json!({"instrument": "phq-9", "patient": "p-d", "administered_at": format!("2026-01-{day:02}T10:00:00Z"),
            "answers": phq9_answers(total, 0)})
    };
    post(&app, &token, phq(1, 5)).await;
    post(&app, &token, phq(8, 12)).await;
    let det = wait_for(&app, &token, "kind=deterioration", |a| a.len() == 1).await;
    assert_eq!(
        det[0]["detail"],
        json!({"baseline": 5.0, "latest": 12.0, "change": 7.0, "rule": "points"})
    );
    post(&app, &token, phq(15, 6)).await;
    wait_for(&app, &token, "status=resolved&kind=deterioration", |a| a.len() == 1).await;
}

async fn db(app: &TestApp) -> AsyncPgConnection {
    AsyncPgConnection::establish(&app.database_url).await.unwrap()
}

#[tokio::test]
async fn evaluating_an_event_twice_changes_nothing_and_tenants_see_only_their_own() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for (day, total) in [(1, 48), (8, 48), (15, 48), (22, 12)] {
        wai(&app, &token, "p-i", day, total).await;
    }
    let before = wait_for(&app, &token, "status=all", |a| a.len() == 1).await;
    // The same event again (as after a crash between evaluation and commit).
    let mut conn = db(&app).await;
    #[derive(diesel::QueryableByName, PartialEq, Debug)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        xmin: String,
    }
    // The row version of the alert (a rewrite, even to the same values, makes a new one).
    let version = async |conn: &mut AsyncPgConnection| -> Vec<Version> {
        diesel::sql_query("SELECT xmin::text AS xmin FROM alerts")
            .load(conn)
            .await
            .unwrap()
    };
    let written = version(&mut conn).await;
    diesel::sql_query(
        "INSERT INTO outbox_events (org_id, id, kind, response_id, patient, instrument_key, rater)
         SELECT org_id, gen_random_uuid(), kind, response_id, patient, instrument_key, rater
         FROM outbox_events ORDER BY seq DESC LIMIT 1",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Pending {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let started = Instant::now();
    loop {
        let p: Pending = diesel::sql_query("SELECT count(*) AS n FROM outbox_events WHERE processed_at IS NULL")
            .get_result(&mut conn)
            .await
            .unwrap();
        if p.n == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = app.get_json(&token, "/v1/alerts?status=all").await;
    assert_eq!(
        after["items"].as_array().unwrap(),
        &before,
        "the second evaluation changed nothing"
    );
    assert_eq!(
        version(&mut conn).await,
        written,
        "an alert already as the series says is not written again"
    );

    let (_, other) = app.create_org("other-alerts").await;
    assert!(
        app.get_json(&other, "/v1/alerts?status=all").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let foreign = app
        .get(&other, &format!("/v1/alerts/{}", before[0]["id"].as_str().unwrap()))
        .await;
    assert_problem(foreign, 404).await;
}

#[tokio::test]
async fn an_amendment_that_moves_a_response_to_another_series_reevaluates_the_old_one() {
    // v3: an amendment keeps its subject and instrument (another instrument is 422); it
    // may change the rater, which moves the response to another series.
    let (app, token) = crate::analytics::app_with_instruments().await;
    let qr = |status: &str, key: &str, author: Option<&str>, answers: &[f64]| {
        let mut qr = json!({"resourceType": "QuestionnaireResponse", "status": status,
            "questionnaire": format!("{}/fhir/r4/Questionnaire/{key}|1", app.address),
            "identifier": {"system": "urn:ehr", "value": "enc-move"},
            "subject": {"reference": "Patient/p-m"}, "authored": "2026-01-05T10:00:00Z",
            "item": answers.iter().enumerate()
                .map(|(i, v)| json!({"linkId": (i + 1).to_string(), "answer": [{"valueDecimal": v}]}))
                .collect::<Vec<_>>()});
        if let Some(author) = author {
            qr["author"] = json!({"reference": author});
        }
        qr
    };
    let post = |body: Value| {
        app.http
            .post(app.url("/fhir/r4/QuestionnaireResponse"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };
    assert_eq!(
        post(qr("completed", "ten", None, &[2.0; 10])).await.unwrap().status(),
        201
    );
    wait_for(&app, &token, "kind=below_cutoff", |a| a.len() == 1).await;
    // Into another instrument: refused, and the alert stays.
    let moved = post(qr("amended", "phq-9", None, &[0.0; 9])).await.unwrap();
    assert_eq!(moved.status(), 422);
    let outcome: Value = moved.json().await.unwrap();
    assert!(
        outcome.to_string().contains("QuestionnaireResponse.questionnaire"),
        "{outcome}"
    );
    // Rated by the clinician instead: the patient-rated series no longer has the point.
    let by_clinician = post(qr("amended", "ten", Some("Practitioner/dr-m"), &[2.0; 10]))
        .await
        .unwrap();
    assert_eq!(by_clinician.status(), 200);
    let withdrawn = wait_for(&app, &token, "status=withdrawn", |a| a.len() == 1).await;
    assert_eq!(withdrawn[0]["kind"], "below_cutoff");
    assert_eq!(withdrawn[0]["rater"], "patient");
}

/// Processed outbox events past `RAPPORT_EVENT_RETENTION_DAYS` are deleted by the outbox
/// workers (here: a second instance's, which prune when they start); recent processed
/// events and pending events of any age stay.
#[tokio::test]
async fn processed_outbox_events_past_the_retention_are_deleted_and_pending_ones_never() {
    let app = TestApp::spawn_with(|s| s.outbox_workers = 0).await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for day in [1, 8, 15] {
        wai(&app, &token, "p-prune", day, 48).await;
    }
    let mut conn = db(&app).await;
    // The first event processed long ago, the second processed just now, the third pending
    // for as long (nobody processes in this instance). Times as values: Citus takes no
    // `now()` in a CASE.
    #[derive(diesel::QueryableByName)]
    struct Event {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    let events: Vec<Event> = diesel::sql_query("SELECT id FROM outbox_events ORDER BY seq")
        .load(&mut conn)
        .await
        .unwrap();
    let (now, long_ago) = (chrono::Utc::now(), chrono::Utc::now() - chrono::Duration::days(40));
    for (event, created, processed) in [
        (&events[0], long_ago, Some(long_ago)),
        (&events[1], now, Some(now)),
        (&events[2], long_ago, None),
    ] {
        diesel::sql_query("UPDATE outbox_events SET created_at = $1, processed_at = $2 WHERE id = $3")
            .bind::<diesel::sql_types::Timestamptz, _>(created)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(processed)
            .bind::<diesel::sql_types::Uuid, _>(event.id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Kept {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        processed: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        old: bool,
    }
    let kept = async |conn: &mut AsyncPgConnection| -> Vec<Kept> {
        diesel::sql_query(
            "SELECT processed_at IS NOT NULL AS processed, created_at < now() - interval '1 day' AS old
             FROM outbox_events ORDER BY seq",
        )
        .load(conn)
        .await
        .unwrap()
    };
    assert_eq!(kept(&mut conn).await.len(), 3);

    // A second instance whose workers take 30 days as the retention: its first round prunes,
    // then processes the pending event.
    let url = app.database_url.clone();
    let worker = TestApp::spawn_with(|s| s.database_url = url).await;
    let started = Instant::now();
    loop {
        let now = kept(&mut conn).await;
        if now.iter().all(|k| k.processed) {
            assert_eq!(
                now,
                vec![
                    Kept {
                        processed: true,
                        old: false
                    },
                    Kept {
                        processed: true,
                        old: true
                    },
                ],
                "the old processed event is gone; the old pending one was kept and is processed now"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::mem::forget(worker); // the first instance drops the shared database
}
