//! SMART Backend Services: key-pair clients, `private_key_jwt` assertions at the token
//! endpoint, key sets inline and at a URI (a tiny in-test JWKS server), and every refusal
//! the SPEC lists. The key pairs are test fixtures (`tests/fixtures/keys`, made by
//! `make.py` with Python's `cryptography`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub(crate) fn jwk(name: &str) -> Value {
    serde_json::from_str(&fixture(&format!("{name}.jwk.json"))).unwrap()
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A client assertion: signed with fixture `key`, naming `kid` (the key's own by default).
struct Assertion {
    key: String,
    alg: Algorithm,
    kid: Option<String>,
    client_id: String,
    aud: String,
    exp_in: u64,
    jti: String,
}

impl Assertion {
    fn new(app: &TestApp, key: &str, alg: Algorithm, client_id: &str) -> Self {
        Assertion {
            key: key.to_string(),
            alg,
            kid: Some(key.to_string()),
            client_id: client_id.to_string(),
            aud: app.url("/v1/oauth/token"),
            exp_in: 240,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn sign(&self) -> String {
        let key = signing_key(&self.key, self.alg);
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        let claims = json!({"iss": self.client_id, "sub": self.client_id, "aud": self.aud,
            "exp": now() + self.exp_in, "iat": now(), "jti": self.jti});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

/// The private key of fixture `key`, for `alg`'s family.
pub(crate) fn signing_key(key: &str, alg: Algorithm) -> EncodingKey {
    let pem = fixture(&format!("{key}.pem"));
    match alg {
        Algorithm::RS256 | Algorithm::RS384 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    }
}

async fn exchange(app: &TestApp, assertion: &str, scope: Option<&str>) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.http
        .post(app.url("/v1/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// 401 `invalid_client`; returns the description.
async fn refused(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    body["error_description"].as_str().unwrap().to_string()
}

async fn register(app: &TestApp, admin: &str, keys: Value) -> String {
    let mut body = json!({"name": "ehr-backend", "scopes": ["responses:write", "responses:read"]});
    body.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
    let res = app.post_json(admin, "/v1/clients", body).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert!(
        created.get("client_secret").is_none(),
        "no secret for a key-pair client"
    );
    created["client_id"].as_str().unwrap().to_string()
}

async fn spawn() -> (TestApp, String) {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    (app, admin)
}

#[tokio::test]
async fn a_key_pair_client_gets_a_short_token_with_smart_scopes_and_reads_fhir() {
    let (app, admin) = spawn().await;
    let keys = json!({"jwks": {"keys": [jwk("rsa-2048-a"), jwk("ec-p384"), jwk("ec-p256")]}});
    let client = register(&app, &admin, keys).await;
    let listed: Value = app.get_json(&admin, &format!("/v1/clients/{client}")).await;
    assert_eq!(listed["token_endpoint_auth_method"], "private_key_jwt");

    for (key, alg) in [
        ("rsa-2048-a", Algorithm::RS384),
        ("ec-p384", Algorithm::ES384),
        ("rsa-2048-a", Algorithm::RS256),
        ("ec-p256", Algorithm::ES256),
    ] {
        let assertion = Assertion::new(&app, key, alg, &client).sign();
        let res = exchange(
            &app,
            &assertion,
            Some("system/Observation.rs system/QuestionnaireResponse.c"),
        )
        .await;
        assert_eq!(res.status(), 200, "{key} {alg:?}");
        let token: Value = res.json().await.unwrap();
        assert_eq!(token["scope"], "system/Observation.rs system/QuestionnaireResponse.c");
        assert!(token["expires_in"].as_u64().unwrap() <= 300);
        let access = token["access_token"].as_str().unwrap();
        assert_eq!(
            app.get(access, "/fhir/r4/Observation?subject=Patient/p-1")
                .await
                .status(),
            200
        );
        // The aliases grant what they stand for, and nothing else.
        assert_problem(app.get(access, "/v1/exports/responses?instrument=wai-sr").await, 403).await;
    }
    // An alias of a scope the client does not hold is invalid_scope.
    let assertion = Assertion::new(&app, "ec-p384", Algorithm::ES384, &client).sign();
    let res = exchange(&app, &assertion, Some("export")).await;
    assert_eq!(res.status(), 400);
    // A secret never authenticates a key-pair client.
    let res = app
        .http
        .post(app.url("/v1/oauth/token"))
        .basic_auth(&client, Some("guess"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn registration_refuses_weak_or_foreign_keys_with_the_field_named() {
    let (app, admin) = spawn().await;
    let mut enc = jwk("rsa-2048-a");
    enc["use"] = json!("enc");
    for (keys, pointer) in [
        (json!({"jwks": {"keys": [jwk("rsa-1024")]}}), "/jwks/keys/0"),
        (
            json!({"jwks": {"keys": [jwk("ec-p256"), {"kty": "oct", "k": "c2VjcmV0"}]}}),
            "/jwks/keys/1",
        ),
        (json!({"jwks": {"keys": [enc]}}), "/jwks/keys"),
        (
            json!({"jwks": {"keys": [jwk("ec-p256")]}, "jwks_uri": "https://keys.example/jwks"}),
            "/jwks_uri",
        ),
        (json!({"jwks_uri": "ftp://keys.example/jwks"}), "/jwks_uri"),
    ] {
        let mut body = json!({"name": "weak", "scopes": ["responses:read"]});
        body.as_object_mut().unwrap().extend(keys.as_object().unwrap().clone());
        let problem = assert_problem(app.post_json(&admin, "/v1/clients", body).await, 422).await;
        assert_eq!(
            crate::helpers::pointers(&problem),
            vec![pointer.to_string()],
            "{problem}"
        );
    }
}

#[tokio::test]
async fn assertions_that_fail_a_check_are_refused_and_a_jti_is_good_once_on_every_instance() {
    let (app, admin) = spawn().await;
    let client = register(&app, &admin, json!({"jwks": {"keys": [jwk("rsa-2048-a")]}})).await;
    let base = || Assertion::new(&app, "rsa-2048-a", Algorithm::RS384, &client);

    // alg none: a JWT with no signature.
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "rsa-2048-a"})),
        b64(json!({"iss": client, "sub": client, "aud": app.url("/v1/oauth/token"), "exp": now() + 60, "jti": "n1"}))
    );
    refused(exchange(&app, &unsigned, None).await).await;
    // Algorithm confusion: HS256 keyed with the public key's bytes.
    let public_pem = {
        let j = jwk("rsa-2048-a");
        format!("{}{}", j["n"].as_str().unwrap(), j["e"].as_str().unwrap())
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-2048-a".into());
    let claims =
        json!({"iss": client, "sub": client, "aud": app.url("/v1/oauth/token"), "exp": now() + 60, "jti": "h1"});
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let why = refused(exchange(&app, &confused, None).await).await;
    assert!(why.contains("algorithm"), "{why}");
    // Unknown kid.
    let mut a = base();
    a.kid = Some("nobody".into());
    assert!(refused(exchange(&app, &a.sign(), None).await).await.contains("kid"));
    // exp more than five minutes ahead.
    let mut a = base();
    a.exp_in = 600;
    assert!(
        refused(exchange(&app, &a.sign(), None).await)
            .await
            .contains("5 minutes")
    );
    // Expired.
    let a = base();
    let expired = provider_token(
        "rsa-2048-a",
        Algorithm::RS384,
        json!({"iss": client, "sub": client, "aud": a.aud, "exp": now() - 60, "jti": "e1"}),
    );
    refused(exchange(&app, &expired, None).await).await;
    // Wrong audience.
    let mut a = base();
    a.aud = "https://elsewhere.example/token".into();
    refused(exchange(&app, &a.sign(), None).await).await;
    // Signed by a key that is not the client's (same kid).
    let mut a = base();
    a.key = "rsa-2048-b".into();
    refused(exchange(&app, &a.sign(), None).await).await;

    // A jti is good once, here and on a second instance over the same database.
    let once = base().sign();
    assert_eq!(exchange(&app, &once, None).await.status(), 200);
    assert!(refused(exchange(&app, &once, None).await).await.contains("jti"));
    let url = app.database_url.clone();
    let second = TestApp::spawn_with(|s| {
        s.database_url = url;
        s.webhook_allow_private = true;
    })
    .await;
    // The second instance's token endpoint has its own URL: the same jti, for its audience.
    let mut again = Assertion::new(&second, "rsa-2048-a", Algorithm::RS384, &client);
    again.jti = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("shared");
    let mut first = Assertion::new(&app, "rsa-2048-a", Algorithm::RS384, &client);
    first.jti = again.jti.clone();
    assert_eq!(exchange(&app, &first.sign(), None).await.status(), 200);
    assert!(
        refused(exchange(&second, &again.sign(), None).await)
            .await
            .contains("jti")
    );
    std::mem::forget(second); // the first instance drops the shared database
}

/// A JWKS endpoint whose set and Cache-Control the test changes, counting fetches.
pub(crate) struct KeyServer {
    pub(crate) url: String,
    set: Arc<Mutex<(Value, &'static str)>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    pub(crate) fn start(set: Value, cache_control: &'static str) -> KeyServer {
        let shared = Arc::new(Mutex::new((set, cache_control)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (s, f) = (shared.clone(), fetches.clone());
        let server = HttpServer::new(move || {
            let (s, f) = (s.clone(), f.clone());
            App::new().default_service(web::to(move || {
                let (s, f) = (s.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let (set, cache) = s.lock().unwrap().clone();
                    HttpResponse::Ok().insert_header(("Cache-Control", cache)).json(set)
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        KeyServer {
            url: format!("http://127.0.0.1:{port}/jwks.json"),
            set: shared,
            fetches,
        }
    }

    fn serve(&self, set: Value, cache_control: &'static str) {
        *self.set.lock().unwrap() = (set, cache_control);
    }
}

#[tokio::test]
async fn keys_at_a_uri_are_cached_rotated_and_refused_when_weak_or_unreachable() {
    let (app, admin) = spawn().await;
    let keys = KeyServer::start(json!({"keys": [jwk("rsa-2048-a")]}), "max-age=600");
    let client = register(&app, &admin, json!({"jwks_uri": keys.url})).await;
    let sign = |key: &str| Assertion::new(&app, key, Algorithm::RS384, &client).sign();
    assert_eq!(exchange(&app, &sign("rsa-2048-a"), None).await.status(), 200);
    assert_eq!(exchange(&app, &sign("rsa-2048-a"), None).await.status(), 200);
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1, "max-age=600: fetched once");
    // Unknown kids refetch at most once a minute: just fetched, so none of these does.
    for _ in 0..3 {
        refused(exchange(&app, &sign("rsa-2048-b"), None).await).await;
    }
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);

    // Rotation on a set that must not be cached: the new kid is picked up at once.
    let other = KeyServer::start(json!({"keys": [jwk("rsa-2048-a")]}), "no-store");
    let rotating = register(&app, &admin, json!({"jwks_uri": other.url})).await;
    let sign_for = |key: &str| Assertion::new(&app, key, Algorithm::RS384, &rotating).sign();
    assert_eq!(exchange(&app, &sign_for("rsa-2048-a"), None).await.status(), 200);
    other.serve(json!({"keys": [jwk("rsa-2048-b")]}), "no-store");
    assert_eq!(exchange(&app, &sign_for("rsa-2048-b"), None).await.status(), 200);
    refused(exchange(&app, &sign_for("rsa-2048-a"), None).await).await;

    // A set with only a weak key or an encryption key gives nothing to verify with.
    let mut enc = jwk("rsa-2048-a");
    enc["use"] = json!("enc");
    for set in [json!({"keys": [jwk("rsa-1024")]}), json!({"keys": [enc]})] {
        other.serve(set, "no-store");
        refused(exchange(&app, &sign_for("rsa-1024"), None).await).await;
        assert_eq!(
            exchange(&app, &sign_for("rsa-2048-a"), None).await.status(),
            401,
            "a key with use: enc never verifies"
        );
    }

    // A JWKS endpoint that accepts connections and never answers: refused after the
    // bounded fetch timeout, with a description that says so.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://127.0.0.1:{}/jwks.json", silent.local_addr().unwrap().port());
    let stuck = register(&app, &admin, json!({"jwks_uri": silent_url})).await;
    let why = refused(
        exchange(
            &app,
            &Assertion::new(&app, "rsa-2048-a", Algorithm::RS384, &stuck).sign(),
            None,
        )
        .await,
    )
    .await;
    assert!(why.contains("did not answer in time"), "{why}");
    drop(silent);
}

#[tokio::test]
async fn smart_configuration_and_the_capability_statement_name_the_token_endpoint() {
    let (app, _) = spawn().await;
    for path in [
        "/.well-known/smart-configuration",
        "/fhir/r4/.well-known/smart-configuration",
    ] {
        let conf = app.public_json(path).await;
        assert_eq!(conf["token_endpoint"], app.url("/v1/oauth/token"));
        for (field, wanted) in [
            ("token_endpoint_auth_methods_supported", "private_key_jwt"),
            ("token_endpoint_auth_signing_alg_values_supported", "RS384"),
            ("token_endpoint_auth_signing_alg_values_supported", "ES384"),
            ("grant_types_supported", "client_credentials"),
            ("capabilities", "client-confidential-asymmetric"),
            ("scopes_supported", "system/QuestionnaireResponse.c"),
        ] {
            assert!(
                conf[field].as_array().unwrap().contains(&json!(wanted)),
                "{field} {wanted}"
            );
        }
    }
    let metadata = app.public_json("/fhir/r4/metadata").await;
    let security = &metadata["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        security["extension"][0]["extension"][0]["valueUri"],
        app.url("/v1/oauth/token")
    );
}

/// A token as an organisation's identity provider would sign it.
fn provider_token(key: &str, alg: Algorithm, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(key.to_string());
    jsonwebtoken::encode(&header, &claims, &signing_key(key, alg)).unwrap()
}

#[tokio::test]
async fn an_organisations_identity_provider_is_trusted_for_it_alone() {
    let (app, admin) = spawn().await;
    let idp = KeyServer::start(json!({"keys": [jwk("ec-p384"), jwk("rsa-2048-a")]}), "max-age=300");
    let issuer = "https://login.north.example/realms/clinic";
    let res = app
        .post_json(
            &admin,
            "/v1/identity-providers",
            json!({"issuer": issuer, "jwks_uri": idp.url, "audience": "rapport-api"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let provider: Value = res.json().await.unwrap();
    assert_eq!(provider["scope_claim"], "scope");
    // Another organisation cannot claim the same issuer.
    let (_, other_admin) = app.create_org("south").await;
    let res = app
        .post_json(
            &other_admin,
            "/v1/identity-providers",
            json!({"issuer": issuer, "jwks_uri": idp.url, "audience": "rapport-api"}),
        )
        .await;
    assert_problem(res, 409).await;
    let listed: Value = app.get_json(&other_admin, "/v1/identity-providers").await;
    assert_eq!(listed["items"], json!([]));
    // Bad registrations name the field.
    let problem = assert_problem(
        app.post_json(
            &admin,
            "/v1/identity-providers",
            json!({"issuer": "not a url", "jwks_uri": "ftp://x", "audience": "", "scope_claim": "a b"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        crate::helpers::pointers(&problem),
        vec!["/issuer", "/jwks_uri", "/audience", "/scope_claim"]
    );

    let claims = |scope: Value, aud: &str| json!({"iss": issuer, "sub": "svc-dashboard", "aud": aud, "exp": now() + 300, "iat": now(), "scope": scope});
    let token = provider_token(
        "ec-p384",
        Algorithm::ES384,
        claims(json!("openid responses:read platform:admin"), "rapport-api"),
    );
    assert_eq!(app.get(&token, "/v1/responses").await.status(), 200);
    // platform:admin in the claim is never honoured.
    assert_problem(app.get(&token, "/v1/organizations").await, 403).await;
    // The audit log names the token's subject, by its provider (v3: never a bare `sub`,
    // which could equal a client id).
    let audit: Value = app.get_json(&admin, "/v1/audit-events?limit=500").await;
    let actor = format!("idp:{}:svc-dashboard", provider["id"].as_str().unwrap());
    let actors: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(actors.contains(&actor.as_str()), "{audit}");
    assert!(!actors.contains(&"svc-dashboard"), "{audit}");
    // No rapport scope: 403 on a scoped route.
    let bare = provider_token(
        "rsa-2048-a",
        Algorithm::RS256,
        claims(json!("openid profile"), "rapport-api"),
    );
    assert_problem(app.get(&bare, "/v1/responses").await, 403).await;
    // Wrong audience, wrong key, a kid the provider does not have: 401.
    for bad in [
        provider_token(
            "ec-p384",
            Algorithm::ES384,
            claims(json!("responses:read"), "someone-else"),
        ),
        provider_token(
            "ec-p256",
            Algorithm::ES256,
            claims(json!("responses:read"), "rapport-api"),
        ),
    ] {
        assert_problem(app.get(&bad, "/v1/responses").await, 401).await;
    }
    // An HS256 token naming the provider is not the provider's.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!("responses:read"), "rapport-api"),
        &EncodingKey::from_secret(b"guess").unwrap(),
    )
    .unwrap();
    assert_problem(app.get(&hs, "/v1/responses").await, 401).await;

    // Deleted: its tokens stop at once on this instance.
    let id = provider["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&admin, &format!("/v1/identity-providers/{id}"))
            .await
            .status(),
        204
    );
    assert_problem(app.get(&token, "/v1/responses").await, 401).await;
    // ... and the issuer is free again.
    let res = app
        .post_json(
            &other_admin,
            "/v1/identity-providers",
            json!({"issuer": issuer, "jwks_uri": idp.url, "audience": "rapport-api", "scope_claim": "scp"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // Scopes as an array, in the registered claim.
    let scp = provider_token(
        "ec-p384",
        Algorithm::ES384,
        json!({"iss": issuer, "sub": "svc-south", "aud": "rapport-api", "exp": now() + 300, "scp": ["responses:read"]}),
    );
    let page: Value = app.get_json(&scp, "/v1/responses").await;
    assert_eq!(page["items"], json!([]), "south sees only its own (none)");
}
