//! Outcome measures next to the alliance: PHQ-9 and GAD-7, direction, bands, the safety
//! flag, response and remission.

use serde_json::{Value, json};

use crate::builders::phq9_answers;
use crate::helpers::{TestApp, assert_problem, pointers};

async fn post_series(app: &TestApp, token: &str, instrument: &str, patient: &str, totals: &[u32]) {
    for (week, total) in totals.iter().enumerate() {
        let body = json!({"instrument": instrument, "patient": patient, "clinician": "dr-p",
            "administered_at": format!("2026-02-{:02}T09:00:00Z", 2 + 7 * week), "session": week + 1,
            "answers": phq9_answers(*total, 0)});
        let res = app.post_json(token, "/v1/responses", body).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
}

#[tokio::test]
async fn a_phq9_series_shows_response_remission_and_reliable_improvement() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    post_series(&app, &token, "phq-9", "p-dep", &[18, 12, 8, 4]).await;
    let trend = app.get_json(&token, "/v1/patients/p-dep/trends?instrument=phq-9").await;
    let s = &trend["summary"];
    assert_eq!(s["change"], -14.0);
    assert_eq!(s["direction"], "lower_is_better");
    assert_eq!(s["reliable_change"], "improved");
    assert_eq!(s["reliable_change_rule"], "points");
    assert_eq!(s["response"], true, "14 >= 0.5 x 18");
    assert_eq!(s["remission"], true, "4 < 5");
    assert_eq!(s["baseline_band"], "moderately severe");
    assert_eq!(s["latest_band"], "minimal");
    assert_eq!(s["ruptures"], json!([]), "outcome instruments have no rupture rule");
    let bands: Vec<&str> = trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["band"].as_str().unwrap())
        .collect();
    assert_eq!(bands, ["moderately severe", "moderate", "mild", "minimal"]);
    // Clinician summaries count reliable change in the instrument's direction too.
    let summary = app
        .get_json(&token, "/v1/clinicians/dr-p/summary?instrument=phq-9")
        .await;
    assert_eq!(
        summary["reliable_change"],
        json!({"improved": 1, "unchanged": 0, "deteriorated": 0})
    );
    let trajectory = app.get_json(&token, "/v1/trajectory?instrument=phq-9").await;
    assert_eq!(trajectory["points"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn the_same_series_on_a_higher_is_better_outcome_is_a_deterioration() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&["responses:write", "responses:read", "instruments:write"])
        .await;
    let definition = json!({
        "key": "wellbeing-9", "title": "A functioning measure", "kind": "outcome", "direction": "higher_is_better",
        "raters": ["patient"], "scale": {"min": 0, "max": 3, "step": 1},
        "items": (1..=9).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>(),
        "scoring": {"method": "sum"},
        "interpretation": {"bands": [{"min": 0, "max": 9, "label": "low"}, {"min": 10, "max": 27, "label": "good"}]},
        "outcome": {"response_reduction": 0.5, "remission": {"value": 5, "comparator": "lt"}, "reliable_change_points": 6},
        "rupture": null});
    let res = app.post_json(&token, "/v1/instruments", definition).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let publish = app
        .post_json(&token, "/v1/instruments/wellbeing-9/versions/1/publish", json!({}))
        .await;
    assert_eq!(publish.status(), 200);
    post_series(&app, &token, "wellbeing-9", "p-w", &[18, 12, 8, 4]).await;
    let s = &app
        .get_json(&token, "/v1/patients/p-w/trends?instrument=wellbeing-9")
        .await["summary"];
    assert_eq!(s["direction"], "higher_is_better");
    assert_eq!(s["reliable_change"], "deteriorated");
    assert_eq!(s["response"], false);
    assert_eq!(s["remission"], true, "remission is the comparison on the latest total");
    assert_eq!(
        (s["baseline_band"].as_str(), s["latest_band"].as_str()),
        (Some("good"), Some("low"))
    );
}

#[tokio::test]
async fn item_9_is_flagged_in_the_stored_score_at_once() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    let body = json!({"instrument": "phq-9", "patient": "p-safety", "administered_at": "2026-02-02T09:00:00Z",
        "answers": phq9_answers(4, 1)});
    let res = app.post_json(&token, "/v1/responses", body).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["score"]["total"], 4.0);
    assert_eq!(created["score"]["band"], "minimal");
    assert_eq!(created["score"]["flags"], json!(["item_9_positive"]));
}

#[tokio::test]
async fn alliance_trends_keep_their_v1_meaning_with_the_new_fields_present() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let body = crate::builders::wai_sr("p-wai", None);
    assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
    let trend = app
        .get_json(&token, "/v1/patients/p-wai/trends?instrument=wai-sr")
        .await;
    let s = &trend["summary"];
    assert_eq!(s["direction"], "higher_is_better");
    assert_eq!(s["reliable_change_rule"], "rci");
    for field in [
        "response",
        "remission",
        "baseline_band",
        "latest_band",
        "reliable_change",
        "rci",
    ] {
        assert!(
            s.get(field).is_some_and(Value::is_null),
            "{field} is present and null: {s}"
        );
    }
    assert!(trend["points"][0]["band"].is_null());
    let wai = app.get_json(&token, "/v1/instruments/wai-sr/versions/1").await;
    assert_eq!(
        (wai["kind"].as_str(), wai["direction"].as_str()),
        (Some("alliance"), Some("higher_is_better"))
    );
    assert_eq!(wai["rupture"]["rule"], "reliable_drop");
}

