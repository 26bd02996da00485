//! SPEC v3, "Corrections to v2 behaviour": one test per behaviour, each failing on v2.

use serde_json::{Value, json};

use crate::builders::wai_sr_answers;
use crate::builders::{ResponseBuilder, phq9_answers};
use crate::helpers::{TestApp, assert_problem};

async fn post(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post_json(token, "/v1/responses", body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

fn wai(patient: &str, clinician: &str, session: u32, total: u32) -> Value {
    json!({"instrument": "wai-sr", "patient": patient, "clinician": clinician, "session": session,
        "administered_at": format!("2026-01-{:02}T10:00:00Z", session.min(28)), "answers": wai_sr_answers(total)})
}

/// Waits for the outbox worker to bring the open alerts to `n`.
async fn open_alerts(app: &TestApp, token: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let page = app.get_json(token, "/v1/alerts?limit=500").await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never {n} open alerts");
}

#[tokio::test]
async fn a_response_must_answer_something() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for answers in [json!({}), json!({"1": null, "2": null})] {
        let body = json!({"instrument": "wai-sr", "patient": "p", "administered_at": "2026-01-01T10:00:00Z",
            "answers": answers});
        let problem = assert_problem(app.post_json(&token, "/v1/responses", body).await, 422).await;
        assert!(problem.to_string().contains("/answers"), "{problem}");
    }
    let listed = app.get_json(&token, "/v1/responses").await;
    assert_eq!(listed["items"], json!([]), "nothing half-written");
}

#[tokio::test]
async fn alerts_are_listed_newest_first_and_page_to_the_oldest() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for (i, patient) in ["p-1", "p-2", "p-3"].iter().enumerate() {
        let body = json!({"instrument": "phq-9", "patient": patient,
            "administered_at": format!("2026-01-0{}T10:00:00Z", i + 1), "answers": phq9_answers(4, 1)});
        post(&app, &token, body).await;
        open_alerts(&app, &token, i + 1).await;
    }
    let first = app.get_json(&token, "/v1/alerts?limit=2").await;
    let patients: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["patient"].as_str().unwrap())
        .collect();
    assert_eq!(patients, ["p-3", "p-2"], "newest first");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get_json(&token, &format!("/v1/alerts?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["patient"], "p-1");
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn acknowledging_needs_the_clinicians_read_scope_and_a_write_only_feed_gets_no_answers_back() {
    let app = TestApp::spawn().await;
    let feed = app.token(&["responses:write"]).await;
    let clinician = app.token(&["responses:read"]).await;
    let created = post(
        &app,
        &feed,
        json!({"instrument": "phq-9", "patient": "p-a", "administered_at": "2026-01-05T10:00:00Z",
            "answers": phq9_answers(4, 1)}),
    )
    .await;
    let alert = &open_alerts(&app, &clinician, 1).await[0];
    let path = format!("/v1/alerts/{}/acknowledge", alert["id"].as_str().unwrap());
    assert_problem(app.post_json(&feed, &path, json!({})).await, 403).await;
    assert_eq!(app.post_json(&clinician, &path, json!({})).await.status(), 200);

    let void = app
        .post_json(
            &feed,
            &format!("/v1/responses/{}/void", created["id"].as_str().unwrap()),
            json!({"reason": "wrong patient"}),
        )
        .await;
    assert_eq!(void.status(), 200);
    let body: Value = void.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": created["id"], "status": "voided"}),
        "no answers to a write-only feed"
    );
}

#[tokio::test]
async fn a_full_payload_webhook_needs_the_read_scope() {
    let app = TestApp::spawn().await;
    let admin_only = app.token(&["org:admin"]).await;
    let url = "https://hooks.example.org/rapport";
    let problem = assert_problem(
        app.post_json(
            &admin_only,
            "/v1/webhooks",
            json!({"url": url, "events": ["alert.created"]}),
        )
        .await,
        403,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("responses:read"),
        "{problem}"
    );
    let id_only = app
        .post_json(
            &admin_only,
            "/v1/webhooks",
            json!({"url": url, "events": ["alert.created"], "payload": "id-only"}),
        )
        .await;
    assert_ne!(id_only.status(), 403, "id-only needs no read scope");
}

#[tokio::test]
async fn a_client_may_revoke_only_clients_whose_scopes_are_all_its_own() {
    let app = TestApp::spawn().await;
    let full = app.admin_token().await;
    let limited = app.token(&["org:admin"]).await;
    let (fuller, _) = app.create_client(&full, &["org:admin", "responses:read"]).await;
    let (equal, _) = app.create_client(&full, &["org:admin"]).await;
    assert_problem(app.delete(&limited, &format!("/v1/clients/{fuller}")).await, 403).await;
    assert_eq!(
        app.delete(&limited, &format!("/v1/clients/{equal}")).await.status(),
        204
    );
    assert_eq!(app.delete(&full, &format!("/v1/clients/{fuller}")).await.status(), 204);
}

#[tokio::test]
async fn aggregate_tokens_never_get_numbers_from_fewer_than_five_patients() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["responses:write"]).await;
    let aggregate = app.token(&["analytics:read"]).await;
    let clinician = app.token(&["responses:read"]).await;
    for (patient, total) in [("a", 40), ("b", 50)] {
        post(&app, &writer, wai(patient, "dr-few", 1, total)).await;
        post(&app, &writer, wai(patient, "dr-few", 3, total)).await;
    }
    let summary = app
        .get_json(&aggregate, "/v1/clinicians/dr-few/summary?instrument=wai-sr")
        .await;
    assert_eq!(summary["suppressed"], true, "{summary}");
    assert_eq!(summary["patients"], 2);
    for field in [
        "mean",
        "sd",
        "min",
        "max",
        "session3_mean",
        "ruptures",
        "reliable_change",
    ] {
        assert!(summary[field].is_null(), "{field}: {summary}");
    }
    let full = app
        .get_json(&clinician, "/v1/clinicians/dr-few/summary?instrument=wai-sr")
        .await;
    assert_eq!(
        (full["suppressed"].as_bool(), full["mean"].as_f64()),
        (Some(false), Some(45.0))
    );

    let trajectory = app.get_json(&aggregate, "/v1/trajectory?instrument=wai-sr").await;
    let point = &trajectory["points"][0];
    assert_eq!(
        (point["n"].as_i64(), point["suppressed"].as_bool()),
        (Some(2), Some(true))
    );
    assert!(point["mean"].is_null() && point["sd"].is_null() && point["ci_lower"].is_null());
    let trajectory = app.get_json(&clinician, "/v1/trajectory?instrument=wai-sr").await;
    assert_eq!(trajectory["points"][0]["suppressed"], false);
    assert_eq!(trajectory["points"][0]["mean"], 45.0);

    let problem = assert_problem(
        app.get(&aggregate, "/v1/clinicians?instrument=wai-sr&min_patients=2")
            .await,
        400,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("min_patients"));
    assert_eq!(
        app.get(&clinician, "/v1/clinicians?instrument=wai-sr&min_patients=2")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn share_below_cutoff_is_null_for_an_instrument_without_a_cutoff() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    // GAD-7 (like the WAI-SR) has no cut-off; the SRS has one.
    for patient in ["a", "b"] {
        let answers: serde_json::Map<String, Value> = (1..=7).map(|i| (i.to_string(), json!(1))).collect();
        post(
            &app,
            &token,
            json!({"instrument": "gad-7", "patient": patient, "clinician": "dr-g",
                "administered_at": "2026-01-05T10:00:00Z", "answers": answers}),
        )
        .await;
    }
    let summary = app
        .get_json(&token, "/v1/clinicians/dr-g/summary?instrument=gad-7")
        .await;
    assert!(summary["share_below_cutoff"].is_null(), "{summary}");
    post(
        &app,
        &token,
        json!({"instrument": "srs", "patient": "s", "clinician": "dr-s", "administered_at": "2026-01-05T10:00:00Z",
            "answers": {"1": 9, "2": 9, "3": 9, "4": 9}}),
    )
    .await;
    let srs = app.get_json(&token, "/v1/clinicians/dr-s/summary?instrument=srs").await;
    assert_eq!(srs["share_below_cutoff"], 0.0, "{srs}");
}

