//! Unscored responses are never invisible: a patient's trend lists them apart from the
//! points, the chart marks them on the time axis, and exports carry their reason and flags
//! (SPEC v3, "Safety flags never wait for a score").

use serde_json::{Value, json};

use crate::builders::phq9_unscored_with_item_9;
use crate::builders::{ResponseBuilder, phq9_answers};
use crate::helpers::{TestApp, csv_rows};

#[tokio::test]
async fn an_unscored_response_shows_in_the_trend_the_chart_and_exports_with_its_reason_and_flags() {
    let app = TestApp::spawn().await;
    let token = app
        .token(&["responses:write", "responses:read", "export", "export:identified"])
        .await;
    let post = |day: u32, answers: Value| {
        ResponseBuilder::new("phq-9", "p-u")
            .session(day)
            .at(&format!("2026-03-{day:02}T10:00:00Z"))
            .answers(answers)
            .post(&app, &token)
    };
    post(1, phq9_answers(14, 0)).await;
    let unscored = post(8, phq9_unscored_with_item_9(3)).await;
    post(15, phq9_answers(10, 0)).await;

    let trend = app.get_json(&token, "/v1/patients/p-u/trends?instrument=phq-9").await;
    assert_eq!(trend["points"].as_array().unwrap().len(), 2, "{trend}");
    assert_eq!(trend["summary"]["n"], 2);
    let listed = trend["unscored"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{trend}");
    assert_eq!(listed[0]["response_id"], unscored["id"]);
    assert_eq!(listed[0]["administered_at"], "2026-03-08T10:00:00Z");
    assert_eq!(listed[0]["flags"], json!(["item_9_positive"]));
    assert_eq!(listed[0]["reason"], unscored["score_error"]);
    assert!(listed[0]["reason"].as_str().unwrap().contains("missing"));

    for query in ["", "&x=session"] {
        let svg = app
            .get(&token, &format!("/v1/patients/p-u/trends.svg?instrument=phq-9{query}"))
            .await
            .bytes()
            .await
            .unwrap();
        let tree = resvg::usvg::Tree::from_data(&svg, &resvg::usvg::Options::default()).expect("a valid SVG");
        assert!(
            tree.node_by_id("unscored-0").is_some(),
            "marker on the x axis ({query})"
        );
        assert!(tree.node_by_id("point-1").is_some() && tree.node_by_id("point-2").is_none());
        let text = String::from_utf8_lossy(&svg);
        assert!(
            text.contains("item_9_positive") && text.contains("could not be scored"),
            "{text}"
        );
    }

    // A series of only an unscored response still has a chart with its marker, not "no data".
    let body = ResponseBuilder::new("phq-9", "p-only")
        .at("2026-03-02T10:00:00Z")
        .answers(phq9_unscored_with_item_9(2))
        .body();
    assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
    let only = app
        .get_json(&token, "/v1/patients/p-only/trends?instrument=phq-9")
        .await;
    assert_eq!(only["unscored"].as_array().unwrap().len(), 1, "{only}");
    let svg = app
        .get(&token, "/v1/patients/p-only/trends.svg?instrument=phq-9")
        .await
        .text()
        .await
        .unwrap();
    assert!(svg.contains(r#"id="unscored-0""#) && !svg.contains("no-data"), "{svg}");

    let csv = app
        .get(
            &token,
            "/v1/exports/responses?instrument=phq-9&format=csv&pseudonymize=false",
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",prorated,flags,score_error"));
    let rows = csv_rows(&csv);
    let row = rows
        .iter()
        .find(|r| r["id"] == unscored["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(row["flags"], "item_9_positive");
    assert_eq!(row["total"], "");
    assert_eq!(&row["score_error"], unscored["score_error"].as_str().unwrap());
    let scored = rows
        .iter()
        .find(|r| r["id"] != unscored["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(scored["score_error"], "");

    let ndjson = app
        .get(
            &token,
            "/v1/exports/responses?instrument=phq-9&format=ndjson&pseudonymize=false",
        )
        .await
        .text()
        .await
        .unwrap();
    let line: Value = ndjson
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["id"] == unscored["id"])
        .unwrap();
    assert!(line["score"].is_null());
    assert_eq!(line["score_flags"], json!(["item_9_positive"]));
    assert_eq!(line["score_error"], unscored["score_error"]);
}
