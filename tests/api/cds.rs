//! CDS Hooks: discovery, the three services' card rules, every refusal of a CDS client's
//! JWT (in the order the SPEC gives: unknown service, then the JWT, then the body), feedback
//! shown on alerts, audit, metrics, CORS, tenancy and erasure. The CDS client is played by
//! the test: it signs its JWTs with the fixture keys (`tests/fixtures/keys`).

use chrono::{Duration as ChronoDuration, Utc};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use crate::alerts::wait_for;
use crate::builders::{phq9_answers, phq9_unscored_with_item_9, wai_sr_answers};
use crate::helpers::{TestApp, assert_problem};
use crate::identity::{KeyServer, jwk, now, signing_key};

const ALLIANCE: &str = "rapport-alliance";
const PRESCRIBING: &str = "rapport-prescribing";
const SIGN: &str = "rapport-prescribing-sign";

/// A CDS client's JWT for `aud`, signed with fixture `key`; each field can be spoiled.
struct Jwt {
    key: &'static str,
    alg: Algorithm,
    kid: Option<String>,
    iss: String,
    aud: Value,
    exp_in: i64,
    iat_in: Option<i64>,
    jti: Option<String>,
    jku: Option<String>,
}

impl Jwt {
    fn new(iss: &str, aud: &str) -> Self {
        Jwt {
            key: "ec-p384",
            alg: Algorithm::ES384,
            kid: Some("ec-p384".into()),
            iss: iss.into(),
            aud: json!(aud),
            exp_in: 240,
            iat_in: Some(0),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            jku: None,
        }
    }

    fn sign(&self) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        header.jku = self.jku.clone();
        let now = now() as i64;
        let mut claims = json!({"iss": self.iss, "aud": self.aud, "exp": now + self.exp_in, "sub": self.iss});
        if let Some(iat) = self.iat_in {
            claims["iat"] = json!(now + iat);
        }
        if let Some(jti) = &self.jti {
            claims["jti"] = json!(jti);
        }
        jsonwebtoken::encode(&header, &claims, &signing_key(self.key, self.alg)).unwrap()
    }
}

/// An app, its admin token, and a CDS client registered with the fixture keys inline.
pub(crate) struct Cds {
    pub(crate) app: TestApp,
    pub(crate) admin: String,
    pub(crate) issuer: String,
    client_id: String,
}

