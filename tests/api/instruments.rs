use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, item_strings, pointers};

/// A custom instrument shape: 12 items on 0-4, three subscales, three reverse-keyed items.
pub fn custom_instrument(key: &str) -> Value {
    let items: Vec<Value> = (1..=12)
        .map(|i| {
            let subscale = ["bond", "partnership", "confidence"][(i - 1) / 4];
            let reverse = [3, 7, 11].contains(&i);
            json!({"id": format!("q{i}"), "subscale": subscale, "reverse": reverse})
        })
        .collect();
    json!({
        "key": key, "title": "Custom alliance measure", "citation": "Our clinic, 2026", "licence": "internal",
        "raters": ["patient", "clinician"],
        "scale": {"min": 0, "max": 4, "step": 1, "labels": {"0": "Not at all", "4": "Very much"}},
        "items": items,
        "subscales": [{"key": "bond", "title": "Bond"}, {"key": "partnership", "title": "Partnership"},
                      {"key": "confidence", "title": "Confidence"}],
        "scoring": {"method": "sum", "missing": {"max_per_subscale": 1, "max_total": 2}},
        "interpretation": {"cutoff": {"value": 24, "comparator": "lt"}, "item_threshold": null},
        "norms": {"sd": 8.0, "reliability": 0.9, "source": "pilot"},
        "rupture": {"rule": "sd_drop", "k": 1, "repair_window": 2}
    })
}

#[tokio::test]
async fn a_fresh_start_lists_the_seven_builtins() {
    let app = TestApp::spawn().await;
    let token = app.token(&[]).await; // any authenticated client reads the catalogue
    let res = app.get(&token, "/v1/instruments").await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let keys = item_strings(&list, "key");
    // Five alliance measures and (v2) two outcome measures.
    assert_eq!(
        keys,
        vec!["gad-7", "haq-ii", "pdrq-9", "phq-9", "srs", "wai-s", "wai-sr"]
    );
    let wai: Value = app.get_json(&token, "/v1/instruments/wai-sr/versions/1").await;
    assert_eq!(wai["owner"], "builtin");
    assert_eq!(wai["status"], "published");
    assert_eq!(wai["items"].as_array().unwrap().len(), 12);
    assert!(
        wai["items"].as_array().unwrap().iter().all(|i| i["text"].is_null()),
        "no item text shipped"
    );
    assert!(wai["citation"].as_str().unwrap().contains("Hatcher"));
    assert_eq!(wai["scoring"]["missing"]["max_per_subscale"], 1);
    let srs: Value = app.get_json(&token, "/v1/instruments/srs").await;
    assert_eq!(srs["latest"]["interpretation"]["cutoff"]["comparator"], "lt");
    assert_eq!(srs["versions"][0]["version"], 1);
    assert_problem(app.get(&token, "/v1/instruments/nope").await, 404).await;
    assert_problem(app.get(&token, "/v1/instruments/wai-sr/versions/2").await, 404).await;
    assert_problem(app.get(&token, "/v1/instruments/wai-sr/versions/x").await, 404).await;
    assert_problem(app.get(&token, "/v1/instruments?status=bogus").await, 400).await;
}

#[tokio::test]
async fn builtins_are_loaded_once_per_start() {
    let app = TestApp::spawn().await;
    // A second instance on the same database upserts, never duplicates.
    let db = app.db_name.clone();
    let second = TestApp::spawn_with(|s| s.database_url = format!("{}/{db}", crate::backend::server_url())).await;
    let token = second.admin_token().await;
    let list: Value = second.get_json(&token, "/v1/instruments").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 7);
    std::mem::forget(second); // the first app drops the shared database
}

