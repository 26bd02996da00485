use std::collections::HashSet;

use serde_json::{Value, json};

use rapport::responses::store::NewAdministrationRow;

use crate::builders::wai_sr;
use crate::helpers::{TestApp, assert_problem, item_strings, pointers};

#[tokio::test]
async fn a_response_is_scored_stored_and_read_back() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let res = app
        .post_json(&token, "/v1/responses", wai_sr("p-123", Some("enc-1")))
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/v1/responses/{}", created["id"].as_str().unwrap()));
    assert_eq!(created["instrument_version"], 1);
    assert_eq!(created["score"]["total"], 33.0);
    assert_eq!(created["score"]["mean"], 2.75);
    assert_eq!(created["score"]["subscales"]["task"]["total"], 10.0);
    assert_eq!(created["source"], "api");
    assert_eq!(created["status"], "active");
    assert!(created["score_error"].is_null() && created["void_reason"].is_null());

    let read: Value = app.get_json(&token, &location).await;
    assert_eq!(read, created);

    // Unscored when too many items are missing: stored with a reason.
    let mut sparse = wai_sr("p-123", None);
    sparse["answers"] = json!({"1": 3, "2": null});
    let res = app.post_json(&token, "/v1/responses", sparse).await;
    assert_eq!(res.status(), 201);
    let unscored: Value = res.json().await.unwrap();
    assert!(unscored["score"].is_null());
    assert!(unscored["score_error"].is_string());
    assert_eq!(unscored["answers"], json!({"1": 3}));
}

#[tokio::test]
async fn bad_responses_name_every_field() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "instruments:write"]).await;
    let mut bad = wai_sr("", None);
    bad["answers"]["1"] = json!(6);
    bad["answers"]["2"] = json!("four");
    bad["answers"]["99"] = json!(3);
    bad["session"] = json!(0);
    bad["rater"] = json!("observer");
    let problem = assert_problem(app.post_json(&token, "/v1/responses", bad).await, 422).await;
    assert_eq!(
        pointers(&problem),
        vec![
            "/patient",
            "/session",
            "/rater",
            "/answers/1",
            "/answers/2",
            "/answers/99"
        ]
    );

    let mut future = wai_sr("p-1", None);
    future["administered_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let problem = assert_problem(app.post_json(&token, "/v1/responses", future).await, 422).await;
    assert_eq!(pointers(&problem), vec!["/administered_at"]);
    let mut garbled = wai_sr("p-1", None);
    garbled["administered_at"] = json!("yesterday");
    assert_eq!(
        pointers(&assert_problem(app.post_json(&token, "/v1/responses", garbled).await, 422).await),
        vec!["/administered_at"]
    );

    let mut clinician_srs = json!({"instrument": "srs", "patient": "p-1", "rater": "clinician",
        "administered_at": "2026-03-04T15:20:00Z", "answers": {"1": 9, "2": 9, "3": 9, "4": 9}});
    assert_eq!(
        pointers(&assert_problem(app.post_json(&token, "/v1/responses", clinician_srs.clone()).await, 422).await),
        vec!["/rater"]
    );
    clinician_srs["rater"] = json!("patient");
    clinician_srs["answers"]["1"] = json!(1.7976931348623157e308);
    assert_eq!(
        pointers(&assert_problem(app.post_json(&token, "/v1/responses", clinician_srs).await, 422).await),
        vec!["/answers/1"]
    );

    let mut unknown = wai_sr("p-1", None);
    unknown["instrument"] = json!("nope");
    assert_eq!(
        pointers(&assert_problem(app.post_json(&token, "/v1/responses", unknown).await, 422).await),
        vec!["/instrument"]
    );

    for field in ["org", "id", "score", "created_at", "status"] {
        let mut extra = wai_sr("p-1", None);
        extra[field] = json!("x");
        let problem = assert_problem(app.post_json(&token, "/v1/responses", extra).await, 422).await;
        assert_eq!(pointers(&problem), vec![format!("/{field}")]);
    }

    let many: serde_json::Map<String, Value> = (0..10_000).map(|i| (format!("k{i}"), json!(1))).collect();
    let mut huge = wai_sr("p-1", None);
    huge["answers"] = Value::Object(many);
    let res = app.post_json(&token, "/v1/responses", huge).await;
    assert!(res.status() == 413 || res.status() == 422);
}

