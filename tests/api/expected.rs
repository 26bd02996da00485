//! The expected-response model ("not on track") against an independent fit: statsmodels OLS
//! (`scripts/expected_response_golden.py` wrote `tests/golden/expected_response.json`) on a
//! data set the test posts as PHQ-9 responses; then the refit rule, the refusals and the
//! `not_on_track` alerts.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use crate::builders::phq9_answers;
use crate::helpers::{TestApp, assert_problem};

fn golden() -> Value {
    serde_json::from_str(include_str!("../golden/expected_response.json")).unwrap()
}

fn close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (got.as_f64().unwrap_or(f64::NAN), want.as_f64().unwrap());
    assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{what}: {g} vs {w}");
}

/// Posts courses (`{patient, episode, totals}`) as PHQ-9 responses, one day apart, each
/// course starting on its own day; batches of 500.
async fn post_courses(app: &TestApp, token: &str, courses: &[Value]) {
    let mut items = Vec::new();
    for (c, course) in courses.iter().enumerate() {
        for (i, total) in course["totals"].as_array().unwrap().iter().enumerate() {
            let at = posted_at(c, i + 1);
            items.push(
                json!({"instrument": "phq-9", "patient": course["patient"], "episode": course["episode"],
                "administered_at": at.to_rfc3339(), "answers": phq9_answers(total.as_u64().unwrap() as u32, 0)}),
            );
        }
    }
    for chunk in items.chunks(500) {
        let res = app
            .post_json(token, "/v1/responses/batch", json!({"responses": chunk}))
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

/// When `post_courses` administered the total at position `t` of course `c`: courses start a
/// day apart, totals follow weekly (so one patient's two episodes interleave in time).
fn posted_at(c: usize, t: usize) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap() + TimeDelta::days(c as i64) + TimeDelta::weeks(t as i64 - 1)
}

/// Courses of `n` patients with totals from `make(i)`.
fn made(n: usize, prefix: &str, make: impl Fn(usize) -> Vec<u32>) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"patient": format!("{prefix}-{i:03}"), "episode": null, "totals": make(i)}))
        .collect()
}

async fn model(app: &TestApp, token: &str, query: &str) -> Value {
    app.get_json(token, &format!("/v1/instruments/phq-9/expected-response{query}"))
        .await
}

