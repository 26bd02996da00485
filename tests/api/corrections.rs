//! The v2 corrections to v1 behaviour found by trying rapport from outside: each test names
//! the behaviour, and each failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, pointers};
use crate::responses::wai_sr;

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
        "/v1/clinicians?instrument=wai-sr&min_patients=1",
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