#[tokio::test]
async fn retired_and_draft_versions_take_no_responses() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "instruments:write"]).await;
    let definition = crate::instruments::custom_instrument("clinic-scale");
    assert_eq!(app.post_json(&token, "/v1/instruments", definition).await.status(), 201);
    let answers: serde_json::Map<String, Value> = (1..=12).map(|i| (format!("q{i}"), json!(3))).collect();
    let body = json!({"instrument": "clinic-scale", "instrument_version": 1, "patient": "p-1",
        "administered_at": "2026-03-04T15:20:00Z", "answers": answers});
    let problem = assert_problem(app.post_json(&token, "/v1/responses", body.clone()).await, 422).await;
    assert_eq!(pointers(&problem), vec!["/instrument_version"]);
    app.post_json(&token, "/v1/instruments/clinic-scale/versions/1/publish", json!({}))
        .await;
    assert_eq!(app.post_json(&token, "/v1/responses", body.clone()).await.status(), 201);
    app.post_json(&token, "/v1/instruments/clinic-scale/versions/1/retire", json!({}))
        .await;
    let problem = assert_problem(app.post_json(&token, "/v1/responses", body).await, 422).await;
    assert_eq!(pointers(&problem), vec!["/instrument_version"]);
}

#[tokio::test]
async fn idempotent_reposts_and_conflicts() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    let first = app
        .post_json(&token, "/v1/responses", wai_sr("p-1", Some("enc-42")))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app
        .post_json(&token, "/v1/responses", wai_sr("p-1", Some("enc-42")))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let mut changed = wai_sr("p-1", Some("enc-42"));
    changed["answers"]["1"] = json!(5);
    assert_problem(app.post_json(&token, "/v1/responses", changed).await, 409).await;
}

#[tokio::test]
async fn fifty_concurrent_posts_of_one_external_id_store_one_row() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let posts = (0..50).map(|_| app.post_json(&token, "/v1/responses", wai_sr("p-1", Some("enc-race"))));
    let results = futures_util::future::join_all(posts).await;
    let mut ids = HashSet::new();
    let mut created = 0;
    for res in results {
        let status = res.status().as_u16();
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
        ids.insert(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    let page: Value = app.get_json(&token, "/v1/responses?limit=500").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn batches_keep_good_items_and_report_each() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    assert_eq!(
        app.post_json(&token, "/v1/responses", wai_sr("p-0", Some("stored-before")))
            .await
            .status(),
        201
    );
    let mut bad = wai_sr("p-2", None);
    bad["answers"]["3"] = json!(9);
    let mut conflicting = wai_sr("p-0", Some("stored-before"));
    conflicting["session"] = json!(4);
    let mut in_batch_conflict = wai_sr("p-5", Some("twice"));
    in_batch_conflict["session"] = json!(9);
    let batch = json!({"responses": [
        wai_sr("p-1", Some("b-1")),
        bad,
        wai_sr("p-0", Some("stored-before")),
        conflicting,
        wai_sr("p-5", Some("twice")),
        wai_sr("p-5", Some("twice")),
        in_batch_conflict,
        {"instrument": "wai-sr", "unexpected": true},
        wai_sr("p-6", None),
    ]});
    let res = app.post_json(&token, "/v1/responses/batch", batch).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        vec![
            "created",
            "invalid",
            "duplicate",
            "conflict",
            "created",
            "duplicate",
            "conflict",
            "invalid",
            "created"
        ]
    );
    let indexes: Vec<u64> = results.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..9).collect::<Vec<_>>());
    assert_eq!(results[1]["errors"][0]["pointer"], "/answers/3");
    assert!(results[1]["id"].is_null());
    // A conflict names the response stored under that external_id.
    assert!(results[3]["id"].is_string(), "{}", results[3]);
    assert_eq!(results[4]["id"], results[5]["id"]);
    assert_eq!(results[7]["errors"][0]["pointer"], "/unexpected");
    let page: Value = app.get_json(&token, "/v1/responses?limit=500").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4, "one before + three created");

    let empty = app
        .post_json(&token, "/v1/responses/batch", json!({"responses": []}))
        .await;
    assert_problem(empty, 422).await;
    // An item that is no object refuses the batch (nothing stored), naming the item.
    let not_object = app
        .post_json(
            &token,
            "/v1/responses/batch",
            json!({"responses": [wai_sr("p-7", None), [1, 2]]}),
        )
        .await;
    let problem = assert_problem(not_object, 422).await;
    assert_eq!(problem["errors"][0]["pointer"], "/responses/1", "{problem}");
    let page: Value = app.get_json(&token, "/v1/responses?limit=500").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        4,
        "nothing of the refused batch"
    );
    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    assert_problem(
        app.post_json(&token, "/v1/responses/batch", json!({"responses": too_many}))
            .await,
        422,
    )
    .await;
}