#[tokio::test]
async fn failed_secrets_from_one_address_never_lock_out_the_right_secret_from_another() {
    let app = TestApp::spawn_with(|s| s.trust_forwarded = true).await;
    let admin = app.admin_token().await;
    let (id, secret) = app.create_client(&admin, &["responses:read"]).await;
    let attempt = |secret: String, from: &'static str| {
        let (app, id) = (&app, id.clone());
        async move {
            app.http
                .post(app.url("/v1/oauth/token"))
                .header("X-Forwarded-For", from)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for _ in 0..10 {
        assert_eq!(attempt("wrong".into(), "198.51.100.7").await, 401);
    }
    assert_eq!(
        attempt(secret.clone(), "198.51.100.7").await,
        429,
        "the guessing address is slowed"
    );
    assert_eq!(
        attempt(secret, "203.0.113.20").await,
        200,
        "the clinic's own address is not locked out"
    );
}

#[tokio::test]
async fn a_misspelled_query_parameter_is_400_naming_it_instead_of_listing_every_patient() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    post(&app, &token, wai("p-1", "dr-a", 1, 40)).await;
    for path in [
        "/v1/responses?patiend=p-2",
        "/v1/alerts?patient=p-1&kinds=item_flag",
        "/v1/patients/p-1/trends?instrument=wai-sr&from_date=2026-01-01",
        "/v1/instruments?x=1",
    ] {
        let problem = assert_problem(app.get(&token, path).await, 400).await;
        let name = path
            .rsplit('&')
            .next()
            .unwrap()
            .rsplit('?')
            .next()
            .unwrap()
            .split('=')
            .next()
            .unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(&format!("`{name}`")),
            "{path}: {problem}"
        );
    }
    // Documented parameters still work, and authentication still answers first.
    assert_eq!(app.get(&token, "/v1/responses?patient=p-1&limit=5").await.status(), 200);
    let anonymous = app.http.get(app.url("/v1/responses?patiend=x")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn nfc_and_nfd_spellings_of_a_reference_are_one_patient() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let (nfd, nfc) = ("Jose\u{301}-7", "Jos\u{e9}-7");
    let first = post(&app, &token, wai(nfd, "Dr Zoe\u{308}", 1, 40)).await;
    assert_eq!(first["patient"], nfc, "stored in NFC");
    assert_eq!(first["clinician"], "Dr Zo\u{eb}");
    post(&app, &token, wai(nfc, "Dr Zo\u{eb}", 2, 44)).await;
    for patient in [nfd, nfc] {
        let encoded = percent_encode(patient);
        let listed = app.get_json(&token, &format!("/v1/responses?patient={encoded}")).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{patient}: {listed}");
        let trend = app
            .get_json(&token, &format!("/v1/patients/{encoded}/trends?instrument=wai-sr"))
            .await;
        assert_eq!(trend["points"].as_array().unwrap().len(), 2, "{patient}");
    }
}