#[tokio::test]
async fn custom_instrument_lifecycle_and_scoring() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["instruments:write"]).await;
    let res = app
        .post_json(&writer, "/v1/instruments", custom_instrument("clinic-alliance"))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/v1/instruments/clinic-alliance/versions/1");
    let v1: Value = res.json().await.unwrap();
    assert_eq!(
        (v1["version"].as_i64(), v1["status"].as_str(), v1["owner"].as_str()),
        (Some(1), Some("draft"), Some("default"))
    );

    // Not yet published: no latest, and scoring without a version fails.
    let overview: Value = app.get_json(&writer, "/v1/instruments/clinic-alliance").await;
    assert!(overview["latest"].is_null());
    let answers: Value = (1..=12)
        .map(|i| (format!("q{i}"), json!(4)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let res = app
        .post_json(
            &writer,
            "/v1/score",
            json!({"instrument": "clinic-alliance", "answers": answers}),
        )
        .await;
    assert_eq!(pointers(&assert_problem(res, 422).await), vec!["/instrument"]);

    // Drafts can be replaced.
    let mut changed = custom_instrument("clinic-alliance");
    changed["title"] = json!("Custom alliance measure (revised)");
    let res = app
        .http
        .put(app.url("/v1/instruments/clinic-alliance/versions/1"))
        .bearer_auth(&writer)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut wrong_key = changed.clone();
    wrong_key["key"] = json!("other");
    let res = app
        .http
        .put(app.url("/v1/instruments/clinic-alliance/versions/1"))
        .bearer_auth(&writer)
        .json(&wrong_key)
        .send()
        .await
        .unwrap();
    assert_eq!(pointers(&assert_problem(res, 422).await), vec!["/key"]);

    // Publish (twice is harmless); then it is immutable.
    let publish = "/v1/instruments/clinic-alliance/versions/1/publish";
    let res = app.post_json(&writer, publish, json!({})).await;
    assert_eq!(res.status(), 200);
    let published: Value = res.json().await.unwrap();
    assert_eq!(published["status"], "published");
    assert_eq!(published["title"], "Custom alliance measure (revised)");
    assert_eq!(app.post_json(&writer, publish, json!({})).await.status(), 200);
    let res = app
        .http
        .put(app.url("/v1/instruments/clinic-alliance/versions/1"))
        .bearer_auth(&writer)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_problem(res, 409).await;

    // Scored through the API: 9 x 4 + 3 reverse-keyed x 0 = 36.
    let res = app
        .post_json(
            &writer,
            "/v1/score",
            json!({"instrument": "clinic-alliance", "answers": answers}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let scored: Value = res.json().await.unwrap();
    assert_eq!(scored["instrument_version"], 1);
    assert_eq!(scored["score"]["total"], 36.0);
    assert_eq!(scored["score"]["subscales"]["bond"]["total"], 12.0);
    assert_eq!(scored["score"]["pomp"], 75.0);
    assert_eq!(scored["score"]["flags"], json!([]));
    let zeros: Value = (1..=12)
        .map(|i| (format!("q{i}"), json!(0)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let res = app
        .post_json(
            &writer,
            "/v1/score",
            json!({"instrument": "clinic-alliance", "answers": zeros}),
        )
        .await;
    let scored: Value = res.json().await.unwrap();
    assert_eq!(scored["score"]["total"], 12.0);
    assert_eq!(scored["score"]["flags"], json!(["below_cutoff"]));

    // A second POST of the same key makes version 2, a draft.
    let res = app
        .post_json(&writer, "/v1/instruments", custom_instrument("clinic-alliance"))
        .await;
    let v2: Value = res.json().await.unwrap();
    assert_eq!(
        (v2["version"].as_i64(), v2["status"].as_str()),
        (Some(2), Some("draft"))
    );
    // Retiring a draft is a conflict; retiring the published version works and repeats.
    assert_problem(
        app.post_json(&writer, "/v1/instruments/clinic-alliance/versions/2/retire", json!({}))
            .await,
        409,
    )
    .await;
    let retire = "/v1/instruments/clinic-alliance/versions/1/retire";
    let res = app.post_json(&writer, retire, json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "retired");
    assert_eq!(app.post_json(&writer, retire, json!({})).await.status(), 200);
    assert_problem(app.post_json(&writer, publish, json!({})).await, 409).await;
    // A retired version still scores when pinned.
    let res = app
        .post_json(
            &writer,
            "/v1/score",
            json!({"instrument": "clinic-alliance", "instrument_version": 1, "answers": answers}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let listed: Value = app.get_json(&writer, "/v1/instruments?status=retired").await;
    let keys = item_strings(&listed, "key");
    assert_eq!(keys, vec!["clinic-alliance"]);

    // Every write is an audit event.
    let admin = app.admin_token().await;
    let events: Value = app.get_json(&admin, "/v1/audit-events").await;
    let actions = item_strings(&events, "action");
    for action in [
        "instrument.created",
        "instrument.updated",
        "instrument.published",
        "instrument.retired",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn builtins_cannot_be_shadowed_or_changed_and_writes_need_the_scope() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["instruments:write"]).await;
    let res = app
        .post_json(&writer, "/v1/instruments", custom_instrument("wai-sr"))
        .await;
    assert_problem(res, 409).await;
    let res = app
        .http
        .put(app.url("/v1/instruments/wai-sr/versions/1"))
        .bearer_auth(&writer)
        .json(&custom_instrument("wai-sr"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409).await;
    assert_problem(
        app.post_json(&writer, "/v1/instruments/wai-sr/versions/1/retire", json!({}))
            .await,
        409,
    )
    .await;
    assert_problem(
        app.post_json(&writer, "/v1/instruments/srs/versions/1/publish", json!({}))
            .await,
        409,
    )
    .await;

    let reader = app.token(&["responses:read"]).await;
    assert_problem(
        app.post_json(&reader, "/v1/instruments", custom_instrument("mine"))
            .await,
        403,
    )
    .await;
}

#[tokio::test]
async fn inconsistent_definitions_name_every_problem() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["instruments:write"]).await;
    let mut bad = custom_instrument("Bad Key");
    bad["raters"] = json!(["patient", "robot"]);
    bad["scale"] = json!({"min": 0, "max": 4, "step": 3, "labels": {"9": "Too high"}});
    bad["items"][1]["id"] = json!("q1");
    bad["items"][2]["id"] = json!("");
    bad["items"][5]["subscale"] = json!("ghost");
    bad["subscales"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "empty", "title": "Empty"}));
    bad["scoring"] = json!({"method": "median", "missing": {"max_per_subscale": 1, "max_total": 12}});
    bad["interpretation"] = json!({"cutoff": {"value": 24, "comparator": "below"}});
    bad["norms"] = json!({"sd": -1, "reliability": 1.0});
    bad["rupture"] = json!({"rule": "vibes", "k": 2, "repair_window": 0});
    bad["title"] = json!("x".repeat(300));
    let res = app.post_json(&writer, "/v1/instruments", bad).await;
    let problem = assert_problem(res, 422).await;
    let found = pointers(&problem);
    for expected in [
        "/key",
        "/title",
        "/raters/1",
        "/scale/step",
        "/scale/labels/9",
        "/items/1/id",
        "/items/2/id",
        "/items/5/subscale",
        "/subscales/3",
        "/scoring/method",
        "/scoring/missing/max_total",
        "/interpretation/cutoff/comparator",
        "/norms/sd",
        "/norms/reliability",
        "/rupture/rule",
        "/rupture/repair_window",
    ] {
        assert!(
            found.contains(&expected.to_string()),
            "{expected} missing from {found:?}"
        );
    }

    let mut wrong_scale = custom_instrument("scale-check");
    wrong_scale["scale"] = json!({"min": 5, "max": 1, "step": 1});
    let res = app.post_json(&writer, "/v1/instruments", wrong_scale).await;
    assert!(pointers(&assert_problem(res, 422).await).contains(&"/scale/max".to_string()));

    let mut too_many = custom_instrument("too-many");
    too_many["items"] = (0..501)
        .map(|i| json!({"id": i.to_string()}))
        .collect::<Vec<_>>()
        .into();
    too_many["subscales"] = json!([]);
    too_many["scoring"]["missing"] = json!({});
    let res = app.post_json(&writer, "/v1/instruments", too_many).await;
    assert!(pointers(&assert_problem(res, 422).await).contains(&"/items".to_string()));

    let mut extra = custom_instrument("extra");
    extra["status"] = json!("published");
    let res = app.post_json(&writer, "/v1/instruments", extra).await;
    assert_eq!(pointers(&assert_problem(res, 422).await), vec!["/status"]);
}

#[tokio::test]
async fn organisations_never_see_each_others_instruments() {
    let app = TestApp::spawn().await;
    let writer = app.token(&["instruments:write"]).await;
    assert_eq!(
        app.post_json(&writer, "/v1/instruments", custom_instrument("private-scale"))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.post_json(&writer, "/v1/instruments/private-scale/versions/1/publish", json!({}))
            .await
            .status(),
        200
    );

    let (_, other) = app.create_org("other-clinic").await;
    let listed: Value = app.get_json(&other, "/v1/instruments").await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["key"] != "private-scale")
    );
    let foreign = assert_problem(app.get(&other, "/v1/instruments/private-scale").await, 404).await;
    let unknown = assert_problem(app.get(&other, "/v1/instruments/never-existed").await, 404).await;
    assert_eq!(foreign, unknown);
    assert_problem(app.get(&other, "/v1/instruments/private-scale/versions/1").await, 404).await;
    assert_problem(
        app.post_json(&other, "/v1/instruments/private-scale/versions/1/retire", json!({}))
            .await,
        404,
    )
    .await;
    let res = app
        .post_json(
            &other,
            "/v1/score",
            json!({"instrument": "private-scale", "answers": {}}),
        )
        .await;
    assert_problem(res, 422).await;
    // The other organisation may use the same key for its own instrument.
    let res = app
        .post_json(&other, "/v1/instruments", custom_instrument("private-scale"))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["owner"], "other-clinic");
}

#[tokio::test]
async fn score_endpoint_validates_answers_by_pointer() {
    let app = TestApp::spawn().await;
    let token = app.token(&[]).await;
    let res = app
        .post_json(
            &token,
            "/v1/score",
            json!({"instrument": "srs", "answers": {"1": 9.05, "2": 11, "3": "9", "4": 9, "5": 1}}),
        )
        .await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(
        pointers(&problem),
        vec!["/answers/1", "/answers/2", "/answers/3", "/answers/5"]
    );

    let res = app
        .post_json(
            &token,
            "/v1/score",
            json!({"instrument": "srs", "answers": {"1": 8.7, "2": 9.1, "3": 9.1, "4": 9.1}}),
        )
        .await;
    let scored: Value = res.json().await.unwrap();
    assert_eq!(scored["instrument_version"], 1);
    assert_eq!(scored["score"]["total"], 36.0);
    assert_eq!(scored["score"]["flags"], json!(["item_below_threshold"]));

    let res = app
        .post_json(
            &token,
            "/v1/score",
            json!({"instrument": "srs", "answers": {"1": 9, "2": 9, "3": 9}}),
        )
        .await;
    let unscored: Value = res.json().await.unwrap();
    assert!(unscored["score"].is_null());
    assert!(unscored["score_error"].as_str().unwrap().contains("missing"));

    let res = app
        .post_json(
            &token,
            "/v1/score",
            json!({"instrument": "wai-sr", "answers": {}, "org": "x"}),
        )
        .await;
    assert_eq!(pointers(&assert_problem(res, 422).await), vec!["/org"]);
    let res = app
        .post_json(&token, "/v1/score", json!({"instrument": "nope", "answers": {}}))
        .await;
    assert_eq!(pointers(&assert_problem(res, 422).await), vec!["/instrument"]);
}