/// Every outbox event processed (the series' alerts are what the responses say).
async fn outbox_drained(app: &TestApp) {
    let mut conn = app.db().await;
    let started = Instant::now();
    loop {
        let pending = crate::helpers::count_rows(&mut conn, "outbox_events WHERE processed_at IS NULL").await;
        if pending == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{pending} outbox events still pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(30), "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_fit_its_curves_and_every_point_match_statsmodels() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let golden = golden();
    post_courses(&app, &admin, golden["courses"].as_array().unwrap()).await;
    outbox_drained(&app).await;

    let fitted = model(&app, &admin, "?refit=true").await;
    assert_eq!(fitted["status"], "fitted");
    assert_eq!(fitted["n_courses"], golden["n_courses"]);
    assert_eq!(fitted["n_points"], golden["n_points"]);
    assert_eq!(fitted["direction"], "lower_is_better");
    assert_eq!(fitted["z"], 1.2816);
    for name in ["intercept", "intake", "log_t", "intake_log_t"] {
        close(&fitted["coefficients"][name], &golden["coefficients"][name], name);
    }
    close(&fitted["residual_sd"], &golden["residual_sd"], "residual_sd");
    let curves = fitted["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 3);
    for (got, want) in curves.iter().zip(golden["curves"].as_array().unwrap()) {
        assert_eq!(got["percentile"], want["percentile"]);
        close(&got["intake"], &want["intake"], "percentile intake");
        for (g, w) in got["points"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["points"].as_array().unwrap())
        {
            assert_eq!(g["t"], w["t"]);
            close(&g["expected"], &w["expected"], "curve expected");
            close(&g["bound"], &w["bound"], "curve bound");
        }
    }
    // Reading it again gives the same numbers; refitting the same data too.
    assert_eq!(model(&app, &admin, "").await["coefficients"], fitted["coefficients"]);
    assert_eq!(
        model(&app, &admin, "?refit=true").await["coefficients"],
        fitted["coefficients"]
    );

    // Every point of every course in the trends, t counted per episode (patient 00's two
    // episodes interleave in time), each found by its date.
    let courses = golden["courses"].as_array().unwrap();
    let mut checked = 0;
    let mut not_on_track_runs = 0;
    let mut in_run: std::collections::HashMap<(String, String), bool> = std::collections::HashMap::new();
    let mut trends: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    for w in golden["points"].as_array().unwrap() {
        let patient = w["patient"].as_str().unwrap().to_string();
        if !trends.contains_key(&patient) {
            let trend = app
                .get_json(&admin, &format!("/v1/patients/{patient}/trends?instrument=phq-9"))
                .await;
            let with = trend["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| !p["expected"].is_null())
                .count();
            let want = golden["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["patient"] == patient.as_str())
                .count();
            assert_eq!(with, want, "{patient}: points with an expectation");
            let last = trend["points"].as_array().unwrap().last().unwrap()["expected"]["on_track"].clone();
            assert_eq!(trend["summary"]["on_track"], last);
            trends.insert(patient.clone(), trend);
        }
        let c = courses
            .iter()
            .position(|c| c["patient"] == w["patient"] && c["episode"] == w["episode"])
            .unwrap();
        let at = posted_at(c, w["t"].as_u64().unwrap() as usize);
        let g = trends[&patient]["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["administered_at"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    == Some(at.into())
            })
            .unwrap_or_else(|| panic!("{patient} has no point at {at}"));
        assert_eq!(g["expected"]["t"], w["t"], "{patient}");
        assert_eq!(g["total"].as_f64(), w["total"].as_f64());
        close(&g["expected"]["expected"], &w["expected"], "point expected");
        close(&g["expected"]["bound"], &w["bound"], "point bound");
        assert_eq!(g["expected"]["on_track"], w["on_track"], "{patient} t={}", w["t"]);
        let run = in_run
            .entry((patient, w["episode"].as_str().unwrap().to_string()))
            .or_insert(false);
        if w["on_track"] == false && !*run {
            not_on_track_runs += 1;
        }
        *run = w["on_track"] == false;
        checked += 1;
    }
    assert_eq!(checked, golden["points"].as_array().unwrap().len());
    // A trend filtered by date or episode counts t on the whole course all the same.
    for (patient, filter) in [
        ("p-exp-05", "&from=2025-01-20T00:00:00Z".to_string()),
        ("p-exp-00", "&episode=e2".to_string()),
    ] {
        let whole = &trends[patient];
        let part = app
            .get_json(
                &admin,
                &format!("/v1/patients/{patient}/trends?instrument=phq-9{filter}"),
            )
            .await;
        let part = part["points"].as_array().unwrap();
        assert!(
            !part.is_empty() && part.len() < whole["points"].as_array().unwrap().len(),
            "{patient}{filter}"
        );
        for p in part {
            let same = whole["points"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["response_id"] == p["response_id"])
                .unwrap();
            assert_eq!(p["expected"], same["expected"], "{patient}{filter}");
        }
    }
    // One not_on_track alert per run beyond the bound, raised by the refit's re-evaluation.
    let alerts = app
        .get_json(&admin, "/v1/alerts?kind=not_on_track&status=all&limit=500")
        .await;
    let alerts = alerts["items"].as_array().unwrap();
    assert_eq!(alerts.len(), not_on_track_runs, "{alerts:?}");
    assert!(not_on_track_runs > 0, "the data set has patients not on track");
    let a = &alerts[0];
    // Re-derived by the last refit: its detail names the model in force.
    assert_eq!(a["detail"]["fitted_at"], model(&app, &admin, "").await["fitted_at"]);
    assert!(a["detail"]["total"].as_f64().unwrap() > a["detail"]["bound"].as_f64().unwrap());
}

#[tokio::test]
async fn fewer_than_thirty_courses_or_one_intake_give_no_model_and_no_alerts() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let unfitted = model(&app, &admin, "").await;
    assert_eq!(
        (unfitted["status"].as_str(), unfitted["n_courses"].as_i64()),
        (Some("insufficient_data"), Some(0))
    );
    // 29 courses (and one of two points, which is no course).
    let mut courses = made(29, "few", |i| vec![12 + (i % 9) as u32, 10, 9, 8]);
    courses.extend(made(1, "short", |_| vec![20, 4]));
    post_courses(&app, &admin, &courses).await;
    let few = model(&app, &admin, "?refit=true").await;
    assert_eq!(few["status"], "insufficient_data");
    assert_eq!(few["n_courses"], 29);
    assert!(few["coefficients"].is_null() && few["residual_sd"].is_null() && few["curves"].is_null());
    let trend = app
        .get_json(&admin, "/v1/patients/few-000/trends?instrument=phq-9")
        .await;
    assert!(
        trend["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["expected"].is_null())
    );
    let svg = app
        .get(&admin, "/v1/patients/few-000/trends.svg?instrument=phq-9")
        .await
        .text()
        .await
        .unwrap();
    assert!(!svg.contains("expected-band"));
    assert!(trend["summary"]["on_track"].is_null());

    // 40 courses, every intake 15: rank below 4.
    let same = TestApp::spawn().await;
    let same_admin = same.admin_token().await;
    post_courses(
        &same,
        &same_admin,
        &made(40, "same", |i| vec![15, 12 - (i % 3) as u32, 11, 9]),
    )
    .await;
    let degenerate = model(&same, &same_admin, "?refit=true").await;
    assert_eq!(degenerate["status"], "degenerate");
    assert!(degenerate["coefficients"].is_null() && degenerate["curves"].is_null());
}

#[tokio::test]
async fn the_endpoint_checks_its_parameters_and_scopes() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let reader = app.token(&["analytics:read"]).await;
    let base = "/v1/instruments/phq-9/expected-response";
    assert_problem(app.get(&reader, &format!("{base}?rater=nobody")).await, 400).await;
    assert_problem(app.get(&reader, &format!("{base}?refit=yes")).await, 400).await;
    assert_problem(app.get(&reader, &format!("{base}?refit=true")).await, 403).await;
    assert_problem(app.get(&reader, "/v1/instruments/no-such/expected-response").await, 404).await;
    let writer = app.token(&["responses:write"]).await;
    assert_problem(app.get(&writer, base).await, 403).await;
    assert_eq!(app.get(&reader, &format!("{base}?rater=clinician")).await.status(), 200);
    // Another organisation's model is its own.
    post_courses(
        &app,
        &admin,
        &made(35, "org-a", |i| vec![10 + (i % 12) as u32, 9 + (i % 5) as u32, 7, 6]),
    )
    .await;
    assert_eq!(model(&app, &admin, "?refit=true").await["status"], "fitted");
    let (_, other) = app.create_org("expected-other").await;
    let theirs = model(&app, &other, "").await;
    assert_eq!(
        (theirs["status"].as_str(), theirs["n_courses"].as_i64()),
        (Some("insufficient_data"), Some(0))
    );
    let audit = app.get_json(&admin, "/v1/audit-events?limit=50").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "expected_model.refitted")
    );
}

