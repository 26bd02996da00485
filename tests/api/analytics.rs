use serde_json::{Value, json};

use crate::builders::wai_sr_answers;
use crate::helpers::{TestApp, assert_problem, item_strings};

/// Ten items on 1-5, no reverse keying: the total is the sum of the answers.
fn ten_items(key: &str, norms: Value, rupture: Value) -> Value {
    json!({
        "key": key, "title": key, "raters": ["patient", "clinician"],
        "scale": {"min": 1, "max": 5, "step": 1},
        "items": (1..=10).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>(),
        "scoring": {"method": "sum", "missing": {"max_total": 1}},
        "interpretation": {"cutoff": {"value": 30, "comparator": "lt"}},
        "norms": norms, "rupture": rupture
    })
}

fn answers_for(total: u32) -> Value {
    let (base, extra) = (total / 10, total % 10);
    (1..=10u32)
        .map(|i| (i.to_string(), json!(base + u32::from(i <= extra))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A server with the two ten-item test instruments published, and a token to use them.
pub async fn app_with_instruments() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let token = app
        .token(&["responses:write", "responses:read", "instruments:write"])
        .await;
    setup(&app, &token).await;
    (app, token)
}

async fn setup(app: &TestApp, token: &str) {
    let reliable = ten_items(
        "ten",
        json!({"sd": 8.0, "reliability": 0.9}),
        json!({"rule": "reliable_drop", "k": 2, "repair_window": 3}),
    );
    let sd_drop = ten_items(
        "ten-sd",
        json!({}),
        json!({"rule": "sd_drop", "k": 2, "repair_window": 3}),
    );
    for definition in [reliable, sd_drop] {
        let key = definition["key"].as_str().unwrap().to_string();
        assert_eq!(app.post_json(token, "/v1/instruments", definition).await.status(), 201);
        let res = app
            .post_json(token, &format!("/v1/instruments/{key}/versions/1/publish"), json!({}))
            .await;
        assert_eq!(res.status(), 200);
    }
}

struct Post<'a> {
    instrument: &'a str,
    patient: &'a str,
    clinician: &'a str,
    total: u32,
    week: i64,
    session: Option<u32>,
}

async fn post(app: &TestApp, token: &str, p: Post<'_>) -> String {
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z").unwrap() + chrono::Duration::weeks(p.week);
    let body = json!({"instrument": p.instrument, "patient": p.patient, "clinician": p.clinician,
        "administered_at": at.to_rfc3339(), "session": p.session, "answers": answers_for(p.total)});
    let res = app.post_json(token, "/v1/responses", body).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn series(app: &TestApp, token: &str, instrument: &str, patient: &str, totals: &[u32]) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, total) in totals.iter().enumerate() {
        let p = Post {
            instrument,
            patient,
            clinician: "dr-a",
            total: *total,
            week: i as i64,
            session: Some(i as u32 + 1),
        };
        ids.push(post(app, token, p).await);
    }
    ids
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-6
}

