use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const FHIR: &str = "application/fhir+json";

/// Every resource rapport emits must read as a typed R4 resource with unknown elements refused.
pub fn conforms(resource: &Value) -> Resource {
    let config = Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    });
    match fhirbolt::serde::json::from_str::<Resource>(&resource.to_string(), config) {
        Ok(r) => r,
        Err(e) => panic!("not a conformant R4 resource ({e}): {resource:#}"),
    }
}

async fn fhir_get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .header("accept", FHIR)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!(
        res.headers()["content-type"].to_str().unwrap().starts_with(FHIR),
        "{path}"
    );
    let body: Value = res.json().await.unwrap();
    conforms(&body);
    (status, body)
}

async fn fhir_post(app: &TestApp, token: &str, body: &Value, extra: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(token)
        .header("content-type", FHIR);
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    req.body(body.to_string()).send().await.unwrap()
}

/// What a FHIR client does: read the Questionnaire, answer every item, send the response.
fn answer(questionnaire: &Value, identifier: &str, values: &[i64]) -> Value {
    let items: Vec<Value> = questionnaire["item"]
        .as_array()
        .unwrap()
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (item, v))| {
            // Alternate answer forms: integers, and codings from the answer options.
            let answer = if i % 2 == 0 {
                json!({"valueInteger": v})
            } else {
                json!({"valueCoding": {"code": v.to_string()}})
            };
            json!({"linkId": item["linkId"], "answer": [answer]})
        })
        .collect();
    // v3: items are flat (a nested group is 422: `corrections_v3` tests it).
    let all = items;
    json!({
        "resourceType": "QuestionnaireResponse",
        "questionnaire": format!("{}|{}", questionnaire["url"].as_str().unwrap(), questionnaire["version"].as_str().unwrap()),
        "status": "completed",
        "identifier": {"system": "urn:ehr:encounters", "value": identifier},
        "subject": {"reference": "Patient/p-fhir"},
        "authored": "2026-03-04T15:20:00Z",
        "extension": [{"url": "http://ehr.example/fhir/StructureDefinition/rated-clinician", "valueReference": {"reference": "Practitioner/dr-9"}}],
        "item": all,
    })
}

#[tokio::test]
async fn capability_statement_and_questionnaires_conform() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:read"]).await;
    let res = app.http.get(app.url("/fhir/r4/metadata")).send().await.unwrap();
    let cs: Value = res.json().await.unwrap();
    conforms(&cs);
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["Questionnaire", "QuestionnaireResponse", "Observation"]);

    let (status, q) = fhir_get(&app, &token, "/fhir/r4/Questionnaire/wai-sr").await;
    assert_eq!(status, 200);
    assert_eq!(q["version"], "1");
    assert_eq!(q["status"], "active");
    assert!(q["url"].as_str().unwrap().ends_with("/fhir/r4/Questionnaire/wai-sr"));
    assert!(
        q["copyright"]
            .as_str()
            .unwrap()
            .contains("Society for Psychotherapy Research")
    );
    let items = q["item"].as_array().unwrap();
    assert_eq!(items.len(), 12);
    assert_eq!(items[0]["linkId"], "1");
    assert_eq!(items[0]["type"], "integer");
    assert!(
        items[0].get("text").is_none(),
        "no item text for a copyrighted instrument"
    );
    assert_eq!(items[0]["code"][0]["code"], "task");
    assert_eq!(items[0]["answerOption"].as_array().unwrap().len(), 5);
    assert_eq!(items[0]["answerOption"][4]["valueCoding"]["display"], "Always");

    let (_, srs) = fhir_get(&app, &token, "/fhir/r4/Questionnaire/srs").await;
    assert_eq!(srs["item"][0]["type"], "decimal");
    assert_eq!(srs["item"][0]["extension"][1]["valueDecimal"], 10.0);

    let url = q["url"].as_str().unwrap().to_string();
    let (_, bundle) = fhir_get(&app, &token, &format!("/fhir/r4/Questionnaire?url={url}&version=1")).await;
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 1);
    let (_, none) = fhir_get(&app, &token, &format!("/fhir/r4/Questionnaire?url={url}&version=7")).await;
    assert!(none.get("entry").is_none_or(|e| e.as_array().unwrap().is_empty()));
    let (status, missing) = fhir_get(&app, &token, "/fhir/r4/Questionnaire/nope").await;
    assert_eq!(
        (status, missing["resourceType"].as_str()),
        (404, Some("OperationOutcome"))
    );
}

