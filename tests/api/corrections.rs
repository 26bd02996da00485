//! The v2 corrections to v1 behaviour found by trying rapport from outside: each test names
//! the behaviour, and each failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::builders::wai_sr;
use crate::helpers::{TestApp, assert_problem, pointers};

#[tokio::test]
async fn revoking_the_last_org_admin_is_409() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let clients = app.get_json(&admin, "/v1/clients").await;
    let bootstrap = clients["items"][0]["id"].as_str().unwrap().to_string();
    let res = app.delete(&admin, &format!("/v1/clients/{bootstrap}")).await;
    let problem = assert_problem(res, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("last active"));
    // With a second administrator, the first can go; then the second is the last.
    let (second_id, second_secret) = app.create_client(&admin, &["org:admin"]).await;
    assert_eq!(
        app.delete(&admin, &format!("/v1/clients/{bootstrap}")).await.status(),
        204
    );
    let second = app.token_for(&second_id, &second_secret, None).await;
    assert_problem(app.delete(&second, &format!("/v1/clients/{second_id}")).await, 409).await;
}

#[tokio::test]
async fn patient_data_answers_are_never_cached() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read", "export"]).await;
    let created = app.post_json(&token, "/v1/responses", wai_sr("p-1", None)).await;
    assert_eq!(created.headers()["cache-control"], "no-store");
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        format!("/v1/responses/{id}"),
        "/v1/responses?patient=p-1".to_string(),
        "/v1/patients/p-1/trends?instrument=wai-sr".to_string(),
        "/v1/clinicians/dr-9/summary?instrument=wai-sr".to_string(),
        "/v1/exports/responses?instrument=wai-sr".to_string(),
        format!("/fhir/r4/QuestionnaireResponse/{id}"),
        "/fhir/r4/Observation?subject=Patient/p-1".to_string(),
    ] {
        let res = app.get(&token, &path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let app = TestApp::spawn_with(|s| s.client_request_timeout = Duration::from_millis(800)).await;
    let token = app.token(&["responses:write"]).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The head arrives at once; the body promises 100 bytes and sends 2.
        let head = format!(
            "POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\""
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "got {answer:?}");
}

#[tokio::test]
async fn an_encoding_the_server_cannot_inflate_is_415() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    for encoding in ["zstd", "br", "bogus"] {
        let res = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(wai_sr("p", None).to_string())
            .send()
            .await
            .unwrap();
        assert_problem(res, 415).await;
    }
}

#[tokio::test]
async fn administrations_before_1900_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    for at in ["0000-01-01T00:00:00Z", "1899-12-31T23:59:59Z"] {
        let mut body = wai_sr("p", None);
        body["administered_at"] = json!(at);
        let problem = assert_problem(app.post_json(&token, "/v1/responses", body).await, 422).await;
        assert_eq!(pointers(&problem), ["/administered_at"]);
    }
    let mut body = wai_sr("p", None);
    body["administered_at"] = json!("1900-01-01T00:00:00Z");
    assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
}

