//! Every route in the OpenAPI document with a path parameter, called by another organisation
//! with the first one's ids, answers 404 with a body identical to an unknown id's. The route
//! list comes from the document, so a new route is covered without editing this test.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::instruments::custom_instrument;

struct Ids {
    client: String,
    alert: String,
    webhook: String,
    provider: String,
    delivery: String,
    response: String,
    key: String,
    patient: String,
    clinician: String,
}

fn fill(template: &str, ids: &Ids, unknown: bool, takes_instrument: bool) -> String {
    let random = uuid::Uuid::new_v4().to_string();
    let mut path = template.to_string();
    let is_client = template.starts_with("/v1/clients");
    let id = if unknown {
        random.clone()
    } else if is_client {
        ids.client.clone()
    } else if template.starts_with("/v1/alerts") {
        ids.alert.clone()
    } else if template.starts_with("/v1/webhooks") {
        ids.webhook.clone()
    } else if template.starts_with("/v1/identity-providers") {
        ids.provider.clone()
    } else {
        ids.response.clone()
    };
    path = path.replace("{id}", &id);
    path = path.replace("{delivery_id}", if unknown { &random } else { &ids.delivery });
    path = path.replace("{key}", if unknown { "no-such-instrument" } else { &ids.key });
    path = path.replace("{v}", "1");
    path = path.replace("{patient}", if unknown { "no-such-patient" } else { &ids.patient });
    path = path.replace(
        "{clinician}",
        if unknown { "no-such-clinician" } else { &ids.clinician },
    );
    assert!(
        !path.contains('{'),
        "an unmapped path parameter in {template}: add it here"
    );
    // Only where the operation documents it: an unknown query parameter is 400 (v3).
    if !takes_instrument {
        return path;
    }
    format!(
        "{path}?instrument={}",
        if unknown { "no-such-instrument" } else { &ids.key }
    )
}

#[tokio::test]
async fn foreign_ids_answer_exactly_like_unknown_ones_on_every_route() {
    let app = TestApp::spawn().await;
    let first = app
        .token(&[
            "responses:write",
            "responses:read",
            "instruments:write",
            "org:admin",
            "export",
        ])
        .await;
    // The first organisation's resources.
    let key = "tenant-scale";
    assert_eq!(
        app.post_json(&first, "/v1/instruments", custom_instrument(key))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.post_json(&first, &format!("/v1/instruments/{key}/versions/1/publish"), json!({}))
            .await
            .status(),
        200
    );
    let answers: serde_json::Map<String, Value> = (1..=12).map(|i| (format!("q{i}"), json!(2))).collect();
    let body = json!({"instrument": key, "patient": "tenant-patient", "clinician": "tenant-doc",
        "administered_at": "2026-03-04T15:20:00Z", "session": 3, "answers": answers});
    let response: Value = app.post_json(&first, "/v1/responses", body).await.json().await.unwrap();
    let client: Value = app
        .post_json(&first, "/v1/clients", json!({"name": "c", "scopes": []}))
        .await
        .json()
        .await
        .unwrap();
    // An alert of the first organisation: a PHQ-9 with item 9 answered raises one.
    let phq9: serde_json::Map<String, Value> = (1..=9).map(|i| (i.to_string(), json!(1))).collect();
    let flagged = json!({"instrument": "phq-9", "patient": "tenant-patient", "administered_at": "2026-03-04T15:20:00Z",
        "answers": phq9});
    assert_eq!(app.post_json(&first, "/v1/responses", flagged).await.status(), 201);
    let started = std::time::Instant::now();
    let alert = loop {
        let page = app.get_json(&first, "/v1/alerts").await;
        if let Some(id) = page["items"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no alert: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // A webhook endpoint (a public address literal: nothing to resolve) and a delivery.
    let webhook: Value = app
        .post_json(
            &first,
            "/v1/webhooks",
            json!({"url": "https://93.184.215.14/hook", "events": ["alert.created"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let webhook = webhook["id"].as_str().unwrap().to_string();
    let delivery: Value = app
        .post_json(&first, &format!("/v1/webhooks/{webhook}/test"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    let provider: Value = app
        .post_json(
            &first,
            "/v1/identity-providers",
            json!({"issuer": "https://idp.tenant.example", "jwks_uri": "https://93.184.215.14/jwks", "audience": "rapport"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let ids = Ids {
        provider: provider["id"].as_str().unwrap().into(),
        client: client["id"].as_str().unwrap().into(),
        alert,
        webhook: webhook.clone(),
        delivery: delivery["id"].as_str().unwrap().into(),
        response: response["id"].as_str().unwrap().into(),
        key: key.into(),
        patient: "tenant-patient".into(),
        clinician: "tenant-doc".into(),
    };

    let (_, other) = app.create_org("tenant-other").await;
    let spec: Value = app.public_json("/openapi.json").await;
    let mut checked = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        if !template.contains('{') {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let takes_instrument = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" && p["name"] == "instrument"));
            let send = |path: String, unknown: bool| {
                let url = app.url(&path);
                // An erasure repeats the patient of its path.
                let post_body = if template.ends_with("/erase") {
                    json!({"confirm": if unknown { "no-such-patient" } else { ids.patient.as_str() }})
                } else {
                    json!({"reason": "tenancy check"})
                };
                let req = match method.as_str() {
                    "get" => app.http.get(url),
                    "delete" => app.http.delete(url),
                    "put" => app.http.put(url).json(&custom_instrument(key)),
                    "post" => app.http.post(url).json(&post_body),
                    other => panic!("unexpected method {other}"),
                };
                req.bearer_auth(&other).send()
            };
            let foreign = send(fill(template, &ids, false, takes_instrument), false)
                .await
                .unwrap();
            let unknown = send(fill(template, &ids, true, takes_instrument), true).await.unwrap();
            assert_eq!(foreign.status(), 404, "{method} {template} with a foreign id");
            assert_eq!(unknown.status(), 404, "{method} {template} with an unknown id");
            let (foreign, unknown) = (foreign.text().await.unwrap(), unknown.text().await.unwrap());
            assert_eq!(foreign, unknown, "{method} {template}: a foreign id must look unknown");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} routes with path parameters");

    // Lists show none of the first organisation's ids.
    for list in [
        "/v1/clients",
        "/v1/responses",
        "/v1/instruments",
        "/v1/audit-events",
        "/v1/webhooks",
        "/v1/identity-providers",
        "/v1/clinicians?instrument=tenant-scale&min_patients=1",
    ] {
        let text = app.get(&other, list).await.text().await.unwrap();
        for id in [
            &ids.client,
            &ids.response,
            &ids.patient,
            &ids.clinician,
            &ids.key,
            &ids.webhook,
            &ids.provider,
        ] {
            assert!(!text.contains(id.as_str()), "{list} shows {id}");
        }
    }
    // ... and the first organisation still has everything.
    assert_eq!(
        app.get(&first, &format!("/v1/responses/{}", ids.response))
            .await
            .status(),
        200
    );
}
