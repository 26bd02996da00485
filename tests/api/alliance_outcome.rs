//! `GET /v1/alliance-outcome` over a small clinic whose numbers are worked out here.

use serde_json::{Value, json};

use crate::builders::phq9_answers;
use crate::builders::wai_sr_answers;
use crate::helpers::{TestApp, assert_problem, item_strings};

/// (WAI-SR at session 3, PHQ-9 baseline, PHQ-9 just before the alliance, PHQ-9 at the end).
const COURSES: [(u32, u32, u32, u32); 12] = [
    (30, 20, 18, 17),
    (34, 18, 17, 14),
    (38, 22, 20, 15),
    (40, 16, 15, 12),
    (42, 19, 16, 10),
    (44, 21, 19, 12),
    (46, 15, 13, 8),
    (48, 20, 17, 9),
    (50, 17, 15, 6),
    (52, 23, 19, 8),
    (55, 18, 14, 4),
    (58, 24, 20, 5),
];

async fn post(app: &TestApp, token: &str, body: Value) {
    let res = app.post_json(token, "/v1/responses", body).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

/// Twelve courses over four clinicians; one more patient without a later PHQ-9 (left out).
async fn seed(app: &TestApp, token: &str) {
    for (i, (a, y0, yk, yend)) in COURSES.iter().enumerate() {
        let (patient, clinician) = (format!("p-{i}"), format!("dr-{}", i % 4));
        let at = |day: u32| format!("2026-01-{day:02}T10:00:00Z");
        for (day, total) in [(5, *y0), (19, *yk)] {
            post(
                app,
                token,
                json!({"instrument": "phq-9", "patient": patient, "clinician": clinician,
                "administered_at": at(day), "answers": phq9_answers(total, 0)}),
            )
            .await;
        }
        post(
            app,
            token,
            json!({"instrument": "wai-sr", "patient": patient, "clinician": clinician, "session": 3,
            "administered_at": at(19), "answers": wai_sr_answers(*a)}),
        )
        .await;
        post(
            app,
            token,
            json!({"instrument": "phq-9", "patient": patient, "clinician": clinician,
            "administered_at": "2026-02-10T10:00:00Z", "answers": phq9_answers(*yend, 0)}),
        )
        .await;
    }
    post(
        app,
        token,
        json!({"instrument": "wai-sr", "patient": "p-open", "session": 3,
        "administered_at": "2026-01-19T10:00:00Z", "answers": wai_sr_answers(50)}),
    )
    .await;
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    sxy / (sxx * syy).sqrt()
}

#[tokio::test]
async fn a_clinic_sees_its_own_alliance_outcome_link() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["responses:write"]).await;
    seed(&app, &writer).await;
    let research = app.token(&["analytics:read"]).await;
    let answer = app
        .get_json(
            &research,
            "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3",
        )
        .await;
    assert_eq!(answer["n"], 12, "{answer}");
    assert_eq!(answer["min_patients"], 10);
    // PHQ-9 is lower-is-better: improvement = y0 - yend.
    let alliance: Vec<f64> = COURSES.iter().map(|c| f64::from(c.0)).collect();
    let improvement: Vec<f64> = COURSES.iter().map(|c| f64::from(c.1) - f64::from(c.3)).collect();
    let r = pearson(&alliance, &improvement);
    assert!((answer["correlation"]["r"].as_f64().unwrap() - r).abs() < 1e-9);
    let half = 1.959963984540054 / 9f64.sqrt();
    assert!((answer["correlation"]["ci_lower"].as_f64().unwrap() - (r.atanh() - half).tanh()).abs() < 1e-9);
    assert_eq!(answer["lagged"]["n"], 12);
    for name in ["intercept", "alliance", "prior_change", "baseline"] {
        assert!(
            answer["lagged"]["coefficients"][name]["se"].as_f64().unwrap() > 0.0,
            "{name}"
        );
    }
    let tertiles = answer["tertiles"].as_array().unwrap();
    let sizes: Vec<u64> = tertiles.iter().map(|t| t["n"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [4, 4, 4]);
    // v3: tertiles of fewer than 5 courses are suppressed for a token without
    // `responses:read` (the small-cell floor); a clinician's token sees their figures.
    for t in tertiles {
        assert_eq!(t["suppressed"], true, "{t}");
        assert!(t["alliance_min"].is_null() && t["mean_improvement"].is_null() && t["response_rate"].is_null());
    }
    let clinician = app.token(&["responses:read"]).await;
    let answer = app
        .get_json(
            &clinician,
            "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3",
        )
        .await;
    let tertiles = answer["tertiles"].as_array().unwrap();
    assert!(tertiles.iter().all(|t| t["suppressed"] == false));
    assert_eq!(
        (
            tertiles[0]["alliance_min"].as_f64(),
            tertiles[2]["alliance_max"].as_f64()
        ),
        (Some(30.0), Some(58.0))
    );
    // Top tertile (50, 52, 55, 58): 17->6, 23->8, 18->4, 24->5 all respond (>= 50%); 4 and 5: one remits.
    assert_eq!(tertiles[2]["response_rate"], 1.0);
    assert_eq!(tertiles[2]["remission_rate"], 0.25);
    assert_eq!(tertiles[0]["response_rate"], 0.0);
    let clinicians = &answer["clinicians"];
    assert_eq!(
        (clinicians["clinicians"].as_u64(), clinicians["courses"].as_u64()),
        (Some(4), Some(12))
    );
    assert!(clinicians["within"]["estimate"].is_number() && clinicians["outcome_icc1"].is_number());
    assert_eq!(answer["published"]["alliance_outcome_r"], 0.278);
    // One clinician: the courses whose alliance that clinician rated.
    let one = app
        .get_json(
            &research,
            "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3&clinician=dr-1&min_patients=5",
        )
        .await;
    assert_eq!(one["n"], 3);
    assert!(one["correlation"].is_null() && one["clinicians"].is_null());
    assert_eq!(one["tertiles"], json!([]));
    // The audit event names the call, never a value.
    let admin = app.admin_token().await;
    let events = app.get_json(&admin, "/v1/audit-events?limit=500").await;
    assert!(
        item_strings(&events, "action")
            .iter()
            .any(|a| a == "alliance_outcome.read")
    );
    assert!(
        !events.to_string().contains("dr-1\""),
        "no clinician reference in the audit detail"
    );
}