#[tokio::test]
async fn pagination_sees_every_row_once_despite_inserts() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let mut expected = HashSet::new();
    for chunk in 0..3 {
        let items: Vec<Value> = (0..400).map(|i| wai_sr(&format!("p-{chunk}-{i}"), None)).collect();
        let res: Value = app
            .post_json(&token, "/v1/responses/batch", json!({"responses": items}))
            .await
            .json()
            .await
            .unwrap();
        for r in res["results"].as_array().unwrap() {
            assert_eq!(r["status"], "created");
            expected.insert(r["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(expected.len(), 1200);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/responses?limit=100&cursor={c}"),
            None => "/v1/responses?limit=100".into(),
        };
        let page: Value = app.get_json(&token, &path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        if pages % 3 == 0 {
            // Inserts between pages.
            let items: Vec<Value> = (0..10).map(|i| wai_sr(&format!("late-{pages}-{i}"), None)).collect();
            app.post_json(&token, "/v1/responses/batch", json!({"responses": items}))
                .await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row seen twice");
    assert!(expected.is_subset(&unique), "no original row skipped");

    for bad in [
        "limit=0",
        "limit=-1",
        "limit=1000000000",
        "limit=abc",
        "cursor=%%%",
        "from=yesterday",
        "status=deleted",
        "rater=robot",
    ] {
        assert_problem(app.get(&token, &format!("/v1/responses?{bad}")).await, 400).await;
    }
}

#[tokio::test]
async fn list_filters_select_by_patient_clinician_time_and_instrument() {
    let (app, token, _) = alice_and_bob().await;
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?patient=alice").await),
        vec!["alice"]
    );
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?clinician=dr-2").await),
        vec!["bob"]
    );
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?from=2026-04-01T00:00:00Z").await),
        vec!["bob"]
    );
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?to=2026-04-01T00:00:00Z").await),
        vec!["alice"]
    );
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?instrument=srs").await),
        Vec::<String>::new()
    );
}

/// Alice's response (dr-9, March) and Bob's (dr-2, May); the token and Alice's response id.
async fn alice_and_bob() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let a: Value = app
        .post_json(&token, "/v1/responses", wai_sr("alice", None))
        .await
        .json()
        .await
        .unwrap();
    let mut later = wai_sr("bob", None);
    later["administered_at"] = json!("2026-05-01T10:00:00+02:00");
    later["clinician"] = json!("dr-2");
    app.post_json(&token, "/v1/responses", later).await;
    let id = a["id"].as_str().unwrap().to_string();
    (app, token, id)
}

fn patients(page: Value) -> Vec<String> {
    item_strings(&page, "patient")
}