#[tokio::test]
async fn outcome_fields_are_validated_naming_each_problem() {
    let app = TestApp::spawn().await;
    let token = app.token(&["instruments:write"]).await;
    let definition = json!({
        "key": "bad-outcome", "title": "Bad", "kind": "outcome", "direction": "lower_is_better",
        "raters": ["patient"], "scale": {"min": 0, "max": 3, "step": 1},
        "items": (1..=3).map(|i| json!({"id": i.to_string()})).collect::<Vec<_>>(),
        "scoring": {"method": "sum"},
        "interpretation": {
            "bands": [{"min": 0, "max": 4, "label": "low"}, {"min": 3, "max": 9, "label": "high"},
                      {"min": 8, "max": 7, "label": "reversed"}],
            "item_flags": [{"item": "7", "comparator": "eq", "value": 1, "flag": "Bad Flag"}]},
        "outcome": {"response_reduction": 1.5, "remission": {"value": 5, "comparator": "under"},
                    "reliable_change_points": 0},
        "rupture": null});
    let problem = assert_problem(app.post_json(&token, "/v1/instruments", definition).await, 422).await;
    let named = pointers(&problem);
    for pointer in [
        "/interpretation/bands/1/min",
        "/interpretation/bands/2/max",
        "/interpretation/item_flags/0/item",
        "/interpretation/item_flags/0/comparator",
        "/interpretation/item_flags/0/flag",
        "/outcome/response_reduction",
        "/outcome/remission/comparator",
        "/outcome/reliable_change_points",
    ] {
        assert!(named.contains(&pointer.to_string()), "{pointer} in {named:?}");
    }
    // A band beyond the possible totals (3 items x 3 = 9) is refused too.
    let beyond = json!({"key": "beyond", "title": "B", "raters": ["patient"], "scale": {"min": 0, "max": 3, "step": 1},
        "items": [{"id": "1"}], "scoring": {"method": "sum"},
        "interpretation": {"bands": [{"min": 0, "max": 4, "label": "x"}]}});
    let problem = assert_problem(app.post_json(&token, "/v1/instruments", beyond).await, 422).await;
    assert_eq!(pointers(&problem), ["/interpretation/bands/0/min"]);
    let unknown_kind = json!({"key": "kind", "title": "K", "kind": "symptom", "raters": ["patient"],
        "scale": {"min": 0, "max": 3, "step": 1}, "items": [{"id": "1"}], "scoring": {"method": "sum"}});
    let problem = assert_problem(app.post_json(&token, "/v1/instruments", unknown_kind).await, 422).await;
    assert_eq!(pointers(&problem), ["/kind"]);
}

#[tokio::test]
async fn phq9_in_fhir_carries_item_text_loinc_and_its_band() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let q = app.get_json(&token, "/fhir/r4/Questionnaire/phq-9").await;
    crate::fhir::conforms(&q);
    assert_eq!(q["item"][0]["text"], "Little interest or pleasure in doing things");
    assert_eq!(
        q["item"][8]["answerOption"][3]["valueCoding"]["display"],
        "Nearly every day"
    );
    let items: Vec<Value> = (1..=9)
        .map(|i| json!({"linkId": i.to_string(), "answer": [{"valueInteger": if i <= 6 { 2 } else { 0 }}]}))
        .collect();
    let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": format!("{}|1", q["url"].as_str().unwrap()),
        "subject": {"reference": "Patient/p-fhir"}, "authored": "2026-02-02T09:00:00Z", "item": items});
    let res = app
        .http
        .post(app.url("/fhir/r4/QuestionnaireResponse"))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(qr.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let search = app
        .get_json(
            &token,
            "/fhir/r4/Observation?subject=Patient/p-fhir&code=http://loinc.org%7C44261-6",
        )
        .await;
    crate::fhir::conforms(&search);
    let obs = &search["entry"][0]["resource"];
    assert_eq!(obs["valueQuantity"]["value"], 12.0);
    let codings = obs["code"]["coding"].as_array().unwrap();
    assert!(
        codings
            .iter()
            .any(|c| c["system"] == "http://loinc.org" && c["code"] == "44261-6")
    );
    assert_eq!(obs["interpretation"][0]["text"], "moderate");
}

#[tokio::test]
async fn the_openapi_document_describes_the_outcome_fields() {
    let app = TestApp::spawn().await;
    let doc: Value = app.public_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        ("NewInstrument", &["kind", "direction", "outcome", "rupture"][..]),
        ("InterpretationSpec", &["bands", "item_flags"][..]),
        (
            "OutcomeSpec",
            &["response_reduction", "remission", "reliable_change_points"][..],
        ),
        (
            "TrendSummary",
            &[
                "direction",
                "reliable_change_rule",
                "baseline_band",
                "latest_band",
                "response",
                "remission",
            ][..],
        ),
        ("TrendPoint", &["band"][..]),
        ("Score", &["band"][..]),
    ] {
        for field in fields {
            assert!(
                schemas[schema]["properties"].get(*field).is_some(),
                "{schema}.{field} is described"
            );
        }
    }
}