#[tokio::test]
async fn below_min_patients_every_statistic_is_null() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["responses:write"]).await;
    seed(&app, &writer).await;
    let token = app.token(&["responses:read"]).await;
    let answer = app
        .get_json(
            &token,
            "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3&min_patients=20",
        )
        .await;
    assert_eq!(answer["n"], 12);
    for field in ["correlation", "lagged", "clinicians"] {
        assert!(answer[field].is_null(), "{field}");
    }
    assert_eq!(answer["tertiles"], json!([]));
    // Another organisation sees nothing of these courses.
    let (_, other) = app.create_org("other-ao").await;
    let theirs = app
        .get_json(
            &other,
            "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3",
        )
        .await;
    assert_eq!(theirs["n"], 0);
}

#[tokio::test]
async fn parameters_are_checked() {
    let app = TestApp::spawn().await;
    let token = app.token(&["analytics:read"]).await;
    let base = "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9";
    assert_problem(app.get(&token, base).await, 400).await;
    assert_problem(app.get(&token, &format!("{base}&at_session=0")).await, 400).await;
    assert_problem(app.get(&token, &format!("{base}&at_session=x")).await, 400).await;
    assert_problem(
        app.get(&token, &format!("{base}&at_session=3&min_patients=4")).await,
        400,
    )
    .await;
    assert_problem(
        app.get(&token, &format!("{base}&at_session=3&from=yesterday")).await,
        400,
    )
    .await;
    assert_problem(
        app.get(&token, "/v1/alliance-outcome?alliance=nope&outcome=phq-9&at_session=3")
            .await,
        404,
    )
    .await;
    let swapped = assert_problem(
        app.get(
            &token,
            "/v1/alliance-outcome?alliance=phq-9&outcome=wai-sr&at_session=3",
        )
        .await,
        422,
    )
    .await;
    assert_eq!(crate::helpers::pointers(&swapped), ["/alliance", "/outcome"]);
    let writer = app.token(&["responses:write"]).await;
    assert_problem(app.get(&writer, &format!("{base}&at_session=3")).await, 403).await;
}