#[tokio::test]
async fn a_versioned_fhir_subject_reference_names_the_patient() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let items: Vec<Value> = (1..=4)
        .map(|i| json!({"linkId": i.to_string(), "answer": [{"valueDecimal": 9}]}))
        .collect();
    let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": app.url("/fhir/r4/Questionnaire/srs"), "subject": {"reference": "Patient/p-h/_history/2"},
        "authored": "2026-03-04T15:20:00Z", "item": items});
    let res = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .json(&qr)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let listed = app.get_json(&token, "/v1/responses?patient=p-h").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A four-item instrument of the clinic's own, on `scale`, published as its next version.
async fn publish_version(app: &TestApp, token: &str, version: u32, scale: Value, method: &str) {
    let definition = json!({"key": "clinic-check", "title": "Clinic check", "raters": ["patient"],
        "scale": scale, "items": (1..=4).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>(),
        "scoring": {"method": method}});
    let res = app.post_json(token, "/v1/instruments", definition).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let path = format!("/v1/instruments/clinic-check/versions/{version}/publish");
    assert_eq!(app.post_json(token, &path, json!({})).await.status(), 200);
}

#[tokio::test]
async fn a_trend_uses_one_scale_and_counts_the_points_of_other_versions() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&["responses:write", "responses:read", "instruments:write"])
        .await;
    publish_version(&app, &token, 1, json!({"min": 1, "max": 5, "step": 1}), "mean").await;
    let answer = |day: u32, value: u32, version: u32| {
        json!({"instrument": "clinic-check", "instrument_version": version, "patient": "p-s", "clinician": "dr-s",
            "administered_at": format!("2026-02-{day:02}T10:00:00Z"),
            "answers": (1..=4).map(|i| (i.to_string(), json!(value))).collect::<serde_json::Map<_, _>>()})
    };
    post(&app, &token, answer(1, 5, 1)).await;
    post(&app, &token, answer(8, 4, 1)).await;
    publish_version(&app, &token, 2, json!({"min": 0, "max": 100, "step": 1}), "sum").await;
    post(&app, &token, answer(15, 80, 2)).await;
    post(&app, &token, answer(22, 60, 2)).await;

    let trend = app
        .get_json(&token, "/v1/patients/p-s/trends?instrument=clinic-check")
        .await;
    let s = &trend["summary"];
    assert_eq!(trend["points"].as_array().unwrap().len(), 2, "{trend}");
    assert_eq!(
        (s["baseline"].as_f64(), s["latest"].as_f64()),
        (Some(320.0), Some(240.0))
    );
    assert_eq!(s["excluded_points"], 2);
    assert_eq!(s["excluded_versions"], json!([1]));

    let v1 = app
        .get_json(
            &token,
            "/v1/patients/p-s/trends?instrument=clinic-check&instrument_version=1",
        )
        .await;
    assert_eq!(v1["points"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            v1["summary"]["baseline"].as_f64(),
            v1["summary"]["excluded_points"].as_u64()
        ),
        (Some(20.0), Some(0))
    );
    let svg = app
        .get(&token, "/v1/patients/p-s/trends.svg?instrument=clinic-check")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        svg.contains(r#"id="point-1""#) && !svg.contains(r#"id="point-2""#),
        "the chart has the same two points"
    );
}

