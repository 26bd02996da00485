use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_second_organisation_sees_none_of_the_firsts_clients_or_events() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let res = app
        .post_json(
            &admin,
            "/v1/clients",
            json!({"name": "first-org-feed", "scopes": ["responses:read"]}),
        )
        .await;
    let first_client: Value = res.json().await.unwrap();
    let first_id = first_client["id"].as_str().unwrap();

    let (_, other) = app.create_org("second-clinic").await;
    let clients: Value = app.get_json(&other, "/v1/clients").await;
    assert!(!ids(&clients, "id").contains(&first_id.to_string()));
    assert!(!ids(&clients, "client_id").iter().any(|c| c == "test-bootstrap-admin"));
    assert_eq!(
        clients["items"].as_array().unwrap().len(),
        1,
        "only its own administrator"
    );

    // A foreign id answers exactly like an unknown one.
    let foreign = assert_problem(app.get(&other, &format!("/v1/clients/{first_id}")).await, 404).await;
    let unknown = assert_problem(
        app.get(&other, &format!("/v1/clients/{}", uuid::Uuid::new_v4())).await,
        404,
    )
    .await;
    assert_eq!(foreign, unknown);
    assert_problem(app.delete(&other, &format!("/v1/clients/{first_id}")).await, 404).await;
    assert_problem(app.get(&other, "/v1/clients/not-a-uuid").await, 404).await;
    // A client may also be named by its client_id, within its own organisation only.
    let first_client_id = first_client["client_id"].as_str().unwrap();
    let by_client_id = app.get_json(&admin, &format!("/v1/clients/{first_client_id}")).await;
    assert_eq!(by_client_id["id"], first_id);
    assert_problem(app.get(&other, &format!("/v1/clients/{first_client_id}")).await, 404).await;
    assert_problem(app.delete(&other, &format!("/v1/clients/{first_client_id}")).await, 404).await;
    // ... and the client still works for its own organisation.
    let still: Value = app.get_json(&admin, &format!("/v1/clients/{first_id}")).await;
    assert!(still["revoked_at"].is_null());

    let first_events: Value = app.get_json(&admin, "/v1/audit-events").await;
    let other_events: Value = app.get_json(&other, "/v1/audit-events").await;
    let mine = ids(&first_events, "id");
    assert!(!mine.is_empty());
    assert!(ids(&other_events, "id").iter().all(|id| !mine.contains(id)));
}

#[tokio::test]
async fn audit_events_record_writes_and_page_by_cursor() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..5 {
        let res = app
            .post_json(&admin, "/v1/clients", json!({"name": format!("c{i}"), "scopes": []}))
            .await;
        assert_eq!(res.status(), 201);
    }
    // bootstrap + 5 client creations
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit-events?limit=2&cursor={c}"),
            None => "/v1/audit-events?limit=2".to_string(),
        };
        let page: Value = app.get_json(&admin, &path).await;
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["action"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen.last().unwrap(), "organization.bootstrapped", "newest first");
    assert_eq!(seen.iter().filter(|a| *a == "client.created").count(), 5);

    for bad in [
        "limit=0",
        "limit=-1",
        "limit=1000000000",
        "limit=abc",
        "cursor=garbage!!",
    ] {
        assert_problem(app.get(&admin, &format!("/v1/audit-events?{bad}")).await, 400).await;
    }
}