impl Cds {
    async fn start() -> Cds {
        Cds::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(configure: impl FnOnce(&mut rapport::config::Settings)) -> Cds {
        let app = TestApp::spawn_with(|s| {
            s.webhook_allow_private = true;
            configure(s);
        })
        .await;
        let admin = app.admin_token().await;
        let issuer = format!("https://ehr-{}.example", uuid::Uuid::new_v4().simple());
        let res = app
            .post_json(
                &admin,
                "/v1/cds-clients",
                json!({"issuer": issuer, "jwks": {"keys": [jwk("ec-p384"), jwk("rsa-2048-a"), jwk("ec-p256")]},
                    "description": "North clinic EHR"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let client: Value = res.json().await.unwrap();
        Cds {
            client_id: client["id"].as_str().unwrap().to_string(),
            app,
            admin,
            issuer,
        }
    }

    fn jwt(&self, path: &str) -> Jwt {
        Jwt::new(&self.issuer, &self.app.url(path))
    }

    async fn send(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.app.http.post(self.app.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    /// Calls `service` with a fresh, valid JWT; the cards.
    pub(crate) async fn call(&self, service: &str, body: &Value) -> Vec<Value> {
        let path = format!("/cds-services/{service}");
        let res = self.send(&path, Some(&self.jwt(&path).sign()), body).await;
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        answer["cards"].as_array().unwrap().clone()
    }

    async fn feedback(&self, service: &str, body: &Value) -> reqwest::Response {
        let path = format!("/cds-services/{service}/feedback");
        self.send(&path, Some(&self.jwt(&path).sign()), body).await
    }
}

pub(crate) fn patient_view(patient: &str, user: &str) -> Value {
    json!({"hook": "patient-view", "hookInstance": uuid::Uuid::new_v4().to_string(),
        "fhirServer": "https://ehr.example/fhir", "fhirAuthorization": {"access_token": "ehr-secret-token",
        "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "rapport"},
        "context": {"userId": user, "patientId": patient, "encounterId": "enc-1"}})
}

fn medication(id: &str) -> Value {
    json!({"resource": {"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"text": "sertraline 50 mg"}, "subject": {"reference": "Patient/x"}}})
}

fn lab(id: &str) -> Value {
    json!({"resource": {"resourceType": "ServiceRequest", "id": id, "status": "draft", "intent": "order"}})
}

fn order_select(patient: &str, selections: &[&str], entries: Vec<Value>) -> Value {
    json!({"hook": "order-select", "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {"userId": "Practitioner/dr-a", "patientId": patient, "selections": selections,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries}}})
}

fn order_sign(patient: &str, entries: Vec<Value>) -> Value {
    json!({"hook": "order-sign", "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {"userId": "PractitionerRole/role-7", "patientId": patient,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries}}})
}

async fn post_response(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post_json(token, "/v1/responses", body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// A WAI-SR of `patient` `days_ago` days ago with `total`.
pub(crate) async fn wai(app: &TestApp, token: &str, patient: &str, days_ago: i64, total: u32) -> Value {
    let at = (Utc::now() - ChronoDuration::days(days_ago)).to_rfc3339();
    post_response(
        app,
        token,
        json!({"instrument": "wai-sr", "patient": patient, "clinician": "dr-a", "administered_at": at,
            "answers": wai_sr_answers(total)}),
    )
    .await
}

pub(crate) async fn phq9_flag(app: &TestApp, token: &str, patient: &str) {
    post_response(
        app,
        token,
        json!({"instrument": "phq-9", "patient": patient, "administered_at": "2026-11-20T10:00:00Z",
            "answers": phq9_answers(10, 2)}),
    )
    .await;
}

fn assert_card_shape(card: &Value, public_url: &str) {
    let summary = card["summary"].as_str().unwrap();
    assert!(summary.chars().count() < 140, "{summary}");
    assert!(uuid::Uuid::parse_str(card["uuid"].as_str().unwrap()).is_ok());
    assert!(["info", "warning", "critical"].contains(&card["indicator"].as_str().unwrap()));
    assert!(card["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(card["source"], json!({"label": "rapport", "url": public_url}));
    assert!(card.get("links").is_none(), "no EHR connection: no link");
    assert!(card.get("suggestions").is_none() && card.get("systemActions").is_none());
}

#[tokio::test]
async fn discovery_lists_three_services_without_a_token() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(app.url("/cds-services"))
        .header("Authorization", "Bearer not-a-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    let services = doc["services"].as_array().unwrap();
    let pairs: Vec<(&str, &str)> = services
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["hook"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (ALLIANCE, "patient-view"),
            (PRESCRIBING, "order-select"),
            (SIGN, "order-sign")
        ]
    );
    for s in services {
        assert!(s["title"].is_string() && s["description"].is_string());
        assert!(s.get("prefetch").is_none());
    }
    let openapi = app.public_json("/openapi.json").await;
    for path in [
        "/cds-services",
        "/cds-services/{id}",
        "/cds-services/{id}/feedback",
        "/v1/cds-clients",
        "/v1/cds-clients/{id}",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} is not in the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn cds_clients_are_registered_per_organisation_with_one_issuer_each() {
    let cds = Cds::start().await;
    let (app, admin) = (&cds.app, &cds.admin);
    let got = app.get_json(admin, &format!("/v1/cds-clients/{}", cds.client_id)).await;
    assert_eq!(got["issuer"], cds.issuer.as_str());
    assert_eq!(got["description"], "North clinic EHR");
    assert!(got["jwks"]["keys"].is_array() && got.get("jwks_uri").is_none());
    assert!(got["ehr_connection_id"].is_null() && got["created_at"].is_string());
    let list = app.get_json(admin, "/v1/cds-clients").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // The issuer belongs to one organisation: again here or anywhere is 409.
    let (_, other_admin) = app.create_org("cds-other").await;
    let again = json!({"issuer": cds.issuer, "jwks": {"keys": [jwk("ec-p384")]}});
    assert_problem(app.post_json(admin, "/v1/cds-clients", again.clone()).await, 409).await;
    assert_problem(app.post_json(&other_admin, "/v1/cds-clients", again).await, 409).await;
    // Another organisation neither sees nor deletes it.
    assert_problem(
        app.get(&other_admin, &format!("/v1/cds-clients/{}", cds.client_id))
            .await,
        404,
    )
    .await;
    assert_problem(
        app.delete(&other_admin, &format!("/v1/cds-clients/{}", cds.client_id))
            .await,
        404,
    )
    .await;
    assert_eq!(app.get_json(&other_admin, "/v1/cds-clients").await["items"], json!([]));

    for (body, pointer) in [
        (json!({"issuer": "https://a.example"}), "/jwks_uri"),
        (
            json!({"issuer": "https://a.example", "jwks": {"keys": [jwk("ec-p384")]}, "jwks_uri": "https://a.example/jwks"}),
            "/jwks_uri",
        ),
        (
            json!({"issuer": "https://a.example", "jwks": {"keys": [jwk("rsa-1024")]}}),
            "/jwks/keys/0",
        ),
        (json!({"issuer": "", "jwks": {"keys": [jwk("ec-p384")]}}), "/issuer"),
        (
            json!({"issuer": "https://a.example", "jwks": {"keys": [jwk("ec-p384")]}, "ehr_connection_id": uuid::Uuid::new_v4()}),
            "/ehr_connection_id",
        ),
    ] {
        let problem = assert_problem(app.post_json(admin, "/v1/cds-clients", body).await, 422).await;
        assert!(
            crate::helpers::pointers(&problem).contains(&pointer.to_string()),
            "{problem}"
        );
    }
    let reader = app.token(&["responses:read"]).await;
    assert_problem(app.get(&reader, "/v1/cds-clients").await, 403).await;

    // Deleted: its calls are refused at once on this instance, and its issuer is free again.
    let path = format!("/cds-services/{ALLIANCE}");
    let ok = cds
        .send(
            &path,
            Some(&cds.jwt(&path).sign()),
            &patient_view("p-1", "Practitioner/a"),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        app.delete(admin, &format!("/v1/cds-clients/{}", cds.client_id))
            .await
            .status(),
        204
    );
    let gone = cds
        .send(
            &path,
            Some(&cds.jwt(&path).sign()),
            &patient_view("p-1", "Practitioner/a"),
        )
        .await;
    assert_problem(gone, 401).await;
    let reuse = json!({"issuer": cds.issuer, "jwks": {"keys": [jwk("ec-p384")]}});
    assert_eq!(
        app.post_json(&other_admin, "/v1/cds-clients", reuse).await.status(),
        201
    );
}

#[tokio::test]
async fn every_bad_jwt_is_the_same_401_and_a_replay_is_refused() {
    let cds = Cds::start().await;
    let path = format!("/cds-services/{ALLIANCE}");
    let body = patient_view("p-1", "Practitioner/dr-a");
    let good = cds.jwt(&path);
    let mut cases: Vec<(&str, Jwt)> = Vec::new();
    let spoil = |f: &dyn Fn(&mut Jwt)| {
        let mut j = cds.jwt(&path);
        f(&mut j);
        j
    };
    cases.push(("no kid", spoil(&|j| j.kid = None)));
    cases.push(("unknown kid", spoil(&|j| j.kid = Some("nope".into()))));
    cases.push((
        "alg that does not fit the key",
        spoil(&|j| (j.key, j.alg) = ("ec-p256", Algorithm::ES256)),
    ));
    cases.push((
        "unregistered issuer",
        spoil(&|j| j.iss = "https://stranger.example".into()),
    ));
    cases.push((
        "another URL as aud",
        spoil(&|j| j.aud = json!(cds.app.url("/cds-services/rapport-prescribing"))),
    ));
    cases.push(("the base URL as aud", spoil(&|j| j.aud = json!(cds.app.url("")))));
    cases.push(("exp more than 5 minutes ahead", spoil(&|j| j.exp_in = 900)));
    cases.push(("expired", spoil(&|j| j.exp_in = -120)));
    cases.push(("iat in the future", spoil(&|j| j.iat_in = Some(600))));
    cases.push(("no iat", spoil(&|j| j.iat_in = None)));
    cases.push(("no jti", spoil(&|j| j.jti = None)));
    cases.push((
        "jku on a client registered with inline keys",
        spoil(&|j| j.jku = Some("https://ehr.example/jwks".into())),
    ));
    for (why, jwt) in &cases {
        let token = jwt.sign();
        let res = cds.send(&path, Some(&token), &body).await;
        let problem = assert_problem(res, 401).await;
        assert_eq!(problem["detail"], "the CDS client's JWT was refused", "{why}");
        assert!(
            !problem.to_string().contains(&token),
            "{why}: the token is never echoed"
        );
    }
    // HS256 over anything, `none`, no header, another scheme.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": cds.issuer, "aud": cds.app.url(&path), "exp": now() + 60, "iat": now(), "jti": "x"}),
        &jsonwebtoken::EncodingKey::from_secret(b"secret").unwrap(),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        base64_url(&json!({"alg": "none", "kid": "ec-p384"})),
        base64_url(&json!({"iss": cds.issuer, "aud": cds.app.url(&path), "exp": now() + 60, "iat": now(), "jti": "y"}))
    );
    for token in [hs.as_str(), none.as_str()] {
        assert_problem(cds.send(&path, Some(token), &body).await, 401).await;
    }
    assert_problem(cds.send(&path, None, &body).await, 401).await;
    // A key carried in the header (`jwk`, `x5u`, `x5c`) never finds one: signed with a key
    // that is not registered, naming a kid that is not either.
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("carried".into());
    let mut carried: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk("rsa-2048-b")).unwrap();
    carried.common.key_id = Some("carried".into());
    header.jwk = Some(carried);
    header.x5u = Some("https://attacker.example/cert.pem".into());
    let claims = json!({"iss": cds.issuer, "aud": cds.app.url(&path), "exp": now() + 60, "iat": now(), "jti": "z"});
    let forged = jsonwebtoken::encode(&header, &claims, &signing_key("rsa-2048-b", Algorithm::RS384)).unwrap();
    assert_problem(cds.send(&path, Some(&forged), &body).await, 401).await;
    // Feedback is called with a JWT too.
    let feedback = format!("/cds-services/{ALLIANCE}/feedback");
    assert_problem(cds.send(&feedback, None, &json!({"feedback": []})).await, 401).await;
    // RS384 and RS256 with the RSA key, ES256 with the P-256 key; aud as an array.
    for (key, alg) in [
        ("rsa-2048-a", Algorithm::RS384),
        ("rsa-2048-a", Algorithm::RS256),
        ("ec-p256", Algorithm::ES256),
    ] {
        let mut jwt = cds.jwt(&path);
        (jwt.key, jwt.alg, jwt.kid) = (key, alg, Some(key.to_string()));
        jwt.aud = json!(["https://someone-else.example", cds.app.url(&path)]);
        assert_eq!(cds.send(&path, Some(&jwt.sign()), &body).await.status(), 200, "{alg:?}");
    }
    // One use per jti: the same token again is refused.
    let token = good.sign();
    assert_eq!(cds.send(&path, Some(&token), &body).await.status(), 200);
    assert_problem(cds.send(&path, Some(&token), &body).await, 401).await;
}

fn base64_url(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn a_jku_is_accepted_only_when_it_is_the_registered_jwks_uri() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let keys = KeyServer::start(json!({"keys": [jwk("rsa-2048-a")]}), "max-age=600");
    let issuer = "https://ehr-with-jku.example";
    let res = app
        .post_json(
            &admin,
            "/v1/cds-clients",
            json!({"issuer": issuer, "jwks_uri": keys.url}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["jwks_uri"], keys.url.as_str());
    assert!(created.get("jwks").is_none());
    let path = format!("/cds-services/{ALLIANCE}");
    let body = patient_view("p-1", "Practitioner/a");
    let send = |jku: Option<String>| {
        let mut jwt = Jwt::new(issuer, &app.url(&path));
        (jwt.key, jwt.alg, jwt.kid, jwt.jku) = ("rsa-2048-a", Algorithm::RS384, Some("rsa-2048-a".into()), jku);
        app.http.post(app.url(&path)).bearer_auth(jwt.sign()).json(&body).send()
    };
    assert_eq!(send(None).await.unwrap().status(), 200);
    assert_eq!(send(Some(keys.url.clone())).await.unwrap().status(), 200);
    let elsewhere = send(Some(format!("{}?other", keys.url))).await.unwrap();
    assert_problem(elsewhere, 401).await;
}

#[tokio::test]
async fn an_unknown_service_is_404_then_the_jwt_401_then_the_body_400() {
    let cds = Cds::start().await;
    let body = patient_view("p-1", "Practitioner/a");
    assert_problem(cds.send("/cds-services/nope", None, &body).await, 404).await;
    assert_problem(cds.send("/cds-services/nope/feedback", None, &json!({})).await, 404).await;
    let path = format!("/cds-services/{ALLIANCE}");
    // A bad body with no JWT: 401 first.
    assert_problem(cds.send(&path, None, &json!({"hook": "order-sign"})).await, 401).await;
    let mut bad = Vec::new();
    let mut wrong_hook = body.clone();
    wrong_hook["hook"] = json!("order-sign");
    bad.push(wrong_hook);
    for pointer in ["hookInstance", "context"] {
        let mut b = body.clone();
        b.as_object_mut().unwrap().remove(pointer);
        bad.push(b);
    }
    for field in ["userId", "patientId"] {
        let mut b = body.clone();
        b["context"].as_object_mut().unwrap().remove(field);
        bad.push(b);
    }
    bad.push(json!([1, 2]));
    for b in bad {
        let res = cds.send(&path, Some(&cds.jwt(&path).sign()), &b).await;
        assert_problem(res, 400).await;
    }
    let not_json = cds
        .app
        .http
        .post(cds.app.url(&path))
        .bearer_auth(cds.jwt(&path).sign())
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 400).await;
    let feedback = format!("/cds-services/{ALLIANCE}/feedback");
    for b in [json!({"feedback": {}}), json!([]), json!({"other": []})] {
        let res = cds.send(&feedback, Some(&cds.jwt(&feedback).sign()), &b).await;
        assert_problem(res, 400).await;
    }
}

#[tokio::test]
async fn patient_view_shows_open_alerts_most_severe_first_with_at_most_five() {
    let cds = Cds::start().await;
    let app = &cds.app;
    let writer = app.token(&["responses:write", "responses:read"]).await;
    assert!(
        cds.call(ALLIANCE, &patient_view("p-v", "Practitioner/dr-a"))
            .await
            .is_empty(),
        "no alert: no card"
    );

    // Seven open alerts: three safety flags (on unscored PHQ-9s, so that the PHQ-9 totals
    // stay 5 then 12: a deterioration), a rupture, and two scores below a cut-off.
    for day in [2, 3, 4] {
        post_response(
            app,
            &writer,
            json!({"instrument": "phq-9", "patient": "p-v", "administered_at": format!("2026-11-{day:02}T10:00:00Z"),
                "answers": phq9_unscored_with_item_9(day - 1)}),
        )
        .await;
        // One at a time: each alert is raised after the one before (newest first is then certain).
        let n = (day - 1) as usize;
        wait_for(app, &writer, "patient=p-v&kind=item_flag", |a| a.len() == n).await;
    }
    for (days_ago, total) in [(40, 48), (33, 48), (26, 48), (19, 12)] {
        wai(app, &writer, "p-v", days_ago, total).await;
    }
    let phq = |day: u32, total: u32| {
        json!({"instrument": "phq-9", "patient": "p-v", "administered_at": format!("2026-10-{day:02}T10:00:00Z"),
            "answers": phq9_answers(total, 0)})
    };
    post_response(app, &writer, phq(1, 5)).await;
    post_response(app, &writer, phq(8, 12)).await;
    post_response(
        app,
        &writer,
        json!({"instrument": "srs", "patient": "p-v", "administered_at": "2026-11-01T10:00:00Z",
            "answers": {"1": 8.0, "2": 8.0, "3": 8.0, "4": 8.0}}),
    )
    .await;
    let pdrq: serde_json::Map<String, Value> = (1..=9).map(|i| (i.to_string(), json!(2))).collect();
    post_response(
        app,
        &writer,
        json!({"instrument": "pdrq-9", "patient": "p-v", "administered_at": "2026-11-05T10:00:00Z", "answers": pdrq}),
    )
    .await;
    let alerts = wait_for(app, &writer, "patient=p-v", |a| a.len() == 7).await;
    let mut kinds: Vec<&str> = alerts.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        vec![
            "below_cutoff",
            "below_cutoff",
            "deterioration",
            "item_flag",
            "item_flag",
            "item_flag",
            "rupture"
        ]
    );

    let cards = cds.call(ALLIANCE, &patient_view("p-v", "Practitioner/dr-a")).await;
    for card in &cards {
        assert_card_shape(card, &app.address);
    }
    assert_eq!(cards.len(), 6, "five alert cards and one for the rest: {cards:#?}");
    let indicators: Vec<&str> = cards.iter().map(|c| c["indicator"].as_str().unwrap()).collect();
    assert_eq!(
        indicators,
        vec!["critical", "critical", "critical", "warning", "warning", "info"]
    );
    // Critical ones newest first: the flag of 4 November (item 9 answered 3) leads.
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        cards[0]["summary"],
        format!("Safety flag on PHQ-9: item 9 answered 3 ({today})")
    );
    assert_eq!(
        cards[2]["summary"],
        format!("Safety flag on PHQ-9: item 9 answered 1 ({today})")
    );
    assert_eq!(cards[5]["summary"], "2 more open alerts in rapport");
    // New uuids each time.
    let again = cds.call(ALLIANCE, &patient_view("p-v", "Practitioner/dr-a")).await;
    assert_ne!(again[0]["uuid"], cards[0]["uuid"]);

    // Cards go to clinicians only.
    for user in ["Patient/p-v", "RelatedPerson/mum", "dr-a"] {
        assert!(
            cds.call(ALLIANCE, &patient_view("p-v", user)).await.is_empty(),
            "{user}"
        );
    }
    // Another patient, and an acknowledged alert, show nothing.
    assert!(
        cds.call(ALLIANCE, &patient_view("p-none", "Practitioner/a"))
            .await
            .is_empty()
    );
    let newest_flag = alerts
        .iter()
        .find(|a| a["kind"] == "item_flag" && a["detail"]["answer"] == json!(3))
        .unwrap();
    let ack = app
        .post_json(
            &writer,
            &format!("/v1/alerts/{}/acknowledge", newest_flag["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(ack.status(), 200);
    let after = cds.call(ALLIANCE, &patient_view("p-v", "Practitioner/a")).await;
    assert_eq!(
        after[0]["summary"],
        format!("Safety flag on PHQ-9: item 9 answered 2 ({today})")
    );
    assert_eq!(
        after[5]["summary"], "1 more open alert in rapport",
        "an acknowledged alert is not open"
    );
}

#[tokio::test]
async fn the_patient_id_is_normalised_like_every_reference() {
    let cds = Cds::start().await;
    let writer = cds.app.token(&["responses:write", "responses:read"]).await;
    // "José" composed (NFC) when stored, decomposed (NFD) in the CDS call.
    phq9_flag(&cds.app, &writer, "jos\u{e9}").await;
    wait_for(&cds.app, &writer, "kind=item_flag", |a| a.len() == 1).await;
    let cards = cds.call(ALLIANCE, &patient_view("jose\u{301}", "Practitioner/a")).await;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["indicator"], "critical");
}

#[tokio::test]
async fn prescribing_cards_need_a_medication_order_and_recent_alliance_data() {
    let cds = Cds::start().await;
    let app = &cds.app;
    let writer = app.token(&["responses:write", "responses:read"]).await;
    let with_med = || order_select("p-rx", &["MedicationRequest/m1"], vec![medication("m1"), lab("l1")]);
    // No alliance data yet: nothing.
    assert!(cds.call(PRESCRIBING, &with_med()).await.is_empty());
    // Alliance data older than 180 days: still nothing.
    wai(app, &writer, "p-rx", 200, 40).await;
    assert!(cds.call(PRESCRIBING, &with_med()).await.is_empty());
    for (days_ago, total) in [(30, 44), (20, 46), (10, 50)] {
        wai(app, &writer, "p-rx", days_ago, total).await;
    }
    let cards = cds.call(PRESCRIBING, &with_med()).await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    let card = &cards[0];
    assert_card_shape(card, &app.address);
    assert_eq!(card["indicator"], "info");
    let latest_day = (Utc::now() - ChronoDuration::days(10)).format("%Y-%m-%d").to_string();
    assert_eq!(card["summary"], format!("Alliance (WAI-SR): 50 on {latest_day}"));
    let detail = card["detail"].as_str().unwrap();
    assert!(
        detail.contains("| 50 |") && detail.contains("| 46 |") && detail.contains("| 44 |"),
        "{detail}"
    );
    assert!(!detail.contains("| 40 |"), "only the last three points: {detail}");
    assert!(detail.contains("Reliable change since the first point"), "{detail}");
    assert!(
        detail.contains("9.1%") && detail.contains("3.4%") && detail.contains("z = .30"),
        "{detail}"
    );
    assert!(detail.contains("McKay") && detail.contains("Totura"));

    // The medication is a draft order but not selected: nothing. No medication at all: nothing.
    let unselected = order_select("p-rx", &["ServiceRequest/l1"], vec![medication("m1"), lab("l1")]);
    assert!(cds.call(PRESCRIBING, &unselected).await.is_empty());
    assert!(cds.call(SIGN, &order_sign("p-rx", vec![lab("l1")])).await.is_empty());
    // order-sign counts every draft order; a MedicationOrder counts, whatever its status.
    let old_style = json!({"resource": {"resourceType": "MedicationOrder", "id": "mo", "status": "cancelled"}});
    let signed = cds.call(SIGN, &order_sign("p-rx", vec![lab("l1"), old_style])).await;
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["summary"], card["summary"]);

    // A rupture makes it a warning that names the rupture.
    wai(app, &writer, "p-rx", 2, 14).await;
    wait_for(app, &writer, "patient=p-rx&kind=rupture", |a| a.len() == 1).await;
    let warned = cds.call(PRESCRIBING, &with_med()).await;
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0]["indicator"], "warning");
    assert!(
        warned[0]["summary"]
            .as_str()
            .unwrap()
            .contains("rupture open (50 to 14)"),
        "{}",
        warned[0]["summary"]
    );
}

#[tokio::test]
async fn a_safety_flag_comes_first_when_prescribing_even_without_alliance_data() {
    let cds = Cds::start().await;
    let writer = cds.app.token(&["responses:write", "responses:read"]).await;
    phq9_flag(&cds.app, &writer, "p-flag").await;
    wait_for(&cds.app, &writer, "patient=p-flag&kind=item_flag", |a| a.len() == 1).await;
    let select = order_select("p-flag", &["MedicationRequest/m1"], vec![medication("m1")]);
    let cards = cds.call(PRESCRIBING, &select).await;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["indicator"], "critical");
    let signed = cds.call(SIGN, &order_sign("p-flag", vec![medication("m1")])).await;
    assert_eq!(signed[0]["indicator"], "critical");
    // Without a medication the flag is not the prescribing services' business.
    assert!(cds.call(SIGN, &order_sign("p-flag", vec![lab("l")])).await.is_empty());
    // With alliance data too: the flag first, then the alliance card.
    wai(&cds.app, &writer, "p-flag", 3, 50).await;
    let both = cds.call(PRESCRIBING, &select).await;
    let indicators: Vec<&str> = both.iter().map(|c| c["indicator"].as_str().unwrap()).collect();
    assert_eq!(indicators, vec!["critical", "info"]);
}

#[tokio::test]
async fn feedback_is_kept_per_card_and_shown_on_the_alerts_it_carried() {
    let cds = Cds::start().await;
    let app = &cds.app;
    let writer = app.token(&["responses:write", "responses:read"]).await;
    phq9_flag(app, &writer, "p-fb").await;
    let alert = wait_for(app, &writer, "patient=p-fb", |a| a.len() == 1).await[0].clone();
    let cards = cds.call(ALLIANCE, &patient_view("p-fb", "Practitioner/a")).await;
    let card = cards[0]["uuid"].as_str().unwrap().to_string();
    let body = json!({"feedback": [
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:00:00Z",
         "overrideReason": {"reason": {"code": "already-addressed", "system": "https://ehr.example/reasons",
            "display": "Already addressed"}, "userComment": "Safety plan in place"}},
        {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-12-01T10:05:00Z"},
        {"card": uuid::Uuid::new_v4(), "outcome": "accepted", "outcomeTimestamp": "2026-12-01T10:05:00Z"},
        {"card": card, "outcomeTimestamp": "2026-12-01T10:05:00Z"},
        {"card": card, "outcome": "accepted"},
        {"outcome": "accepted", "outcomeTimestamp": "2026-12-01T10:05:00Z"},
    ]});
    let res = cds.feedback(ALLIANCE, &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({}));
    // Feedback through another service names no card it issued: ignored.
    assert_eq!(cds.feedback(SIGN, &body).await.status(), 200);

    let detail = app
        .get_json(&writer, &format!("/v1/alerts/{}", alert["id"].as_str().unwrap()))
        .await;
    let kept = detail["cds_feedback"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{detail}");
    assert_eq!(kept[0]["outcome"], "overridden");
    assert_eq!(kept[0]["override_reason"]["userComment"], "Safety plan in place");
    assert_eq!(kept[0]["outcome_timestamp"], "2026-12-01T10:00:00Z");
    assert!(kept[0]["received_at"].is_string());
    assert_eq!(kept[1]["outcome"], "accepted");
    assert!(kept[1]["override_reason"].is_null());
    assert_eq!(detail["kind"], "item_flag", "the alert's own fields stay");

    // Audit: one event per call and per feedback, the patient pseudonymised.
    let events = app.get_json(&cds.admin, "/v1/audit-events?limit=100").await;
    let items = events["items"].as_array().unwrap();
    let call = items
        .iter()
        .find(|e| e["action"] == "cds.call")
        .expect("a cds.call event");
    assert_eq!(call["actor"], format!("cds:{}:Practitioner/a", cds.client_id));
    assert_eq!(call["detail"]["service"], ALLIANCE);
    assert_eq!(call["detail"]["cards"], 1);
    assert_eq!(call["detail"]["card_ids"], json!([card]));
    assert_eq!(call["detail"]["issuer"], cds.issuer.as_str());
    assert_eq!(call["detail"]["user"], "Practitioner/a");
    assert_eq!(call["detail"]["encounter"], "enc-1");
    assert!(call["detail"]["hookInstance"].is_string());
    assert_ne!(call["detail"]["patient"], "p-fb", "no patient reference in clear");
    assert!(
        !events.to_string().contains("ehr-secret-token"),
        "fhirAuthorization is never kept"
    );
    let fb: Vec<&Value> = items.iter().filter(|e| e["action"] == "cds.feedback").collect();
    assert_eq!(fb.len(), 2);
    assert!(fb.iter().any(|e| e["detail"]["kept"] == 2 && e["detail"]["items"] == 6));
    assert!(fb.iter().any(|e| e["detail"]["kept"] == 0));

    let metrics = app.public_text("/metrics").await;
    assert!(
        metrics.contains(r#"cds_calls_total{service="rapport-alliance"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cds_cards_total{indicator="critical"} 1"#),
        "{metrics}"
    );

    // Erasure takes the patient's cards and feedback with it.
    let erase = app
        .post_json(&cds.admin, "/v1/patients/p-fb/erase", json!({"confirm": "p-fb"}))
        .await;
    assert_eq!(erase.status(), 200);
    let mut conn = app.db().await;
    assert_eq!(crate::helpers::count_rows(&mut conn, "cds_cards").await, 0);
    assert_eq!(crate::helpers::count_rows(&mut conn, "cds_feedback").await, 0);
}

#[tokio::test]
async fn a_client_acts_only_for_its_own_organisation() {
    let cds = Cds::start().await;
    let app = &cds.app;
    let writer = app.token(&["responses:write", "responses:read"]).await;
    phq9_flag(app, &writer, "p-shared").await;
    wait_for(app, &writer, "patient=p-shared", |a| a.len() == 1).await;
    let cards = cds.call(ALLIANCE, &patient_view("p-shared", "Practitioner/a")).await;
    assert_eq!(cards.len(), 1);

    // Another organisation's client, same patient reference: its organisation holds nothing.
    let (_, other_admin) = app.create_org("cds-tenant-b").await;
    let other_issuer = "https://ehr-b.example";
    let res = app
        .post_json(
            &other_admin,
            "/v1/cds-clients",
            json!({"issuer": other_issuer, "jwks": {"keys": [jwk("ec-p384")]}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let path = format!("/cds-services/{ALLIANCE}");
    let token = Jwt::new(other_issuer, &app.url(&path)).sign();
    let res = cds
        .send(&path, Some(&token), &patient_view("p-shared", "Practitioner/a"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["cards"], json!([]));
    // Nor can it give feedback on the first organisation's card.
    let feedback = format!("/cds-services/{ALLIANCE}/feedback");
    let token = Jwt::new(other_issuer, &app.url(&feedback)).sign();
    let body = json!({"feedback": [{"card": cards[0]["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T10:00:00Z"}]});
    assert_eq!(cds.send(&feedback, Some(&token), &body).await.status(), 200);
    let mut conn = app.db().await;
    assert_eq!(crate::helpers::count_rows(&mut conn, "cds_feedback").await, 0);
}

#[tokio::test]
async fn cors_preflight_is_answered_for_listed_origins_only() {
    let cds = Cds::start_with(|s| s.cds_cors_origins = vec!["https://ehr-ui.example".into()]).await;
    let app = &cds.app;
    let preflight = |origin: &'static str, path: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type")
            .send()
    };
    let ok = preflight("https://ehr-ui.example", "/cds-services/rapport-alliance")
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://ehr-ui.example");
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(h.get("access-control-allow-credentials").is_none());
    let refused = preflight("https://evil.example", "/cds-services/rapport-alliance")
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    // The discovery answer names the listed origin; the rest of the API has no CORS.
    let discovery = app
        .http
        .get(app.url("/cds-services"))
        .header("Origin", "https://ehr-ui.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        discovery.headers()["access-control-allow-origin"],
        "https://ehr-ui.example"
    );
    let api = preflight("https://ehr-ui.example", "/v1/responses").await.unwrap();
    assert!(api.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_jti_is_refused_and_a_deleted_client_stops_on_every_instance() {
    let cds = Cds::start().await;
    let url = cds.app.database_url.clone();
    let second = TestApp::spawn_with(|s| {
        s.database_url = url;
        s.client_status_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let path = format!("/cds-services/{ALLIANCE}");
    let body = patient_view("p-1", "Practitioner/a");
    let send = |app: &TestApp, token: String| app.http.post(app.url(&path)).bearer_auth(token).json(&body).send();
    // The same jti, each token for its own instance's URL: the second use is refused.
    let mut first = Jwt::new(&cds.issuer, &cds.app.url(&path));
    let mut again = Jwt::new(&cds.issuer, &second.url(&path));
    first.jti = Some("shared-jti".into());
    again.jti = first.jti.clone();
    assert_eq!(send(&cds.app, first.sign()).await.unwrap().status(), 200);
    assert_problem(send(&second, again.sign()).await.unwrap(), 401).await;
    // The second instance knows the client; the first deletes it; within the cache time the
    // second refuses it too.
    assert_eq!(
        send(&second, Jwt::new(&cds.issuer, &second.url(&path)).sign())
            .await
            .unwrap()
            .status(),
        200
    );
    let deleted = cds
        .app
        .delete(&cds.admin, &format!("/v1/cds-clients/{}", cds.client_id))
        .await;
    assert_eq!(deleted.status(), 204);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let refused = send(&second, Jwt::new(&cds.issuer, &second.url(&path)).sign())
        .await
        .unwrap();
    assert_problem(refused, 401).await;
    std::mem::forget(second); // the first instance drops the shared database
}