#[tokio::test]
async fn head_works_wherever_get_does() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:read"]).await;
    for path in ["/healthz", "/v1/instruments", "/fhir/r4/metadata"] {
        let get = app.get(&token, path).await;
        let length = get.bytes().await.unwrap().len();
        let head = app.http.head(app.url(path)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["content-length"], length.to_string().as_str(), "{path}");
        assert!(head.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn concurrent_creates_of_one_new_key_give_one_201_and_409s() {
    let app = TestApp::spawn().await;
    let token = app.token(&["instruments:write"]).await;
    let definition = crate::instruments::custom_instrument("race-key");
    let posts = (0..20).map(|_| app.post_json(&token, "/v1/instruments", definition.clone()));
    let statuses: Vec<u16> = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
}

#[tokio::test]
async fn analytics_read_opens_aggregates_but_no_patient_reference() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["responses:write"]).await;
    assert_eq!(
        app.post_json(&writer, "/v1/responses", wai_sr("p-1", None))
            .await
            .status(),
        201
    );
    let research = app.token(&["analytics:read", "export"]).await;
    for path in [
        "/v1/clinicians/dr-9/summary?instrument=wai-sr",
        // v3: at least 5 without `responses:read` (the small-cell floor).
        "/v1/clinicians?instrument=wai-sr&min_patients=5",
        "/v1/trajectory?instrument=wai-sr",
        "/v1/instruments/wai-sr/versions/1/norms",
    ] {
        assert_eq!(app.get(&research, path).await.status(), 200, "{path}");
    }
    for path in [
        "/v1/responses",
        "/v1/patients/p-1/trends?instrument=wai-sr",
        "/fhir/r4/Observation?subject=Patient/p-1",
    ] {
        assert_eq!(app.get(&research, path).await.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn an_instrument_named_in_a_query_that_the_caller_cannot_see_is_404() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read", "export"]).await;
    assert_eq!(
        app.post_json(&token, "/v1/responses", wai_sr("p-1", None))
            .await
            .status(),
        201
    );
    let unknown = assert_problem(
        app.get(&token, "/v1/responses/00000000-0000-0000-0000-000000000000")
            .await,
        404,
    )
    .await;
    for path in [
        "/v1/patients/p-1/trends?instrument=nope",
        "/v1/clinicians/dr-9/summary?instrument=nope",
        "/v1/clinicians?instrument=nope",
        "/v1/trajectory?instrument=nope",
        "/v1/exports/responses?instrument=nope",
        "/v1/exports/dictionary?instrument=nope",
    ] {
        let problem = assert_problem(app.get(&token, path).await, 404).await;
        assert_eq!(problem, unknown, "{path}");
    }
}

#[tokio::test]
async fn a_draft_is_replaced_by_its_path_and_the_path_is_checked_first() {
    let app = TestApp::spawn().await;
    let token = app.token(&["instruments:write"]).await;
    let mut definition = crate::instruments::custom_instrument("put-key");
    assert_eq!(
        app.post_json(&token, "/v1/instruments", definition.clone())
            .await
            .status(),
        201
    );
    let put = |path: &str, body: Value| app.http.put(app.url(path)).bearer_auth(&token).json(&body).send();
    // The body may omit `key`; when given it must equal the path.
    definition.as_object_mut().unwrap().remove("key");
    definition["title"] = json!("Renamed");
    let res = put("/v1/instruments/put-key/versions/1", definition.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["title"], "Renamed");
    let mut wrong = definition.clone();
    wrong["key"] = json!("other");
    let problem = assert_problem(put("/v1/instruments/put-key/versions/1", wrong).await.unwrap(), 422).await;
    assert_eq!(pointers(&problem), ["/key"]);
    // Unknown or foreign version: 404 even with a body that is not a definition at all.
    assert_problem(
        put("/v1/instruments/put-key/versions/9", json!({"x": 1}))
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_problem(
        put("/v1/instruments/nope/versions/1", json!({"x": 1})).await.unwrap(),
        404,
    )
    .await;
    // Published: 409 before any body validation.
    let publish = app
        .post_json(&token, "/v1/instruments/put-key/versions/1/publish", json!({}))
        .await;
    assert_eq!(publish.status(), 200);
    assert_problem(
        put("/v1/instruments/put-key/versions/1", json!({"x": 1}))
            .await
            .unwrap(),
        409,
    )
    .await;
}

#[tokio::test]
async fn repeated_member_names_are_422_never_last_one_wins() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    let body = r#"{"instrument": "srs", "patient": "p", "administered_at": "2026-03-04T15:20:00Z",
        "answers": {"1": 9, "2": 9, "3": 9, "4": 9, "1": 1}}"#;
    let res = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422).await;
    assert_eq!(pointers(&problem), ["/answers/1"]);

    // A QuestionnaireResponse repeating a linkId: an OperationOutcome naming the item.
    let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": format!("{}/fhir/r4/Questionnaire/srs", app.address),
        "subject": {"reference": "Patient/p"}, "authored": "2026-03-04T15:20:00Z",
        "item": [{"linkId": "1", "answer": [{"valueDecimal": 9.0}]},
                 {"linkId": "1", "answer": [{"valueDecimal": 1.0}]},
                 {"linkId": "2", "answer": [{"valueDecimal": 9.0}]}]});
    let res = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(qr.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "QuestionnaireResponse.item[1].linkId"
    );
}

