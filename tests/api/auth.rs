use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_ID, ADMIN_SECRET, JWT_SECRET, TestApp, assert_problem, item_strings};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn token_grant_accepts_form_json_and_basic() {
    let app = TestApp::spawn().await;
    let url = app.url("/v1/oauth/token");
    let form = app
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", ADMIN_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["scope"].as_str().unwrap().contains("platform:admin"));
    let claims = claims_of(body["access_token"].as_str().unwrap());
    for claim in ["iss", "aud", "sub", "org", "scope", "iat", "nbf", "exp"] {
        assert!(!claims[claim].is_null(), "claim {claim}");
    }

    let json = app
        .http
        .post(&url)
        .json(&json!({"grant_type": "client_credentials", "client_id": ADMIN_ID, "client_secret": ADMIN_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);

    let basic = app
        .http
        .post(&url)
        .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "responses:read export")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let body: Value = basic.json().await.unwrap();
    assert_eq!(
        body["scope"], "responses:read export",
        "a requested scope narrows the grant"
    );
}

async fn oauth_error(res: reqwest::Response, status: u16, error: &str) {
    assert_eq!(res.status(), status);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error);
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn token_grant_errors_use_the_oauth_shape() {
    let app = TestApp::spawn().await;
    let url = app.url("/v1/oauth/token");
    let post = |form: Vec<(&'static str, &'static str)>| app.http.post(&url).form(&form).send();

    let wrong = post(vec![
        ("grant_type", "client_credentials"),
        ("client_id", ADMIN_ID),
        ("client_secret", "nope"),
    ]);
    oauth_error(wrong.await.unwrap(), 401, "invalid_client").await;
    let unknown = post(vec![
        ("grant_type", "client_credentials"),
        ("client_id", "who"),
        ("client_secret", "x"),
    ]);
    oauth_error(unknown.await.unwrap(), 401, "invalid_client").await;
    let none = post(vec![("grant_type", "client_credentials")]);
    oauth_error(none.await.unwrap(), 401, "invalid_client").await;
    let grant = post(vec![
        ("grant_type", "password"),
        ("client_id", ADMIN_ID),
        ("client_secret", ADMIN_SECRET),
    ]);
    oauth_error(grant.await.unwrap(), 400, "unsupported_grant_type").await;
    let missing = post(vec![("client_id", ADMIN_ID), ("client_secret", ADMIN_SECRET)]);
    oauth_error(missing.await.unwrap(), 400, "invalid_request").await;
    let scope = post(vec![
        ("grant_type", "client_credentials"),
        ("client_id", ADMIN_ID),
        ("client_secret", ADMIN_SECRET),
        ("scope", "responses:read telepathy"),
    ]);
    oauth_error(scope.await.unwrap(), 400, "invalid_scope").await;

    let bad_basic = app
        .http
        .post(&url)
        .basic_auth(ADMIN_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(
        bad_basic.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    oauth_error(bad_basic, 401, "invalid_client").await;

    // A client asking for a scope it does not hold.
    let admin = app.admin_token().await;
    let (id, secret) = app.create_client(&admin, &["responses:read"]).await;
    let res = app
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", "export"),
        ])
        .send()
        .await
        .unwrap();
    oauth_error(res, 400, "invalid_scope").await;
}

#[tokio::test]
async fn revoked_clients_lose_their_tokens_and_cannot_get_new_ones() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let res = app
        .post_json(&admin, "/v1/clients", json!({"name": "feed", "scopes": ["org:admin"]}))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let (id, cid, secret) = (
        created["id"].as_str().unwrap().to_string(),
        created["client_id"].as_str().unwrap().to_string(),
        created["client_secret"].as_str().unwrap().to_string(),
    );
    let token = app.token_for(&cid, &secret, None).await;
    assert_eq!(app.get(&token, "/v1/clients").await.status(), 200);

    assert_eq!(app.delete(&admin, &format!("/v1/clients/{id}")).await.status(), 204);
    assert_eq!(
        app.delete(&admin, &format!("/v1/clients/{id}")).await.status(),
        204,
        "revoking twice is harmless"
    );
    assert_problem(app.get(&token, "/v1/clients").await, 401).await;
    let res = app
        .http
        .post(app.url("/v1/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", cid.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    oauth_error(res, 401, "invalid_client").await;

    let listed: Value = app.get_json(&admin, &format!("/v1/clients/{id}")).await;
    assert!(listed["revoked_at"].is_string());
    assert!(listed.get("client_secret").is_none() && listed.get("secret_hash").is_none());
}

#[tokio::test]
async fn jwt_attacks_are_refused() {
    let app = TestApp::spawn().await;
    let good = app.admin_token().await;
    assert_eq!(app.get(&good, "/v1/clients").await.status(), 200);
    let base = claims_of(&good);
    let with = |key: &str, value: Value| {
        let mut c = base.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&base).unwrap());
    let mut parts: Vec<&str> = good.split('.').collect();
    let tampered_payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with("scope", json!("platform:admin x"))).unwrap());
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    let truncated = good[..good.len() - 6].to_string();

    let attacks: Vec<(&str, String)> = vec![
        ("alg none", format!("{header_none}.{payload}.")),
        ("HS512 with the right secret", sign(Algorithm::HS512, JWT_SECRET, &base)),
        (
            "wrong secret",
            sign(Algorithm::HS256, "another-secret-that-is-also-long-enough!!", &base),
        ),
        (
            "expired 30 s ago",
            sign(Algorithm::HS256, JWT_SECRET, &with("exp", json!(now() - 30))),
        ),
        (
            "nbf in the future",
            sign(Algorithm::HS256, JWT_SECRET, &with("nbf", json!(now() + 120))),
        ),
        (
            "wrong aud",
            sign(Algorithm::HS256, JWT_SECRET, &with("aud", json!("someone-else"))),
        ),
        (
            "wrong iss",
            sign(Algorithm::HS256, JWT_SECRET, &with("iss", json!("evil"))),
        ),
        ("missing aud", sign(Algorithm::HS256, JWT_SECRET, &without("aud"))),
        ("missing iss", sign(Algorithm::HS256, JWT_SECRET, &without("iss"))),
        ("missing exp", sign(Algorithm::HS256, JWT_SECRET, &without("exp"))),
        ("missing sub", sign(Algorithm::HS256, JWT_SECRET, &without("sub"))),
        ("missing org", sign(Algorithm::HS256, JWT_SECRET, &without("org"))),
        ("tampered payload", tampered),
        ("truncated signature", truncated),
        ("64 KiB token", format!("{}.{}", good, "A".repeat(64 * 1024))),
    ];
    for (name, token) in attacks {
        let res = app.get(&token, "/v1/clients").await;
        assert_eq!(res.status(), 401, "{name}");
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{name}"
        );
        assert_problem(res, 401).await;
    }

    let basic = app
        .http
        .get(app.url("/v1/clients"))
        .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401).await;
    let query = app
        .http
        .get(app.url(&format!("/v1/clients?access_token={good}")))
        .send()
        .await
        .unwrap();
    assert_problem(query, 401).await;
    let none = app.http.get(app.url("/v1/clients")).send().await.unwrap();
    assert!(none.headers().contains_key("www-authenticate"));
    assert_problem(none, 401).await;
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = TestApp::spawn().await;
    let reader = app.token(&["responses:read"]).await;
    assert_problem(app.get(&reader, "/v1/clients").await, 403).await;
    assert_problem(app.get(&reader, "/v1/audit-events").await, 403).await;
    assert_problem(app.get(&reader, "/v1/organizations").await, 403).await;
    let res = app
        .post_json(&reader, "/v1/organizations", json!({"slug": "x-clinic", "name": "X"}))
        .await;
    assert_problem(res, 403).await;

    // An org admin may grant only what it holds, and never platform:admin.
    let (_, org_admin) = app.create_org("north-clinic").await;
    let res = app
        .post_json(
            &org_admin,
            "/v1/clients",
            json!({"name": "p", "scopes": ["platform:admin"]}),
        )
        .await;
    assert_problem(res, 403).await;
    let narrow = app.token(&["org:admin"]).await;
    let res = app
        .post_json(&narrow, "/v1/clients", json!({"name": "p", "scopes": ["export"]}))
        .await;
    assert_problem(res, 403).await;
    let res = app
        .post_json(&narrow, "/v1/clients", json!({"name": "p", "scopes": ["org:admin"]}))
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn client_and_organization_bodies_are_validated() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let res = app
        .post_json(
            &admin,
            "/v1/clients",
            json!({"name": " ", "scopes": ["export", "telepathy"]}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, vec!["/name", "/scopes/1"]);

    let res = app
        .post_json(
            &admin,
            "/v1/clients",
            json!({"name": "x", "scopes": [], "org": "other"}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(
        body["errors"][0]["pointer"], "/org",
        "unknown fields are refused, never honoured"
    );

    let res = app
        .post_json(&admin, "/v1/organizations", json!({"slug": "Bad Slug!", "name": "x"}))
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["pointer"], "/slug");
    let res = app.post_json(&admin, "/v1/organizations", json!({"name": "x"})).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["pointer"], "/slug");

    let res = app
        .post_json(&admin, "/v1/organizations", json!({"slug": "south", "name": "South"}))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let scopes = created["admin_client"]["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 7);
    assert!(scopes.contains(&json!("analytics:read")));
    assert!(!scopes.contains(&json!("platform:admin")));
    let res = app
        .post_json(&admin, "/v1/organizations", json!({"slug": "south", "name": "Again"}))
        .await;
    assert_problem(res, 409).await;
    let list: Value = app.get_json(&admin, "/v1/organizations").await;
    let slugs = item_strings(&list, "slug");
    assert_eq!(slugs, vec!["default", "south"]);
}

#[tokio::test]
async fn instances_share_the_generated_key_and_learn_of_revocations() {
    let first = TestApp::spawn_with(|s| {
        s.jwt_secret = None;
        s.client_status_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(|s| {
        s.database_url = url;
        s.jwt_secret = None;
        s.client_status_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    // A token minted by one instance is good on the other (the key lives in the database).
    let admin = first.admin_token().await;
    let res = first
        .post_json(&admin, "/v1/clients", json!({"name": "feed", "scopes": ["org:admin"]}))
        .await;
    let created: Value = res.json().await.unwrap();
    let token = first
        .token_for(
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(second.get(&token, "/v1/clients").await.status(), 200);
    // Revoked on the first instance; the second stops honouring it within its cache time.
    let id = created["id"].as_str().unwrap();
    assert_eq!(first.delete(&admin, &format!("/v1/clients/{id}")).await.status(), 204);
    assert_problem(first.get(&token, "/v1/clients").await, 401).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_problem(second.get(&token, "/v1/clients").await, 401).await;
    std::mem::forget(second); // the first instance drops the shared database
}