#[tokio::test]
async fn the_refit_rule_thirty_courses_then_ten_percent_or_a_day() {
    let app = TestApp::spawn_with(|s| s.expected_check = Duration::from_secs(1)).await;
    let admin = app.admin_token().await;
    let courses = |from: usize, n: usize| {
        made(n, &format!("rule{from}"), move |i| {
            vec![
                8 + ((i + from) % 15) as u32,
                7 + ((i * 7) % 6) as u32,
                6 + (i % 4) as u32,
                5,
            ]
        })
    };
    post_courses(&app, &admin, &courses(0, 30)).await;
    wait_until("the first fit at 30 courses", async || {
        model(&app, &admin, "").await["status"] == "fitted"
    })
    .await;
    let first = model(&app, &admin, "").await;
    assert_eq!(first["n_courses"], 30);
    // Two more (under 10%): no refit for a day.
    post_courses(&app, &admin, &courses(100, 2)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(model(&app, &admin, "").await["fitted_at"], first["fitted_at"]);
    // The day has passed (the mark made 25 hours ago): refitted.
    let mut conn = app.db().await;
    use diesel_async::RunQueryDsl as _;
    diesel::sql_query(
        "UPDATE expected_models SET dirty_since = now() - interval '25 hours' WHERE dirty_since IS NOT NULL",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    wait_until("a refit a day after the change", async || {
        model(&app, &admin, "").await["n_courses"] == 32
    })
    .await;
    let second = model(&app, &admin, "").await;
    assert_ne!(second["fitted_at"], first["fitted_at"]);
    // Four more (12.5%): refitted at once.
    post_courses(&app, &admin, &courses(200, 4)).await;
    wait_until("a refit on 10% more courses", async || {
        model(&app, &admin, "").await["n_courses"] == 36
    })
    .await;
}

#[tokio::test]
async fn not_on_track_alerts_follow_the_model_and_are_withdrawn_without_one() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    // A webhook subscriber hears of alerts the refit raises (nobody listens at its URL).
    let hook = app
        .post_json(
            &admin,
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["alert.created"]}),
        )
        .await;
    assert_eq!(hook.status(), 201);
    // 34 courses that improve, and one that does not.
    let mut courses = made(34, "track", |i| {
        vec![14 + (i % 8) as u32, 12 + (i % 3) as u32, 10, 8, 7]
    });
    courses.push(json!({"patient": "stuck", "episode": null, "totals": [16, 17, 19, 20, 21]}));
    post_courses(&app, &admin, &courses).await;
    outbox_drained(&app).await;
    assert_eq!(model(&app, &admin, "?refit=true").await["status"], "fitted");
    let open = app.get_json(&admin, "/v1/alerts?kind=not_on_track&patient=stuck").await;
    let items = open["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "one run from its first point beyond the bound: {items:?}"
    );
    let alert_id = items[0]["id"].as_str().unwrap().to_string();
    let mut conn = app.db().await;
    let announced = crate::helpers::count_rows(
        &mut conn,
        "webhook_deliveries WHERE body::jsonb -> 'data' ->> 'kind' = 'not_on_track'",
    )
    .await;
    assert_eq!(announced, 1, "the refit's alert reached the webhook queue");
    // The chart draws the expected line and its band.
    let svg = app
        .get(&admin, "/v1/patients/stuck/trends.svg?instrument=phq-9")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        svg.contains(r#"id="expected-band""#) && svg.contains(r#"id="expected""#),
        "{svg}"
    );
    let detail = &items[0]["detail"];
    assert!(detail["t"].as_u64().unwrap() >= 2);
    assert!(detail["total"].as_f64().unwrap() > detail["bound"].as_f64().unwrap());
    // Voiding the total that raised it withdraws it; the course's next total beyond the bound
    // (now one position earlier) raises the run again (self-healing, by the outbox evaluation).
    let raising = items[0]["response_id"].as_str().unwrap().to_string();
    let res = app
        .post_json(
            &admin,
            &format!("/v1/responses/{raising}/void"),
            json!({"reason": "entered in error"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    wait_until("the voided point's alert withdrawn", async || {
        app.get_json(&admin, &format!("/v1/alerts/{alert_id}")).await["status"] == "withdrawn"
    })
    .await;
    let again = crate::alerts::wait_for(&app, &admin, "kind=not_on_track&patient=stuck", |items| {
        !items.is_empty()
    })
    .await;
    assert_ne!(again[0]["id"].as_str().unwrap(), alert_id);
    let alert_id = again[0]["id"].as_str().unwrap().to_string();
    // A later total within the bound resolves it, through the usual outbox evaluation.
    let back = json!({"instrument": "phq-9", "patient": "stuck", "administered_at": "2025-12-01T09:00:00Z",
        "answers": phq9_answers(3, 0)});
    assert_eq!(app.post_json(&admin, "/v1/responses", back).await.status(), 201);
    wait_until("the run resolved", async || {
        app.get_json(&admin, &format!("/v1/alerts/{alert_id}")).await["status"] == "resolved"
    })
    .await;
    // Without a model in force (patients erased below 30 courses), open ones are withdrawn.
    let again = json!({"instrument": "phq-9", "patient": "stuck", "administered_at": "2025-12-08T09:00:00Z",
        "answers": phq9_answers(24, 0)});
    assert_eq!(app.post_json(&admin, "/v1/responses", again).await.status(), 201);
    let reopened = crate::alerts::wait_for(&app, &admin, "kind=not_on_track&patient=stuck", |items| {
        !items.is_empty()
    })
    .await;
    let reopened_id = reopened[0]["id"].as_str().unwrap().to_string();
    for i in 0..6 {
        let patient = format!("track-{i:03}");
        let res = app
            .post_json(
                &admin,
                &format!("/v1/patients/{patient}/erase"),
                json!({"confirm": patient}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(model(&app, &admin, "?refit=true").await["status"], "insufficient_data");
    assert_eq!(
        app.get_json(&admin, &format!("/v1/alerts/{reopened_id}")).await["status"],
        "withdrawn"
    );
}