fn srs_qr(app: &TestApp, patient: &str, system: &str, value: &str, answers: [f64; 4]) -> Value {
    json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": format!("{}/fhir/r4/Questionnaire/srs|1", app.address),
        "identifier": {"system": system, "value": value},
        "subject": {"reference": format!("Patient/{patient}")}, "authored": "2026-03-04T15:20:00Z",
        "item": answers.iter().enumerate()
            .map(|(i, v)| json!({"linkId": (i + 1).to_string(), "answer": [{"valueDecimal": v}]}))
            .collect::<Vec<_>>()})
}

async fn post_fhir(app: &TestApp, token: &str, body: &Value, header: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json");
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let res = req.body(body.to_string()).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn fhir_identifiers_keep_system_and_value_apart() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let (s1, first) = post_fhir(&app, &token, &srs_qr(&app, "alice", "urn:sys|a", "b", [9.0; 4]), None).await;
    let (s2, second) = post_fhir(&app, &token, &srs_qr(&app, "bob", "urn:sys", "a|b", [8.0; 4]), None).await;
    assert_eq!((s1, s2), (201, 201), "two identifiers, two responses");
    assert_ne!(first["id"], second["id"]);
    assert_eq!(second["identifier"], json!({"system": "urn:sys", "value": "a|b"}));
    // entered-in-error with bob's identifier but alice as subject voids nothing.
    let void = json!({"resourceType": "QuestionnaireResponse", "status": "entered-in-error",
        "identifier": {"system": "urn:sys", "value": "a|b"}, "subject": {"reference": "Patient/alice"}});
    let (status, outcome) = post_fhir(&app, &token, &void, None).await;
    assert_eq!(status, 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let a = app
        .get_json(&token, &format!("/v1/responses/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(a["status"], "active");
    // With the right subject it voids bob's, needing nothing but identifier, subject, status.
    let void = json!({"resourceType": "QuestionnaireResponse", "status": "entered-in-error",
        "identifier": {"system": "urn:sys", "value": "a|b"}, "subject": {"reference": "Patient/bob"}});
    let (status, voided) = post_fhir(&app, &token, &void, None).await;
    assert_eq!(status, 200, "{voided}");
    assert_eq!(voided["status"], "entered-in-error");
    assert_eq!(voided["id"], second["id"]);
}

#[tokio::test]
async fn if_none_exist_takes_only_an_identifier() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    let qr = srs_qr(&app, "p", "urn:ehr", "enc-1", [9.0; 4]);
    let (status, _) = post_fhir(&app, &token, &qr, Some(("If-None-Exist", "subject=Patient/p"))).await;
    assert_eq!(status, 400);
    let (status, created) = post_fhir(&app, &token, &qr, Some(("If-None-Exist", "identifier=urn:ehr|enc-1"))).await;
    assert_eq!(status, 201);
    let mut other = srs_qr(&app, "p", "urn:ehr", "enc-2", [8.0; 4]);
    other["identifier"]["value"] = json!("enc-2");
    let (status, found) = post_fhir(
        &app,
        &token,
        &other,
        Some(("If-None-Exist", "identifier=urn:ehr|enc-1")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["id"], created["id"]);
}

#[tokio::test]
async fn amended_replaces_the_stored_answers_and_rescores() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read", "org:admin"]).await;
    let (status, created) = post_fhir(&app, &token, &srs_qr(&app, "p", "urn:ehr", "enc-1", [9.0; 4]), None).await;
    assert_eq!(status, 201);
    let mut amended = srs_qr(&app, "p", "urn:ehr", "enc-1", [8.0, 8.5, 9.0, 9.0]);
    amended["status"] = json!("amended");
    let (status, body) = post_fhir(&app, &token, &amended, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], created["id"]);
    let id = created["id"].as_str().unwrap();
    let stored = app.get_json(&token, &format!("/v1/responses/{id}")).await;
    assert_eq!(stored["score"]["total"], 34.5);
    assert_eq!(
        stored["score"]["flags"],
        json!(["below_cutoff", "item_below_threshold"])
    );
    assert_eq!(stored["source"], "fhir");
    let audit = app.get_json(&token, "/v1/audit-events").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "response.amended")
    );
    // Another patient's response cannot be amended through its identifier (v3: 422, an
    // amendment keeps the stored subject).
    let mut foreign = amended.clone();
    foreign["subject"] = json!({"reference": "Patient/q"});
    assert_eq!(post_fhir(&app, &token, &foreign, None).await.0, 422);
}