#[tokio::test]
async fn round_trip_questionnaire_to_observation() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let (_, q) = fhir_get(&app, &token, "/fhir/r4/Questionnaire/wai-sr").await;
    let qr = answer(&q, "enc-1", &[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]);
    let res = fhir_post(&app, &token, &qr, None).await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let stored: Value = res.json().await.unwrap();
    conforms(&stored);
    let id = stored["id"].as_str().unwrap().to_string();
    assert!(location.ends_with(&format!("/fhir/r4/QuestionnaireResponse/{id}")));
    assert_eq!(stored["item"].as_array().unwrap().len(), 12, "groups flattened");
    assert_eq!(stored["item"][1]["answer"][0]["valueInteger"], 2);

    // The same response through the native API: scored, rated clinician kept, source fhir.
    let native: Value = app.get_json(&token, &format!("/v1/responses/{id}")).await;
    assert_eq!(native["source"], "fhir");
    assert_eq!(native["clinician"], "dr-9");
    assert_eq!(native["patient"], "p-fhir");
    // The identifier's system and value stay apart (never one "system|value" string).
    assert_eq!(native["external_id"], "enc-1");
    assert_eq!(native["external_system"], "urn:ehr:encounters");
    assert_eq!(native["score"]["total"], 33.0);

    let (_, read) = fhir_get(&app, &token, &format!("/fhir/r4/QuestionnaireResponse/{id}")).await;
    assert_eq!(read["identifier"]["value"], "enc-1");
    assert_eq!(read["status"], "completed");

    let (_, bundle) = fhir_get(
        &app,
        &token,
        "/fhir/r4/Observation?subject=Patient/p-fhir&code=wai-sr-total",
    )
    .await;
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let obs = &entries[0]["resource"];
    assert_eq!(obs["valueQuantity"]["value"], native["score"]["total"]);
    assert_eq!(obs["valueQuantity"]["unit"], "{score}");
    assert_eq!(obs["code"]["coding"][0]["code"], "wai-sr-total");
    assert_eq!(obs["category"][0]["coding"][0]["code"], "survey");
    assert_eq!(
        obs["derivedFrom"][0]["reference"],
        format!("QuestionnaireResponse/{id}")
    );
    let components = obs["component"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    let task = components
        .iter()
        .find(|c| c["code"]["coding"][0]["code"] == "wai-sr-task")
        .unwrap();
    assert_eq!(
        task["valueQuantity"]["value"],
        native["score"]["subscales"]["task"]["total"]
    );
    assert_eq!(obs["performer"][0]["reference"], "Patient/p-fhir");

    // Re-post: 200 with the same resource; If-None-Exist too; a changed payload is 409.
    let again = fhir_post(&app, &token, &qr, None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
    let mut changed = answer(&q, "enc-1", &[5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
    let conditional = fhir_post(
        &app,
        &token,
        &changed,
        Some(("If-None-Exist", "identifier=urn:ehr:encounters|enc-1")),
    )
    .await;
    assert_eq!(conditional.status(), 200);
    let conflict = fhir_post(&app, &token, &changed, None).await;
    assert_eq!(conflict.status(), 409);
    conforms(&conflict.json::<Value>().await.unwrap());

    // entered-in-error voids it: read back as such, gone from the Observation search.
    changed["status"] = json!("entered-in-error");
    let voided = fhir_post(&app, &token, &changed, None).await;
    assert_eq!(voided.status(), 200);
    assert_eq!(voided.json::<Value>().await.unwrap()["status"], "entered-in-error");
    let native: Value = app.get_json(&token, &format!("/v1/responses/{id}")).await;
    assert_eq!(native["status"], "voided");
    let (_, bundle) = fhir_get(&app, &token, "/fhir/r4/Observation?subject=Patient/p-fhir").await;
    assert!(bundle.get("entry").is_none_or(|e| e.as_array().unwrap().is_empty()));
}

#[tokio::test]
async fn errors_are_operation_outcomes_pointing_at_the_item() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let (_, q) = fhir_get(&app, &token, "/fhir/r4/Questionnaire/wai-sr").await;
    let mut qr = answer(&q, "enc-bad", &[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]);
    qr["item"][3]["answer"][0] = json!({"valueInteger": 9});
    let res = fhir_post(&app, &token, &qr, None).await;
    assert_eq!(res.status(), 422);
    let oo: Value = res.json().await.unwrap();
    conforms(&oo);
    assert_eq!(
        oo["issue"][0]["expression"][0],
        "QuestionnaireResponse.item[3].answer[0]"
    );

    // v3: an answer form rapport does not read is refused by name.
    let mut other_form = answer(&q, "enc-bad2", &[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]);
    other_form["item"][9]["answer"][0] = json!({"valueString": "often"});
    let oo: Value = fhir_post(&app, &token, &other_form, None).await.json().await.unwrap();
    assert_eq!(
        oo["issue"][0]["expression"][0],
        "QuestionnaireResponse.item[9].answer[0].valueString"
    );

    let mut in_progress = answer(&q, "enc-wip", &[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]);
    in_progress["status"] = json!("in-progress");
    let res = fhir_post(&app, &token, &in_progress, None).await;
    assert_eq!(res.status(), 422);
    let oo: Value = res.json().await.unwrap();
    assert_eq!(oo["issue"][0]["expression"][0], "QuestionnaireResponse.status");

    let mut no_subject = answer(&q, "enc-x", &[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]);
    no_subject.as_object_mut().unwrap().remove("subject");
    let oo: Value = fhir_post(&app, &token, &no_subject, None).await.json().await.unwrap();
    assert_eq!(oo["issue"][0]["expression"][0], "QuestionnaireResponse.subject");

    let res = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .header("content-type", FHIR)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    conforms(&res.json::<Value>().await.unwrap());
    let res = fhir_post(&app, &token, &json!({"resourceType": "Patient"}), None).await;
    assert_eq!(res.status(), 422);
    let (status, oo) = fhir_get(&app, &token, "/fhir/r4/Observation").await;
    assert_eq!((status, oo["resourceType"].as_str()), (400, Some("OperationOutcome")));
    // Plain application/json is accepted too.
    let ok = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(&token)
        .json(&answer(&q, "enc-json", &[3; 12]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn observation_search_filters_pages_and_stays_in_the_tenant() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let (_, q) = fhir_get(&app, &token, "/fhir/r4/Questionnaire/wai-sr").await;
    let mut ids = Vec::new();
    for (i, day) in ["2026-01-05", "2026-02-05", "2026-03-05"].iter().enumerate() {
        let mut qr = answer(&q, &format!("enc-{i}"), &[3; 12]);
        qr["authored"] = json!(format!("{day}T10:00:00Z"));
        let res: Value = fhir_post(&app, &token, &qr, None).await.json().await.unwrap();
        ids.push(res["id"].as_str().unwrap().to_string());
    }
    let (_, page1) = fhir_get(
        &app,
        &token,
        "/fhir/r4/Observation?subject=Patient/p-fhir&_count=2&_sort=-date",
    )
    .await;
    let first: Vec<&str> = page1["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, vec![ids[2].as_str(), ids[1].as_str()]);
    let next = page1["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = &next[next.find("/fhir/").unwrap()..];
    let (_, page2) = fhir_get(&app, &token, path).await;
    assert_eq!(page2["entry"][0]["resource"]["id"], ids[0].as_str());
    assert!(
        page2["link"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["relation"] != "next")
    );

    let (_, dated) = fhir_get(
        &app,
        &token,
        "/fhir/r4/Observation?subject=Patient/p-fhir&date=ge2026-02-01&date=le2026-02-28",
    )
    .await;
    assert_eq!(dated["entry"].as_array().unwrap().len(), 1);
    let (_, derived) = fhir_get(
        &app,
        &token,
        &format!(
            "/fhir/r4/Observation?subject=Patient/p-fhir&derived-from=QuestionnaireResponse/{}",
            ids[1]
        ),
    )
    .await;
    assert_eq!(derived["entry"][0]["resource"]["id"], ids[1].as_str());

    let (_, other) = app.create_org("fhir-other").await;
    let (status, _) = fhir_get(&app, &other, &format!("/fhir/r4/QuestionnaireResponse/{}", ids[0])).await;
    assert_eq!(status, 404);
    let (_, none) = fhir_get(&app, &other, "/fhir/r4/Observation?subject=Patient/p-fhir").await;
    assert!(none.get("entry").is_none_or(|e| e.as_array().unwrap().is_empty()));
}