#[tokio::test]
async fn the_patient_list_shows_each_patients_latest_score_band_and_open_alerts() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let phq = |patient: &str, clinician: &str, day: u32, total: u32, item9: u32| {
        ResponseBuilder::new("phq-9", patient)
            .clinician(clinician)
            .at(&format!("2026-03-{day:02}T10:00:00Z"))
            .answers(phq9_answers(total, item9))
    };
    phq("p-b", "dr-1", 1, 18, 0).post(&app, &token).await;
    phq("p-b", "dr-1", 8, 4, 0).post(&app, &token).await;
    phq("p-a", "dr-2", 2, 12, 1).post(&app, &token).await;
    phq("p-c", "dr-1", 3, 22, 0).post(&app, &token).await;
    open_alerts(&app, &token, 1).await;

    let all = app.get_json(&token, "/v1/patients?instrument=phq-9").await;
    let items = all["items"].as_array().unwrap();
    let patients: Vec<&str> = items.iter().map(|p| p["patient"].as_str().unwrap()).collect();
    assert_eq!(patients, ["p-a", "p-b", "p-c"]);
    assert_eq!(items[1]["latest_total"], 4.0, "the latest response, not the first");
    assert_eq!(items[1]["latest_band"], "minimal");
    assert_eq!(items[1]["last_administered_at"], "2026-03-08T10:00:00Z");
    assert_eq!(
        (items[0]["open_alerts"].as_i64(), items[1]["open_alerts"].as_i64()),
        (Some(1), Some(0))
    );

    let mine = app
        .get_json(&token, "/v1/patients?instrument=phq-9&clinician=dr-1&limit=1")
        .await;
    assert_eq!(mine["items"][0]["patient"], "p-b");
    let cursor = mine["next_cursor"].as_str().unwrap();
    let next = app
        .get_json(
            &token,
            &format!("/v1/patients?instrument=phq-9&clinician=dr-1&limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(next["items"][0]["patient"], "p-c");
    assert!(next["next_cursor"].is_null());

    assert_problem(app.get(&token, "/v1/patients").await, 400).await;
    let (_, other) = app.create_org("list-other").await;
    let theirs = app.get_json(&other, "/v1/patients?instrument=phq-9").await;
    assert_eq!(theirs["items"], json!([]), "another organisation sees none of them");
}

#[tokio::test]
async fn small_things_errors_name_the_parameter_in_words_and_json_is_utf8() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&["responses:write", "responses:read", "analytics:read"])
        .await;
    let problem = assert_problem(
        app.get(&token, "/v1/clinicians?instrument=wai-sr&min_patients=-3")
            .await,
        400,
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`min_patients`") && !detail.contains("u32"), "{detail}");
    let problem = assert_problem(app.get(&token, "/v1/responses?from=yesterday").await, 400).await;
    assert!(problem["detail"].as_str().unwrap().starts_with("`from`"), "{problem}");

    let res = app
        .get(&token, "/fhir/r4/Observation?subject=Patient/p&_count=9999")
        .await;
    assert_eq!(res.status(), 400);
    let outcome: Value = res.json().await.unwrap();
    let text = outcome.to_string();
    assert!(text.contains("_count") && !text.contains("`limit`"), "{text}");

    let body = serde_json::to_vec(&wai("p", "dr", 1, 40)).unwrap();
    for (content_type, status) in [
        ("application/json; charset=utf-16", 415),
        ("application/json; charset=ISO-8859-1", 415),
        ("application/json; charset=UTF-8", 201),
        ("application/json", 201),
    ] {
        let mut body_json: Value = serde_json::from_slice(&body).unwrap();
        body_json["patient"] = json!(format!("p-{status}-{}", content_type.len()));
        let res = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(serde_json::to_vec(&body_json).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{content_type}");
    }
}

#[tokio::test]
async fn the_phq9_chart_ticks_fall_on_band_edges_and_the_cutoff_is_labelled() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    post(
        &app,
        &token,
        json!({"instrument": "phq-9", "patient": "p-t", "administered_at": "2026-03-01T10:00:00Z",
            "answers": phq9_answers(12, 0)}),
    )
    .await;
    let svg = app
        .get(&token, "/v1/patients/p-t/trends.svg?instrument=phq-9")
        .await
        .text()
        .await
        .unwrap();
    let ticks: Vec<&str> = svg
        .split(r#"<text class="tick""#)
        .skip(1)
        .filter_map(|t| t.split('>').nth(1)?.split('<').next())
        .collect();
    assert_eq!(ticks, ["0", "5", "10", "15", "20", "27"], "{svg}");
    let srs_svg = {
        post(
            &app,
            &token,
            json!({"instrument": "srs", "patient": "p-t", "administered_at": "2026-03-01T10:00:00Z",
                "answers": {"1": 9, "2": 9, "3": 9, "4": 9}}),
        )
        .await;
        app.get(&token, "/v1/patients/p-t/trends.svg?instrument=srs")
            .await
            .text()
            .await
            .unwrap()
    };
    assert!(
        srs_svg.contains(r#"id="cutoff-label""#) && srs_svg.contains("cut-off 36"),
        "{srs_svg}"
    );
}

fn srs_qr(app: &TestApp, identifier: &str, status: &str, answers: [&str; 4]) -> String {
    // Raw JSON text: decimal answers are judged as written.
    let items: Vec<String> = answers
        .iter()
        .enumerate()
        .map(|(i, v)| format!(r#"{{"linkId": "{}", "answer": [{{"valueDecimal": {v}}}]}}"#, i + 1))
        .collect();
    format!(
        r#"{{"resourceType": "QuestionnaireResponse", "status": "{status}",
            "questionnaire": "{}", "identifier": {{"system": "urn:ehr", "value": "{identifier}"}},
            "subject": {{"reference": "Patient/p-f"}}, "authored": "2026-03-04T15:20:00Z",
            "item": [{}]}}"#,
        app.url("/fhir/r4/Questionnaire/srs|1"),
        items.join(",")
    )
}

async fn post_fhir(app: &TestApp, token: &str, body: String) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn expressions(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_posted_questionnaire_response_is_read_strictly() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let base: Value = serde_json::from_str(&srs_qr(&app, "enc-s", "completed", ["9", "9", "9", "9"])).unwrap();
    // Accepted and ignored: what EHRs send along.
    let mut fine = base.clone();
    fine["id"] = json!("ehr-1");
    fine["meta"] = json!({"versionId": "3"});
    fine["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"});
    fine["language"] = json!("en");
    fine["encounter"] = json!({"reference": "Encounter/e1"});
    fine["basedOn"] = json!([{"reference": "ServiceRequest/s1"}]);
    fine["partOf"] = json!([{"reference": "Procedure/p1"}]);
    fine["source"] = json!({"reference": "Patient/p-f"});
    fine["item"][0]["text"] = json!("How well did you feel heard?");
    fine["item"][0]["definition"] = json!("http://example.org/srs#1");
    let (status, body) = post_fhir(&app, &token, fine.to_string()).await;
    assert_eq!(status, 201, "{body}");

    for (mutate, expression) in [
        (
            json!({"modifierExtension": [{"url": "http://x", "valueBoolean": true}]}),
            "QuestionnaireResponse.modifierExtension",
        ),
        (
            json!({"implicitRules": "http://x"}),
            "QuestionnaireResponse.implicitRules",
        ),
        (
            json!({"contained": [{"resourceType": "Patient"}]}),
            "QuestionnaireResponse.contained",
        ),
        (json!({"note": "x"}), "QuestionnaireResponse.note"),
    ] {
        let mut qr = base.clone();
        for (k, v) in mutate.as_object().unwrap() {
            qr[k] = v.clone();
        }
        qr["identifier"]["value"] = json!(format!("enc-{expression}"));
        let (status, outcome) = post_fhir(&app, &token, qr.to_string()).await;
        assert_eq!(status, 422, "{expression}: {outcome}");
        assert!(expressions(&outcome).contains(&expression.to_string()), "{outcome}");
    }
    let mut nested = base.clone();
    nested["item"][0]["item"] = json!([{"linkId": "x", "answer": [{"valueDecimal": 1}]}]);
    nested["item"][1]["answer"][0]["item"] = json!([{"linkId": "y"}]);
    let (status, outcome) = post_fhir(&app, &token, nested.to_string()).await;
    assert_eq!(status, 422);
    let found = expressions(&outcome);
    assert!(
        found.contains(&"QuestionnaireResponse.item[0].item".to_string()),
        "{outcome}"
    );
    assert!(
        found.contains(&"QuestionnaireResponse.item[1].answer[0].item".to_string()),
        "{outcome}"
    );

    // Canonicals: this server's (absolute, or relative), never another's.
    for (canonical, accepted) in [
        ("Questionnaire/srs".to_string(), true),
        (app.url("/fhir/r4/Questionnaire/srs"), true),
        ("https://other.example/fhir/r4/Questionnaire/srs".to_string(), false),
        ("http://loinc.org/Questionnaire/srs|1".to_string(), false),
    ] {
        let mut qr = base.clone();
        qr["questionnaire"] = json!(canonical);
        qr["identifier"]["value"] = json!(format!("enc-c-{canonical}"));
        let (status, outcome) = post_fhir(&app, &token, qr.to_string()).await;
        assert_eq!(status == 201, accepted, "{canonical}: {status} {outcome}");
    }

    // A decimal read exactly from the JSON text: off the SRS step of 0.1.
    let (status, outcome) = post_fhir(
        &app,
        &token,
        srs_qr(
            &app,
            "enc-d",
            "completed",
            ["9.0000000000000000000000000001", "9", "9", "9"],
        ),
    )
    .await;
    assert_eq!(status, 422, "{outcome}");
    assert!(expressions(&outcome).contains(&"QuestionnaireResponse.item[0].answer[0].valueDecimal".to_string()));
}

#[tokio::test]
async fn amended_is_a_full_replacement_that_reads_back_amended_and_observations_resolve() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let (status, created) = post_fhir(&app, &token, srs_qr(&app, "enc-a", "completed", ["9", "9", "9", "9"])).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    let mut amended: Value = serde_json::from_str(&srs_qr(&app, "enc-a", "amended", ["7", "8", "9", "9.5"])).unwrap();
    amended["authored"] = json!("2026-03-05T09:00:00Z");
    let (status, body) = post_fhir(&app, &token, amended.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "amended");
    let read = app
        .get_json(&token, &format!("/fhir/r4/QuestionnaireResponse/{id}"))
        .await;
    assert_eq!(read["status"], "amended");
    assert_eq!(read["authored"], "2026-03-05T09:00:00Z", "the time is replaced too");
    let native = app.get_json(&token, &format!("/v1/responses/{id}")).await;
    assert_eq!(
        (native["score"]["total"].as_f64(), native["amended"].as_bool()),
        (Some(33.5), Some(true))
    );

    // Every fullUrl of a search resolves.
    let bundle = app.get_json(&token, "/fhir/r4/Observation?subject=Patient/p-f").await;
    let full_url = bundle["entry"][0]["fullUrl"].as_str().unwrap().to_string();
    let path = full_url.strip_prefix(&app.address).unwrap();
    let observation = app.get_json(&token, path).await;
    assert_eq!(observation["resourceType"], "Observation");
    assert_eq!(observation["valueQuantity"]["value"], 33.5);
    assert_eq!(app.get(&token, "/fhir/r4/Observation/not-a-uuid").await.status(), 404);
    let (_, other) = app.create_org("fhir-other").await;
    assert_eq!(app.get(&other, path).await.status(), 404);

    // subject=A,B is an OR of the two, each read audited.
    let mut second: Value = serde_json::from_str(&srs_qr(&app, "enc-b", "completed", ["9", "9", "9", "9"])).unwrap();
    second["subject"] = json!({"reference": "Patient/p-g"});
    assert_eq!(post_fhir(&app, &token, second.to_string()).await.0, 201);
    let both = app
        .get_json(&token, "/fhir/r4/Observation?subject=Patient/p-f,Patient/p-g")
        .await;
    assert_eq!(both["entry"].as_array().unwrap().len(), 2, "{both}");
    let admin = app.admin_token().await;
    let audit = app.get_json(&admin, "/v1/audit-events?limit=500").await;
    let searched = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "observations.searched")
        .count();
    assert!(searched >= 3, "one event per patient searched: {searched}");
    // code=system|code matches the system; |code means no system.
    let own = app.url("/fhir/CodeSystem/rapport");
    let with_system = app
        .get_json(
            &token,
            &format!("/fhir/r4/Observation?subject=Patient/p-f&code={own}%7Csrs-total"),
        )
        .await;
    assert_eq!(with_system["entry"].as_array().map_or(0, Vec::len), 1);
    for code in ["http://other.example%7Csrs-total", "%7Csrs-total"] {
        let none = app
            .get_json(&token, &format!("/fhir/r4/Observation?subject=Patient/p-f&code={code}"))
            .await;
        assert_eq!(none["entry"].as_array().map_or(0, Vec::len), 0, "{code}");
    }
}