#[tokio::test]
async fn idempotency_is_decided_before_validation_and_compares_numbers() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "instruments:write"]).await;
    let mut definition = crate::instruments::custom_instrument("retiring");
    definition["key"] = json!("retiring");
    assert_eq!(app.post_json(&token, "/v1/instruments", definition).await.status(), 201);
    let publish = app
        .post_json(&token, "/v1/instruments/retiring/versions/1/publish", json!({}))
        .await;
    assert_eq!(publish.status(), 200);
    let answers: serde_json::Map<String, Value> = (1..=12).map(|i| (format!("q{i}"), json!(3))).collect();
    let body = json!({"instrument": "retiring", "instrument_version": 1, "patient": "p",
        "administered_at": "2026-03-04T15:20:00Z", "external_id": "enc-9", "answers": answers});
    let created = app.post_json(&token, "/v1/responses", body.clone()).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].clone();
    let retire = app
        .post_json(&token, "/v1/instruments/retiring/versions/1/retire", json!({}))
        .await;
    assert_eq!(retire.status(), 200);
    // The retry is still the same stored response, and 3.0 is the same answer as 3.
    let mut retry = body.clone();
    retry["answers"]["q1"] = json!(3.0);
    let res = app.post_json(&token, "/v1/responses", retry).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["id"], id);
    // A different payload is 409 naming the stored response.
    let mut changed = body.clone();
    changed["answers"]["q1"] = json!(4);
    let problem = assert_problem(app.post_json(&token, "/v1/responses", changed).await, 409).await;
    assert_eq!(problem["existing_id"], id);
}

async fn questionnaire_url(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> String {
    let mut req = app.http.get(app.url("/fhir/r4/Questionnaire/srs")).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body: Value = req.send().await.unwrap().json().await.unwrap();
    body["url"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn absolute_urls_come_from_the_configured_base_not_the_callers_headers() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:read"]).await;
    let forged = [
        ("host", "evil.example"),
        ("x-forwarded-proto", "javascript"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "proto=javascript;host=evil.example"),
    ];
    let url = questionnaire_url(&app, &token, &forged).await;
    assert_eq!(url, format!("{}/fhir/r4/Questionnaire/srs", app.address));

    let configured = TestApp::spawn_with(|s| s.public_url = Some("https://rapport.example".into())).await;
    let token = configured.token(&["responses:read"]).await;
    let url = questionnaire_url(&configured, &token, &forged).await;
    assert_eq!(url, "https://rapport.example/fhir/r4/Questionnaire/srs");

    // Behind a proxy that is trusted, its headers count, but only for http(s).
    let proxied = TestApp::spawn_with(|s| {
        s.public_url = Some("https://rapport.example".into());
        s.trust_forwarded = true;
    })
    .await;
    let token = proxied.token(&["responses:read"]).await;
    let url = questionnaire_url(
        &proxied,
        &token,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "ehr-proxy.example"),
        ],
    )
    .await;
    assert_eq!(url, "https://ehr-proxy.example/fhir/r4/Questionnaire/srs");
    let url = questionnaire_url(&proxied, &token, &forged[1..3]).await;
    assert_eq!(url, "https://rapport.example/fhir/r4/Questionnaire/srs");
}