#[tokio::test]
async fn voiding_needs_a_reason_changes_nothing_twice_and_is_audited() {
    let (app, token, id) = alice_and_bob().await;
    let void = format!("/v1/responses/{id}/void");
    assert_eq!(
        pointers(&assert_problem(app.post_json(&token, &void, json!({"reason": ""})).await, 422).await),
        vec!["/reason"]
    );
    assert_problem(
        app.post_json(&token, &void, json!({"reason": "x".repeat(501)})).await,
        422,
    )
    .await;
    let res = app
        .post_json(&token, &void, json!({"reason": "entered for the wrong patient"}))
        .await;
    assert_eq!(res.status(), 200);
    let voided: Value = res.json().await.unwrap();
    assert_eq!(voided["status"], "voided");
    assert_eq!(voided["void_reason"], "entered for the wrong patient");
    let again: Value = app
        .post_json(&token, &void, json!({"reason": "second thoughts"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["void_reason"], "entered for the wrong patient",
        "voiding again changes nothing"
    );
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?status=voided").await),
        vec!["alice"]
    );
    assert_eq!(
        patients(app.get_json(&token, "/v1/responses?status=active").await),
        vec!["bob"]
    );
    assert_problem(
        app.post_json(
            &token,
            &format!("/v1/responses/{}/void", uuid::Uuid::new_v4()),
            json!({"reason": "x"}),
        )
        .await,
        404,
    )
    .await;

    let admin = app.admin_token().await;
    let events: Value = app.get_json(&admin, "/v1/audit-events?limit=500").await;
    let actions = item_strings(&events, "action");
    assert_eq!(actions.iter().filter(|a| **a == "response.voided").count(), 1);
    assert_eq!(actions.iter().filter(|a| **a == "response.created").count(), 2);
    assert!(actions.iter().any(|a| a == "responses.listed"));
    let text = events.to_string();
    assert!(
        !text.contains("alice") && !text.contains("bob"),
        "no patient references in the audit detail"
    );
}

#[tokio::test]
async fn scopes_and_tenant_isolation_on_every_response_route() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let created: Value = app
        .post_json(&token, "/v1/responses", wai_sr("p-1", Some("mine")))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let reader = app.token(&["responses:read"]).await;
    assert_problem(app.post_json(&reader, "/v1/responses", wai_sr("p-2", None)).await, 403).await;
    assert_problem(
        app.post_json(
            &reader,
            "/v1/responses/batch",
            json!({"responses": [wai_sr("p", None)]}),
        )
        .await,
        403,
    )
    .await;
    assert_problem(
        app.post_json(&reader, &format!("/v1/responses/{id}/void"), json!({"reason": "x"}))
            .await,
        403,
    )
    .await;
    let writer = app.token(&["responses:write"]).await;
    assert_problem(app.get(&writer, "/v1/responses").await, 403).await;
    assert_problem(app.get(&writer, &format!("/v1/responses/{id}")).await, 403).await;

    let (_, other_admin) = app.create_org("elsewhere").await;
    let foreign = assert_problem(app.get(&other_admin, &format!("/v1/responses/{id}")).await, 404).await;
    let unknown = assert_problem(
        app.get(&other_admin, &format!("/v1/responses/{}", uuid::Uuid::new_v4()))
            .await,
        404,
    )
    .await;
    assert_eq!(foreign, unknown);
    assert_problem(
        app.post_json(
            &other_admin,
            &format!("/v1/responses/{id}/void"),
            json!({"reason": "x"}),
        )
        .await,
        404,
    )
    .await;
    let page: Value = app.get_json(&other_admin, "/v1/responses?patient=p-1").await;
    assert!(page["items"].as_array().unwrap().is_empty());
    // The same external_id is free in another organisation.
    assert_eq!(
        app.post_json(&other_admin, "/v1/responses", wai_sr("p-1", Some("mine")))
            .await
            .status(),
        201
    );
    let still: Value = app.get_json(&token, &format!("/v1/responses/{id}")).await;
    assert_eq!(still["status"], "active");
}