#[tokio::test]
async fn trend_with_a_reliable_drop_repaired_inside_the_window() {
    let (app, token) = app_with_instruments().await;
    let ids = series(&app, &token, "ten", "pa", &[40, 48, 36, 42, 49]).await;
    let trend: Value = app.get_json(&token, "/v1/patients/pa/trends?instrument=ten").await;
    assert_eq!(trend["patient"], "pa");
    assert_eq!(trend["rater"], "patient");
    let s = &trend["summary"];
    assert_eq!(s["n"], 5);
    assert_eq!(
        (s["baseline"].as_f64(), s["latest"].as_f64(), s["change"].as_f64()),
        (Some(40.0), Some(49.0), Some(9.0))
    );
    assert!(close(&s["slope_per_session"], 1.2));
    assert!(close(&s["slope_per_week"], 1.2));
    // S_diff = 8 x sqrt(0.2) = 3.5777; RCI = 9 / 3.5777 = 2.5156.
    assert!(close(&s["rci"], 9.0 / (8.0 * 0.2f64.sqrt())));
    assert_eq!(s["reliable_change"], "improved");
    assert_eq!(s["norms_source"], "instrument");
    assert_eq!(s["below_cutoff"], 0);
    let ruptures = s["ruptures"].as_array().unwrap();
    assert_eq!(ruptures.len(), 1);
    let r = &ruptures[0];
    assert_eq!(
        (r["from"].as_f64(), r["to"].as_f64(), r["drop"].as_f64()),
        (Some(48.0), Some(36.0), Some(12.0))
    );
    assert_eq!(r["rule"], "reliable_drop");
    assert_eq!(r["response_id"], ids[2].as_str());
    assert_eq!(r["previous_response_id"], ids[1].as_str());
    assert_eq!(r["repaired"], true);
    assert_eq!(r["repaired_by_response_id"], ids[4].as_str());
    let points = trend["points"].as_array().unwrap();
    assert_eq!(points[0]["response_id"], ids[0].as_str());
    assert_eq!(points[0]["clinician"], "dr-a");
    assert_eq!(points[0]["session"], 1);
    assert_eq!(points[0]["pomp"], 75.0); // 100 x (40 - 10) / 40

    // Repaired outside the window.
    series(&app, &token, "ten", "pb", &[48, 36, 40, 41, 42, 48]).await;
    let trend: Value = app.get_json(&token, "/v1/patients/pb/trends?instrument=ten").await;
    let ruptures = trend["summary"]["ruptures"].as_array().unwrap();
    assert_eq!(ruptures.len(), 1);
    assert_eq!(ruptures[0]["repaired"], false);
    assert!(ruptures[0]["repaired_by_response_id"].is_null());

    // Filters.
    let from: Value = app
        .get_json(
            &token,
            "/v1/patients/pa/trends?instrument=ten&from=2026-01-19T00:00:00Z",
        )
        .await;
    assert_eq!(from["summary"]["n"], 3);
    let other: Value = app
        .get_json(&token, "/v1/patients/pa/trends?instrument=ten&clinician=dr-z")
        .await;
    assert_eq!(other["summary"]["n"], 0);
    assert!(other["summary"]["baseline"].is_null() && other["summary"]["slope_per_week"].is_null());
    assert_problem(app.get(&token, "/v1/patients/nobody/trends?instrument=ten").await, 404).await;
    assert_problem(app.get(&token, "/v1/patients/pa/trends").await, 400).await;
    assert_problem(
        app.get(&token, "/v1/patients/pa/trends?instrument=ten&rater=robot")
            .await,
        400,
    )
    .await;
}