#[tokio::test]
async fn every_error_under_fhir_is_an_operation_outcome() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:read"]).await;
    // 404 and 405 under /fhir/r4 are OperationOutcomes.
    for (method, path, status) in [
        (reqwest::Method::GET, "/fhir/r4/NoSuchType", 404),
        (reqwest::Method::DELETE, "/fhir/r4/Observation", 405),
    ] {
        let res = app
            .http
            .request(method, app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json")
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}");
    }
}

#[tokio::test]
async fn observation_search_follows_fhir_semantics() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    for (day, total) in [(3, [9.0; 4]), (10, [8.0; 4]), (17, [9.5; 4])] {
        let mut qr = srs_qr(&app, "p", "urn:ehr", &format!("enc-{day}"), total);
        qr["authored"] = json!(format!("2026-03-{day:02}T10:00:00Z"));
        assert_eq!(post_fhir(&app, &token, &qr, None).await.0, 201);
    }
    let (app, token) = (&app, token.as_str());
    let search = |q: &str| {
        let path = format!("/fhir/r4/Observation?subject=Patient/p&{q}");
        async move { app.get_json(token, &path).await }
    };
    let entries = |b: &Value| b["entry"].as_array().map_or(0, Vec::len);
    assert_eq!(entries(&search("date=2026-03").await), 3, "a month");
    assert_eq!(
        entries(&search("date=ge2026-03-05&date=le2026-03-12").await),
        1,
        "AND of two bounds"
    );
    assert_eq!(entries(&search("code=srs-total,wai-sr-total").await), 3, "comma is OR");
    assert_eq!(
        entries(&search("code=srs-total&code=wai-sr-total").await),
        0,
        "repeat is AND"
    );
    assert_eq!(
        entries(&search(&format!("code={}%7Csrs-total", app.url("/fhir/CodeSystem/rapport"))).await),
        3
    );
    let count = search("_count=0").await;
    assert_eq!(count["total"], 3);
    assert!(count.get("entry").is_none());
    let unsupported = app
        .get(token, "/fhir/r4/Observation?subject=Patient/p&status=final")
        .await;
    assert_eq!(unsupported.status(), 400);
    let outcome: Value = unsupported.json().await.unwrap();
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("`status`")
    );
    // fullUrl is the plain resource URL (bdl-8).
    let page = search("_count=1").await;
    let full_url = page["entry"][0]["fullUrl"].as_str().unwrap();
    assert!(!full_url.contains("_history"));
    let questionnaires = app
        .get_json(token, "/fhir/r4/Questionnaire?url=x/Questionnaire/srs")
        .await;
    assert_eq!(
        questionnaires["entry"][0]["fullUrl"],
        format!("{}/fhir/r4/Questionnaire/srs", app.address)
    );
}

#[tokio::test]
async fn validation_messages_say_what_is_wrong_in_words() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "org:admin"]).await;
    let mut body = wai_sr("p", None);
    body["session"] = json!(1e3);
    let problem = assert_problem(app.post_json(&token, "/v1/responses", body).await, 422).await;
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("whole number") && !detail.contains("i64"), "{detail}");
    let problem = assert_problem(
        app.post_json(&token, "/v1/clients", json!({"name": "a\u{0}b", "scopes": []}))
            .await,
        422,
    )
    .await;
    assert!(problem["errors"][0]["detail"].as_str().unwrap().contains("NUL"));
}