/// Concurrent posts land in one group commit: what each gets is what it would get alone —
/// one 201, the same payload again is 200 with the stored id, another payload is 409.
#[tokio::test]
async fn concurrent_posts_of_one_external_id_answer_as_they_would_alone() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    let posts = (0..24).map(|i| {
        let mut body = wai_sr("p-group", Some("ext-group-1"));
        if i % 3 == 2 {
            body["answers"]["1"] = json!(5);
        }
        let (app, token) = (&app, token.clone());
        async move {
            let res = app.post_json(&token, "/v1/responses", body).await;
            let status = res.status().as_u16();
            (i, status, res.json::<Value>().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(posts).await;
    let created: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let (first, _, stored) = created[0];
    let id = stored["id"].as_str().unwrap();
    let first_differs = first % 3 == 2;
    for (i, status, body) in &answers {
        if i == first {
            continue;
        }
        let same_payload = (i % 3 == 2) == first_differs;
        if same_payload {
            assert_eq!(*status, 200, "{i}: {body}");
            assert_eq!(body["id"], id);
        } else {
            assert_eq!(*status, 409, "{i}: {body}");
            assert_eq!(body["existing_id"], id);
        }
    }
    let mut conn = app.db().await;
    assert_eq!(crate::helpers::count_rows(&mut conn, "responses").await, 1);
    assert_eq!(crate::helpers::count_rows(&mut conn, "outbox_events").await, 1);
}

/// Under concurrent load requests share commits: fewer group commits than requests.
#[tokio::test]
async fn concurrent_posts_share_group_commits() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write"]).await;
    let posts = (0..64).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            let body = wai_sr(&format!("p-share-{i}"), None);
            app.post_json(&token, "/v1/responses", body).await.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let metrics = app.public_text("/metrics").await;
    let figure = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let (groups, written) = (figure("write_group_size_count "), figure("write_group_size_sum "));
    assert!(written >= 64.0, "{written} requests written");
    assert!(
        groups < written,
        "{groups} commits for {written} requests: nothing was grouped"
    );
}

/// A batch row is stored exactly as the same response posted alone (the batch path writes
/// its rows through JSON): every field but the ids and the creation time agrees.
#[tokio::test]
async fn a_batch_row_is_stored_like_a_single_post() {
    let app = TestApp::spawn().await;
    let token = app.token(&["responses:write", "responses:read"]).await;
    let mut body = wai_sr("p-same", Some("alone"));
    body["answers"]["7"] = json!(null);
    body["episode"] = json!("ep-1");
    body["administered_at"] = json!("2026-03-04T15:20:00.123456Z");
    let alone: Value = app
        .post_json(&token, "/v1/responses", body.clone())
        .await
        .json()
        .await
        .unwrap();
    body["external_id"] = json!("in-batch");
    let batch: Value = app
        .post_json(&token, "/v1/responses/batch", json!({"responses": [body.clone()]}))
        .await
        .json()
        .await
        .unwrap();
    let id = batch["results"][0]["id"].as_str().unwrap();
    // The stored payload hash is the one computed: the same item again is a duplicate.
    let again: Value = app
        .post_json(&token, "/v1/responses/batch", json!({"responses": [body]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    assert_eq!(again["results"][0]["id"], id);
    let mut stored = app.get_json(&token, &format!("/v1/responses/{id}")).await;
    let mut single = app
        .get_json(&token, &format!("/v1/responses/{}", alone["id"].as_str().unwrap()))
        .await;
    for field in ["id", "external_id", "created_at"] {
        stored.as_object_mut().unwrap().remove(field);
        single.as_object_mut().unwrap().remove(field);
    }
    assert_eq!(stored, single);
    assert_eq!(stored["score"]["prorated"], true, "{stored}");
    assert_eq!(stored["administered_at"], "2026-03-04T15:20:00.123456Z");
}

/// A prepared row as `prepare` would make it, for driving the writer directly.
fn writer_row(org: rapport::ids::OrgId, patient: &str, external_id: Option<&str>) -> NewAdministrationRow {
    NewAdministrationRow {
        org_id: org,
        id: uuid::Uuid::new_v4(),
        instrument_key: "wai-sr".into(),
        instrument_version: 1,
        patient: patient.into(),
        clinician: Some("dr-9".into()),
        episode: None,
        rater: "patient".into(),
        administered_at: chrono::Utc::now(),
        session: Some(3),
        answers: json!({"1": 1}),
        external_id: external_id.map(str::to_string),
        payload_hash: vec![1, 2, 3],
        source: rapport::responses::model::Source::Api,
        created_by: "writer-test".into(),
        scored: rapport::responses::store::ScoreColumns {
            total: Some(33.0),
            mean: Some(2.75),
            pomp: Some(43.75),
            answered: Some(12),
            missing: Some(0),
            prorated: Some(false),
            ..Default::default()
        },
        external_system: None,
    }
}

/// One group of four requests, one of which the database refuses (a session of 0 breaks the
/// table's check; validation would never let it through): the writer answers the other three
/// as if alone (stored, stored, duplicate of the row before it) and stores nothing of the bad one.
#[tokio::test]
async fn a_row_the_database_refuses_fails_only_its_own_request_in_a_group() {
    use rapport::responses::writer::Writer;
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let org = rapport::organizations::store::find_by_slug(&mut conn, "default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let pool = rapport::db::create_pool(&crate::helpers::test_settings(&app.db_name)).unwrap();
    let sizes = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("sizes", "group sizes")).unwrap();
    let writer = Writer::start(pool, 1, 256, sizes.clone());

    let mut bad = writer_row(org, "p-w-bad", None);
    bad.session = Some(0);
    let rows = [
        writer_row(org, "p-w-1", None),
        bad,
        writer_row(org, "p-w-2", Some("enc-w")),
        writer_row(org, "p-w-3", Some("enc-w")),
    ];
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    // Polled together before the writer task runs: they queue, and it takes them as one group.
    let results = futures_util::future::join_all(rows.into_iter().map(|r| writer.insert(r, "writer-test"))).await;
    assert_eq!(
        (sizes.get_sample_count(), sizes.get_sample_sum()),
        (1, 4.0),
        "one group of four"
    );

    assert_eq!(results[0].as_ref().unwrap().as_ref().unwrap().id, ids[0]);
    assert!(results[1].is_err(), "the refused row fails: {:?}", results[1]);
    assert_eq!(results[2].as_ref().unwrap().as_ref().unwrap().id, ids[2]);
    assert!(
        results[3].as_ref().unwrap().is_none(),
        "the same external_id again is not stored"
    );

    let stored: Vec<uuid::Uuid> = rapport::responses::store::find_many(&mut conn, org, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored.iter().collect::<HashSet<_>>(), HashSet::from([&ids[0], &ids[2]]));
    for (table, filter) in [
        ("audit_events", "action = 'response.created' AND resource_id = ANY($1)"),
        ("outbox_events", "response_id::text = ANY($1)"),
    ] {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let every: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let n: N = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(format!("SELECT count(*) AS n FROM {table} WHERE {filter}"))
                .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&every),
            &mut conn,
        )
        .await
        .unwrap();
        assert_eq!(n.n, 2, "{table}: one row for each stored response");
    }
}

/// Hand-written statements are prepared once per connection: Postgres holds the statement
/// after the first call, and the second call reuses it (a plain `sql_query` is never kept).
#[tokio::test]
async fn hand_written_statements_are_prepared_once_per_connection() {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    for i in 0..3_i64 {
        let got: N = diesel_async::RunQueryDsl::get_result(
            rapport::db::Prepared::new("SELECT $1::int8 + 1 AS n /* prepared-probe */")
                .bind::<diesel::sql_types::BigInt, _>(i),
            &mut conn,
        )
        .await
        .unwrap();
        assert_eq!(got.n, i + 1);
        let _: N = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query("SELECT 1::int8 AS n /* unprepared-probe */"),
            &mut conn,
        )
        .await
        .unwrap();
    }
    let held = |marker: &'static str| {
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%{marker}%'
             AND statement NOT LIKE '%pg_prepared_statements%'"
        ))
    };
    let prepared: N = diesel_async::RunQueryDsl::get_result(held("/* prepared-probe"), &mut conn)
        .await
        .unwrap();
    let plain: N = diesel_async::RunQueryDsl::get_result(held("/* unprepared-probe"), &mut conn)
        .await
        .unwrap();
    assert_eq!((prepared.n, plain.n), (1, 0));
}