#[tokio::test]
async fn sd_drop_needs_three_earlier_points_and_ties_keep_creation_order() {
    let (app, token) = app_with_instruments().await;
    series(&app, &token, "ten-sd", "two-earlier", &[40, 42, 30]).await;
    let trend: Value = app
        .get_json(&token, "/v1/patients/two-earlier/trends?instrument=ten-sd")
        .await;
    assert!(trend["summary"]["ruptures"].as_array().unwrap().is_empty());
    assert!(trend["summary"]["rci"].is_null() && trend["summary"]["reliable_change"].is_null());
    assert!(trend["summary"]["norms_source"].is_null());

    series(&app, &token, "ten-sd", "three-earlier", &[40, 42, 41, 38]).await;
    let trend: Value = app
        .get_json(&token, "/v1/patients/three-earlier/trends?instrument=ten-sd")
        .await;
    let ruptures = trend["summary"]["ruptures"].as_array().unwrap();
    assert_eq!(ruptures.len(), 1, "earlier 40, 42, 41 have SD 1; a drop of 3 >= 2 x 1");
    assert_eq!(ruptures[0]["rule"], "sd_drop");

    // Same administered_at: creation order decides.
    let first = post(
        &app,
        &token,
        Post {
            instrument: "ten",
            patient: "tie",
            clinician: "dr-a",
            total: 44,
            week: 0,
            session: Some(1),
        },
    )
    .await;
    let second = post(
        &app,
        &token,
        Post {
            instrument: "ten",
            patient: "tie",
            clinician: "dr-a",
            total: 30,
            week: 0,
            session: Some(2),
        },
    )
    .await;
    let trend: Value = app.get_json(&token, "/v1/patients/tie/trends?instrument=ten").await;
    let order: Vec<&str> = trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["response_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec![first.as_str(), second.as_str()]);
    assert_eq!(trend["summary"]["ruptures"][0]["response_id"], second.as_str());
    assert!(trend["summary"]["slope_per_week"].is_null(), "no variance in time");
    assert_eq!(trend["summary"]["slope_per_session"], -14.0);
}

#[tokio::test]
async fn voided_excluded_prorated_included_and_slopes_null_when_undefined() {
    let (app, token) = app_with_instruments().await;
    let ids = series(&app, &token, "ten", "pv", &[40, 20, 44]).await;
    app.post_json(
        &token,
        &format!("/v1/responses/{}/void", ids[1]),
        json!({"reason": "wrong patient"}),
    )
    .await;
    // A prorated point: item 10 missing, nine items of 4 -> 36 / 9 x 10 = 40.
    let mut answers = answers_for(40);
    answers.as_object_mut().unwrap().remove("10");
    let body =
        json!({"instrument": "ten", "patient": "pv", "administered_at": "2026-03-01T10:00:00Z", "answers": answers});
    assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
    let trend: Value = app.get_json(&token, "/v1/patients/pv/trends?instrument=ten").await;
    let totals: Vec<f64> = trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total"].as_f64().unwrap())
        .collect();
    assert_eq!(totals, vec![40.0, 44.0, 40.0]);
    assert!(
        trend["summary"]["slope_per_session"].is_null(),
        "one point has no session number"
    );
    assert!(trend["summary"]["slope_per_week"].is_number());
    assert!(
        trend["summary"]["ruptures"].as_array().unwrap().is_empty(),
        "the voided drop is gone"
    );

    series(&app, &token, "ten", "single", &[25]).await;
    let trend: Value = app.get_json(&token, "/v1/patients/single/trends?instrument=ten").await;
    assert!(trend["summary"]["slope_per_session"].is_null() && trend["summary"]["slope_per_week"].is_null());
    assert_eq!(trend["summary"]["below_cutoff"], 1);
    assert_eq!(trend["summary"]["rci"], 0.0);
    assert_eq!(trend["summary"]["reliable_change"], "unchanged");
}

/// Patient i's answers: a level of 1-4 plus noise on some items, so alpha is defined.
fn norm_answers(i: usize) -> Value {
    let level = 1 + (i % 4) as u32;
    (1..=10usize)
        .map(|j| (j.to_string(), json!(level + u32::from((i * 7 + j).is_multiple_of(3)))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn expected_norms(patients: usize) -> (f64, f64) {
    let rows: Vec<Vec<f64>> = (0..patients)
        .map(|i| {
            (1..=10)
                .map(|j| norm_answers(i)[j.to_string()].as_f64().unwrap())
                .collect()
        })
        .collect();
    let var = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
    };
    let totals: Vec<f64> = rows.iter().map(|r| r.iter().sum()).collect();
    let item_var: f64 = (0..10)
        .map(|j| var(&rows.iter().map(|r| r[j]).collect::<Vec<_>>()))
        .sum();
    (var(&totals).sqrt(), 10.0 / 9.0 * (1.0 - item_var / var(&totals)))
}

#[tokio::test]
async fn organisation_norms_arrive_with_the_thirtieth_patient() {
    let (app, token) = app_with_instruments().await;
    let item = |i: usize| json!({"instrument": "ten-sd", "patient": format!("n-{i}"), "administered_at": "2026-02-01T10:00:00Z", "answers": norm_answers(i)});
    let batch: Vec<Value> = (0..29).map(item).collect();
    let res: Value = app
        .post_json(&token, "/v1/responses/batch", json!({"responses": batch}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        res["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "created")
    );
    // A later response of patient 0 does not count: only first responses do.
    let later = json!({"instrument": "ten-sd", "patient": "n-0", "administered_at": "2026-02-08T10:00:00Z", "answers": answers_for(50)});
    assert_eq!(app.post_json(&token, "/v1/responses", later).await.status(), 201);

    let norms: Value = app.get_json(&token, "/v1/instruments/ten-sd/versions/1/norms").await;
    assert_eq!(norms["n"], 29);
    assert!(norms["source"].is_null() && norms["sd"].is_null() && norms["reliability"].is_null());
    let trend: Value = app.get_json(&token, "/v1/patients/n-0/trends?instrument=ten-sd").await;
    assert!(trend["summary"]["rci"].is_null());

    assert_eq!(app.post_json(&token, "/v1/responses", item(29)).await.status(), 201);
    let norms: Value = app
        .get_json(&token, "/v1/instruments/ten-sd/versions/1/norms?rater=patient")
        .await;
    let (sd, alpha) = expected_norms(30);
    assert_eq!(norms["n"], 30);
    assert_eq!(norms["source"], "organisation");
    assert!(close(&norms["sd"], sd), "{norms} vs sd {sd}");
    assert!(close(&norms["reliability"], alpha), "{norms} vs alpha {alpha}");
    let trend: Value = app.get_json(&token, "/v1/patients/n-0/trends?instrument=ten-sd").await;
    assert_eq!(trend["summary"]["norms_source"], "organisation");
    let baseline = trend["summary"]["baseline"].as_f64().unwrap();
    let expected_rci = (50.0 - baseline) / (sd * (2.0 * (1.0 - alpha)).sqrt());
    assert!(close(&trend["summary"]["rci"], expected_rci));

    // Instrument norms win when the version has them; a clinician rater has no data.
    let norms: Value = app.get_json(&token, "/v1/instruments/ten/versions/1/norms").await;
    assert_eq!(
        (
            norms["source"].as_str(),
            norms["sd"].as_f64(),
            norms["reliability"].as_f64()
        ),
        (Some("instrument"), Some(8.0), Some(0.9))
    );
    let norms: Value = app
        .get_json(&token, "/v1/instruments/ten-sd/versions/1/norms?rater=clinician")
        .await;
    assert_eq!(norms["n"], 0);
    assert_problem(app.get(&token, "/v1/instruments/ten-sd/versions/9/norms").await, 404).await;
    let wai: Value = app.get_json(&token, "/v1/instruments/wai-sr/versions/1/norms").await;
    assert!(wai["source"].is_null());
}

#[tokio::test]
async fn clinician_summaries_and_the_min_patients_floor() {
    let (app, token) = app_with_instruments().await;
    // dr-b: patient 1 totals 40 (session 1), 44 (session 3); patient 2 total 28 (session 3).
    for (patient, total, week, session) in [("b1", 40, 0, 1), ("b1", 44, 1, 3), ("b2", 28, 0, 3)] {
        post(
            &app,
            &token,
            Post {
                instrument: "ten",
                patient,
                clinician: "dr-b",
                total,
                week,
                session: Some(session),
            },
        )
        .await;
    }
    // dr-a: five patients; p0 has a repaired reliable drop.
    series(&app, &token, "ten", "a0", &[40, 48, 36, 49]).await;
    for i in 1..5 {
        series(&app, &token, "ten", &format!("a{i}"), &[30 + i, 31 + i]).await;
    }
    let s: Value = app.get_json(&token, "/v1/clinicians/dr-b/summary?instrument=ten").await;
    assert_eq!(
        (s["clinician"].as_str(), s["patients"].as_u64(), s["responses"].as_u64()),
        (Some("dr-b"), Some(2), Some(3))
    );
    assert!(close(&s["mean"], 35.0)); // per-patient means 42 and 28
    assert!(close(&s["sd"], 98f64.sqrt()));
    assert_eq!((s["min"].as_f64(), s["max"].as_f64()), (Some(28.0), Some(42.0)));
    assert!(close(&s["share_below_cutoff"], 1.0 / 3.0));
    assert!(close(&s["session3_mean"], 36.0));
    assert_eq!(s["ruptures"], 0);
    assert!(s["share_repaired"].is_null());
    // b1: 40 -> 44 is +4 / 3.5777 = 1.12 (unchanged); b2: one point, RCI 0 (unchanged).
    assert_eq!(
        s["reliable_change"],
        json!({"improved": 0, "unchanged": 2, "deteriorated": 0})
    );

    let a: Value = app.get_json(&token, "/v1/clinicians/dr-a/summary?instrument=ten").await;
    assert_eq!(
        (
            a["patients"].as_u64(),
            a["patients_with_rupture"].as_u64(),
            a["ruptures"].as_u64()
        ),
        (Some(5), Some(1), Some(1))
    );
    assert_eq!(a["share_repaired"], 1.0);
    assert_eq!(a["reliable_change"]["improved"], 1, "a0: 40 -> 49");
    assert!(a["session3_mean"].is_number());

    let list: Value = app.get_json(&token, "/v1/clinicians?instrument=ten").await;
    let names = item_strings(&list, "clinician");
    assert_eq!(names, vec!["dr-a"], "dr-b has 2 patients, under the default floor of 5");
    let list: Value = app
        .get_json(&token, "/v1/clinicians?instrument=ten&min_patients=2")
        .await;
    let names = item_strings(&list, "clinician");
    assert_eq!(names, vec!["dr-a", "dr-b"]);
    assert_problem(
        app.get(&token, "/v1/clinicians/dr-nobody/summary?instrument=ten").await,
        404,
    )
    .await;
    assert_problem(
        app.get(&token, "/v1/clinicians?instrument=ten&min_patients=-1").await,
        400,
    )
    .await;
}

async fn settled(database_url: &str) -> i64 {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let pending: N = diesel::sql_query("SELECT count(*) AS n FROM outbox_events WHERE processed_at IS NULL")
            .get_result(&mut conn)
            .await
            .unwrap();
        if pending.n == 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the outbox drains"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kept: N = diesel::sql_query("SELECT count(*) AS n FROM clinician_series")
        .get_result(&mut conn)
        .await
        .unwrap();
    kept.n
}

#[tokio::test]
async fn clinician_summaries_read_the_same_before_and_after_the_outbox_keeps_their_series() {
    // No outbox workers: every series is pending, so summaries come from the responses.
    let app = TestApp::spawn_with(|s| s.outbox_workers = 0).await;
    let token = app
        .token(&["responses:write", "responses:read", "instruments:write"])
        .await;
    setup(&app, &token).await;
    let a0 = series(&app, &token, "ten", "a0", &[40, 48, 36, 49]).await;
    for i in 1..5 {
        series(&app, &token, "ten", &format!("a{i}"), &[30 + i, 31 + i, 29 + i]).await;
    }
    let live: Value = app.get_json(&token, "/v1/clinicians?instrument=ten").await;
    let one: Value = app.get_json(&token, "/v1/clinicians/dr-a/summary?instrument=ten").await;
    assert_eq!(live["items"][0], one);
    assert_eq!((one["patients"].as_u64(), one["ruptures"].as_u64()), (Some(5), Some(1)));

    // A second instance's workers process the events and keep one row per series.
    let url = app.database_url.clone();
    let worker = TestApp::spawn_with(|s| s.database_url = url).await;
    assert_eq!(settled(&app.database_url).await, 5);
    let kept: Value = app.get_json(&token, "/v1/clinicians?instrument=ten").await;
    assert_eq!(kept, live, "the kept series read exactly as the live ones");

    // A void is an event too: the kept series loses the drop.
    let res = app
        .post_json(
            &token,
            &format!("/v1/responses/{}/void", a0[2]),
            json!({"reason": "wrong patient"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(settled(&app.database_url).await, 5);
    let after: Value = app.get_json(&token, "/v1/clinicians/dr-a/summary?instrument=ten").await;
    assert_eq!(
        (after["responses"].as_u64(), after["ruptures"].as_u64()),
        (Some(15), Some(0))
    );
    std::mem::forget(worker); // the first instance drops the shared database
}

/// `clinician_series` as the outbox worker keeps it, and the same facts aggregated over
/// `responses` by SQL written here, both as text rows in one order.
async fn kept_and_aggregated(database_url: &str) -> (Vec<String>, Vec<String>) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    let kept: Vec<Row> = diesel::sql_query(
        "SELECT concat_ws('|', instrument_key, rater, clinician, patient, totals::text, instrument_version,
             versions::text, below_cutoff, session3_sum, session3_count) AS row
         FROM clinician_series ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let aggregated: Vec<Row> = diesel::sql_query(
        "SELECT concat_ws('|', instrument_key, rater, clinician, patient,
             array_agg(total ORDER BY administered_at, seq)::text, max(instrument_version),
             array_agg(DISTINCT instrument_version ORDER BY instrument_version)::text,
             count(*) FILTER (WHERE 'below_cutoff' = ANY(flags)),
             sum(total) FILTER (WHERE session = 3), count(*) FILTER (WHERE session = 3)) AS row
         FROM responses
         WHERE status = 'active' AND total IS NOT NULL AND clinician IS NOT NULL
         GROUP BY org_id, instrument_key, rater, clinician, patient ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let text = |rows: Vec<Row>| rows.into_iter().map(|r| r.row).collect();
    (text(kept), text(aggregated))
}

#[tokio::test]
async fn the_kept_series_computed_from_the_points_equal_the_sql_aggregate() {
    let (app, token) = app_with_instruments().await;
    // Two clinicians on one patient, out-of-order administration times, session 3 on some,
    // totals under the cut-off of 30 (flagged), a second instrument.
    let mut ids = Vec::new();
    for (patient, clinician, total, week, session) in [
        ("k1", "dr-a", 40, 3, Some(3)),
        ("k1", "dr-b", 25, 1, Some(3)),
        ("k1", "dr-a", 28, 0, Some(1)),
        ("k1", "dr-b", 44, 2, None),
        ("k2", "dr-a", 31, 0, Some(3)),
        ("k2", "dr-a", 12, 1, Some(3)),
    ] {
        let p = Post {
            instrument: "ten",
            patient,
            clinician,
            total,
            week,
            session,
        };
        ids.push(post(&app, &token, p).await);
    }
    let p = Post {
        instrument: "ten-sd",
        patient: "k1",
        clinician: "dr-c",
        total: 33,
        week: 0,
        session: Some(3),
    };
    post(&app, &token, p).await;
    settled(&app.database_url).await;
    let (kept, aggregated) = kept_and_aggregated(&app.database_url).await;
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert_eq!(kept, aggregated);
    assert!(
        kept.contains(&"ten|patient|dr-b|k1|{25,44}|1|{1}|1|25|1".to_string()),
        "{kept:?}"
    );

    // A void takes the point out; voiding a clinician's only point of the patient drops
    // the row.
    for id in [&ids[0], &ids[4], &ids[5]] {
        let res = app
            .post_json(
                &token,
                &format!("/v1/responses/{id}/void"),
                json!({"reason": "entered in error"}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    settled(&app.database_url).await;
    let (kept, aggregated) = kept_and_aggregated(&app.database_url).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(kept, aggregated);
    // concat_ws leaves out the NULL session-3 sum.
    assert!(
        kept.contains(&"ten|patient|dr-a|k1|{28}|1|{1}|1|0".to_string()),
        "{kept:?}"
    );
}

#[tokio::test]
async fn trajectory_by_session_with_t_intervals() {
    let (app, token) = app_with_instruments().await;
    for (patient, total, session) in [
        ("t1", 40, Some(1)),
        ("t2", 44, Some(1)),
        ("t3", 30, Some(1)),
        ("t1", 35, Some(2)),
        ("t2", 20, None),
    ] {
        post(
            &app,
            &token,
            Post {
                instrument: "ten",
                patient,
                clinician: "dr-t",
                total,
                week: 0,
                session,
            },
        )
        .await;
    }
    let t: Value = app.get_json(&token, "/v1/trajectory?instrument=ten&by=session").await;
    assert_eq!(
        (t["by"].as_str(), t["rater"].as_str()),
        (Some("session"), Some("patient"))
    );
    let points = t["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "responses without a session are left out");
    let p1 = &points[0];
    assert_eq!((p1["session"].as_i64(), p1["n"].as_i64()), (Some(1), Some(3)));
    assert!(close(&p1["mean"], 38.0));
    assert!(close(&p1["sd"], 52f64.sqrt()));
    // t(0.975, 2) = 4.302653; half-width = 4.302653 x sqrt(52) / sqrt(3) = 17.9129.
    let half = 4.302_652_729_749_464 * 52f64.sqrt() / 3f64.sqrt();
    assert!((p1["ci_lower"].as_f64().unwrap() - (38.0 - half)).abs() < 1e-4);
    assert!((p1["ci_upper"].as_f64().unwrap() - (38.0 + half)).abs() < 1e-4);
    let p2 = &points[1];
    assert_eq!(p2["n"], 1);
    assert!(p2["sd"].is_null() && p2["ci_lower"].is_null() && p2["ci_upper"].is_null());
    assert_problem(app.get(&token, "/v1/trajectory?instrument=ten&by=week").await, 400).await;
}

#[tokio::test]
async fn analytics_are_tenant_scoped_and_need_the_read_scope() {
    let (app, token) = app_with_instruments().await;
    series(&app, &token, "ten", "shared-name", &[40, 44]).await;
    let (_, other) = app.create_org("other-analytics").await;
    assert_problem(
        app.get(&other, "/v1/patients/shared-name/trends?instrument=ten").await,
        404,
    )
    .await;
    assert_problem(app.get(&other, "/v1/clinicians/dr-a/summary?instrument=ten").await, 404).await;
    // `ten` is the first organisation's own instrument: named in a query by another
    // organisation, it is 404 like any id it cannot see.
    assert_problem(
        app.get(&other, "/v1/clinicians?instrument=ten&min_patients=1").await,
        404,
    )
    .await;
    assert_problem(app.get(&other, "/v1/trajectory?instrument=ten").await, 404).await;
    let list: Value = app
        .get_json(&other, "/v1/clinicians?instrument=wai-sr&min_patients=1")
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let t: Value = app.get_json(&other, "/v1/trajectory?instrument=wai-sr").await;
    assert!(t["points"].as_array().unwrap().is_empty());
    assert_problem(app.get(&other, "/v1/instruments/ten/versions/1/norms").await, 404).await;
    let writer = app.token(&["responses:write"]).await;
    assert_problem(
        app.get(&writer, "/v1/patients/shared-name/trends?instrument=ten").await,
        403,
    )
    .await;
    assert_problem(app.get(&writer, "/v1/trajectory?instrument=ten").await, 403).await;
}

#[tokio::test]
async fn a_crash_after_a_perfectly_stable_history_is_a_rupture() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    // Under 30 patients: no organisation norms, so reliable_drop falls back to sd_drop,
    // whose SD is floored at one point of the total (min_sd).
    for (week, total) in [48, 48, 48, 12, 48].into_iter().enumerate() {
        let at = format!("2026-01-{:02}T10:00:00Z", 1 + 7 * week);
        let body = json!({"instrument": "wai-sr", "patient": "stable", "administered_at": at,
            "answers": wai_sr_answers(total)});
        assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
    }
    let trend = app
        .get_json(&token, "/v1/patients/stable/trends?instrument=wai-sr")
        .await;
    let ruptures = trend["summary"]["ruptures"].as_array().unwrap();
    assert_eq!(ruptures.len(), 1, "{trend}");
    assert_eq!(ruptures[0]["rule"], "sd_drop");
    assert_eq!(ruptures[0]["drop"], 36.0);
    assert_eq!(ruptures[0]["repaired"], true);
    // Each point carries its subscale scores (WAI-SR task = items 1, 2, 10, 12).
    let points = trend["points"].as_array().unwrap();
    assert_eq!(
        points[0]["subscales"]["task"],
        json!({"total": 16.0, "mean": 4.0}),
        "{trend}"
    );
    assert_eq!(points[3]["subscales"]["bond"], json!({"total": 4.0, "mean": 1.0}));
    assert_eq!(points[3]["subscales"].as_object().unwrap().len(), 3);
}

#[tokio::test]
async fn trend_change_is_decimal_exact() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for (day, answers) in [(5, [9.1, 9.1, 9.1, 9.1]), (12, [8.9, 8.8, 8.9, 8.9])] {
        let body = json!({"instrument": "srs", "patient": "srs-p", "administered_at": format!("2026-01-{day:02}T10:00:00Z"),
            "answers": {"1": answers[0], "2": answers[1], "3": answers[2], "4": answers[3]}});
        assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
    }
    let s = &app.get_json(&token, "/v1/patients/srs-p/trends?instrument=srs").await["summary"];
    // 36.4 -> 35.5: exactly -0.9, not -0.9000000000000057.
    assert_eq!(s["baseline"], 36.4);
    assert_eq!(s["latest"], 35.5);
    assert_eq!(s["change"], -0.9);
}

/// The box of the element with `id` in a parsed chart (x, y, width, height).
fn bbox(tree: &resvg::usvg::Tree, id: &str) -> Option<(f32, f32, f32, f32)> {
    let b = tree.node_by_id(id)?.abs_bounding_box();
    Some((b.x(), b.y(), b.width(), b.height()))
}

#[tokio::test]
async fn the_trend_chart_is_a_drawable_svg_with_every_point_the_cutoff_and_the_markers() {
    let (app, token) = app_with_instruments().await;
    // 48 -> 36 is a reliable drop (12 >= 7.01); 49 repairs it within the window.
    series(&app, &token, "ten", "pc", &[40, 48, 36, 42, 49]).await;
    let res = app.get(&token, "/v1/patients/pc/trends.svg?instrument=ten").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert_eq!(res.headers()["cache-control"], "private, no-store");
    let svg = res.bytes().await.unwrap();
    let again = app
        .get(&token, "/v1/patients/pc/trends.svg?instrument=ten")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(svg, again, "the same data gives the same bytes");

    let tree = resvg::usvg::Tree::from_data(&svg, &resvg::usvg::Options::default()).expect("a valid SVG");
    assert_eq!((tree.size().width(), tree.size().height()), (720.0, 360.0));
    let points = (0..20)
        .filter(|i| tree.node_by_id(&format!("point-{i}")).is_some())
        .count();
    assert_eq!(points, 5);
    // The cut-off (30 on a possible 10-50) sits halfway down the plot.
    let (_, plot_y, _, plot_h) = bbox(&tree, "plot").unwrap();
    let (_, cut_y, _, _) = bbox(&tree, "cutoff").unwrap();
    assert!(
        (cut_y - (plot_y + plot_h / 2.0)).abs() < 1.5,
        "cut-off at {cut_y}, plot {plot_y}+{plot_h}"
    );
    // A point's height follows its total: 40 of 10-50 is a quarter from the top.
    let (_, p0_y, _, p0_h) = bbox(&tree, "point-0").unwrap();
    assert!((p0_y + p0_h / 2.0 - (plot_y + plot_h / 4.0)).abs() < 1.5);
    assert!(tree.node_by_id("rupture-2").is_some(), "red marker at the drop");
    assert!(tree.node_by_id("repair-4").is_some(), "green marker at the repair");
    let markers = (0..5)
        .filter(|i| {
            tree.node_by_id(&format!("rupture-{i}")).is_some() || tree.node_by_id(&format!("repair-{i}")).is_some()
        })
        .count();
    assert_eq!(markers, 2);

    // resvg draws it: the first point's centre is painted in the series colour.
    let mut pixmap = resvg::tiny_skia::Pixmap::new(720, 360).unwrap();
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let (x0, _, w0, _) = bbox(&tree, "point-0").unwrap();
    let centre = pixmap
        .pixel((x0 + w0 / 2.0) as u32, (p0_y + p0_h / 2.0) as u32)
        .unwrap();
    assert_eq!((centre.red(), centre.green(), centre.blue()), (0x15, 0x65, 0xc0));
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("charts");
    std::fs::create_dir_all(&out).unwrap();
    pixmap.save_png(out.join("trend.png")).unwrap();
    std::fs::write(out.join("trend.svg"), &svg).unwrap();

    // By session, at another size.
    let svg = app
        .get(
            &token,
            "/v1/patients/pc/trends.svg?instrument=ten&x=session&width=400&height=300",
        )
        .await
        .bytes()
        .await
        .unwrap();
    let tree = resvg::usvg::Tree::from_data(&svg, &resvg::usvg::Options::default()).unwrap();
    assert_eq!((tree.size().width(), tree.size().height()), (400.0, 300.0));
    assert!(tree.node_by_id("point-4").is_some());
    // An empty series is a valid picture that says so.
    let svg = app
        .get(
            &token,
            "/v1/patients/pc/trends.svg?instrument=ten&from=2031-01-01T00:00:00Z",
        )
        .await
        .bytes()
        .await
        .unwrap();
    let tree = resvg::usvg::Tree::from_data(&svg, &resvg::usvg::Options::default()).unwrap();
    assert!(tree.node_by_id("point-0").is_none());
    let text = String::from_utf8(svg.to_vec()).unwrap();
    assert!(text.contains("<title id=\"chart-title\">ten (patient-rated) for patient pc: 0 points</title>"));
    assert!(text.contains("No data"));
    assert!(!text.contains("<script") && !text.contains("href"));
    // Sizes are bounded.
    for bad in ["width=100", "height=5000", "x=sideways"] {
        assert_problem(
            app.get(&token, &format!("/v1/patients/pc/trends.svg?instrument=ten&{bad}"))
                .await,
            400,
        )
        .await;
    }
    // The trend's own scope and tenancy.
    let other = app.create_org("chart-other").await.1;
    assert_problem(app.get(&other, "/v1/patients/pc/trends.svg?instrument=ten").await, 404).await;
}