#[tokio::test]
async fn a_pooled_connection_idle_past_the_limit_is_pinged_before_checkout_and_a_busy_one_is_not() {
    use diesel::sql_types::{Integer, Text};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Last {
        #[diesel(sql_type = Text)]
        query: String,
    }
    let app = TestApp::spawn().await;
    let mut settings = crate::helpers::test_settings(&app.db_name);
    settings.pool_size = 1;
    let mut observer = app.db().await;
    for (ping_after, pinged) in [
        (std::time::Duration::ZERO, true),
        (std::time::Duration::from_secs(3600), false),
    ] {
        let pool = rapport::db::create_pool_pinging_after(&settings, ping_after).unwrap();
        let pid: i32 = {
            let mut conn = pool.get().await.unwrap();
            diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()"))
                .get_result(&mut *conn)
                .await
                .unwrap()
        };
        // The pool's only connection again: the checkout pings it first, or not.
        let again = pool.get().await.unwrap();
        let last: Last = diesel::sql_query("SELECT query FROM pg_stat_activity WHERE pid = $1")
            .bind::<Integer, _>(pid)
            .get_result(&mut observer)
            .await
            .unwrap();
        assert_eq!(
            last.query.trim() == "SELECT 1",
            pinged,
            "{ping_after:?}: last query {:?}",
            last.query
        );
        drop(again);
    }
}
