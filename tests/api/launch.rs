//! SMART App Launch (EHR launch) against a stand-in EHR: its smart-configuration (FHIR base
//! `/fhir`) names an OpenID issuer at another path (`/oidc`), whose token endpoint checks
//! PKCE, the redirect URI and rapport's client authentication (HTTP Basic, or a client
//! assertion verified with the key rapport publishes), and answers with a patient and an
//! RS256 id_token. The test plays the user's browser: it follows rapport's redirect to the
//! authorization endpoint by granting a code itself, then comes back to the callback with
//! rapport's cookie. A real authorization server (oidc-provider) and a real browser run in
//! `launch_browser.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Header};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::builders::{phq9_answers, wai_sr_answers};
use crate::helpers::{TestApp, assert_problem};
use crate::identity::{jwk, now, signing_key};

const CLIENT_ID: &str = "rapport-at-ehr";
const SECRET: &str = "ehr-secret: with spaces & symbols";

/// How the stand-in EHR answers at its token endpoint.
#[derive(Clone)]
pub(crate) struct Behaviour {
    pub(crate) patient: Option<String>,
    pub(crate) fhir_user: String,
    pub(crate) name: Option<String>,
    pub(crate) expires_in: Option<i64>,
    pub(crate) app_context: Option<String>,
    /// The id_token's key (`rsa-2048-a` is in the EHR's JWKS, `rsa-2048-b` is not).
    pub(crate) id_key: &'static str,
    pub(crate) id_aud: Option<String>,
    pub(crate) smart_algs: Vec<&'static str>,
    pub(crate) pkce_methods: Vec<&'static str>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            patient: Some("p-launch".into()),
            fhir_user: "Practitioner/dr-1".into(),
            name: Some("Dr Ada Byron".into()),
            expires_in: Some(1800),
            app_context: None,
            id_key: "rsa-2048-a",
            id_aud: None,
            smart_algs: vec!["ES384", "RS384"],
            pkce_methods: vec!["S256"],
        }
    }
}

struct Grant {
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct EhrState {
    behaviour: Behaviour,
    grants: HashMap<String, Grant>,
    /// How rapport authenticated at each token request: `basic:{user}:{pass}` or `jwt:{sub}`.
    auth_seen: Vec<String>,
    rapport_jwks: Option<String>,
}

pub(crate) struct Ehr {
    pub(crate) fhir: String,
    pub(crate) issuer: String,
    state: Arc<Mutex<EhrState>>,
}

impl Ehr {
    pub(crate) fn start() -> Ehr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(EhrState::default()));
        let (shared, at) = (state.clone(), base.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new((shared.clone(), at.clone())))
                .route("/fhir/.well-known/smart-configuration", web::get().to(smart))
                .route("/oidc/.well-known/openid-configuration", web::get().to(openid))
                .route(
                    "/oidc/jwks",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"keys": [jwk("rsa-2048-a")]})) }),
                )
                .route("/oidc/token", web::post().to(token))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Ehr {
            fhir: format!("{base}/fhir"),
            issuer: format!("{base}/oidc"),
            state,
        }
    }

    pub(crate) fn behave(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().unwrap().behaviour);
    }

    /// The authorization server's part: a code for the challenge and redirect URI it was asked for.
    fn grant(&self, challenge: &str, redirect_uri: &str) -> String {
        let code = uuid::Uuid::new_v4().to_string();
        self.state.lock().unwrap().grants.insert(
            code.clone(),
            Grant {
                challenge: challenge.into(),
                redirect_uri: redirect_uri.into(),
            },
        );
        code
    }

    fn auth_seen(&self) -> Vec<String> {
        self.state.lock().unwrap().auth_seen.clone()
    }
}

type Shared = web::Data<(Arc<Mutex<EhrState>>, String)>;

async fn smart(data: Shared) -> HttpResponse {
    let b = data.0.lock().unwrap().behaviour.clone();
    let base = &data.1;
    HttpResponse::Ok().json(json!({
        "issuer": format!("{base}/oidc"),
        "jwks_uri": format!("{base}/oidc/jwks"),
        "authorization_endpoint": format!("{base}/oidc/authorize?tenant=north"),
        "token_endpoint": format!("{base}/oidc/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": b.smart_algs,
        "code_challenge_methods_supported": b.pkce_methods,
        "capabilities": ["launch-ehr", "client-confidential-symmetric", "client-confidential-asymmetric",
            "context-ehr-patient", "sso-openid-connect"],
    }))
}

async fn openid(data: Shared) -> HttpResponse {
    let base = &data.1;
    HttpResponse::Ok().json(json!({"issuer": format!("{base}/oidc"), "jwks_uri": format!("{base}/oidc/jwks")}))
}

async fn token(req: HttpRequest, data: Shared, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let refuse =
        |why: &str| HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": why}));
    let (grant, behaviour, jwks) = {
        let mut state = data.0.lock().unwrap();
        let grant = form.get("code").and_then(|c| state.grants.remove(c));
        (grant, state.behaviour.clone(), state.rapport_jwks.clone())
    };
    let Some(grant) = grant else {
        return refuse("unknown or used code");
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("grant_type");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return refuse("PKCE verification failed");
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return refuse("redirect_uri");
    }
    // Client authentication: Basic (form-encoded parts) or a client assertion.
    let seen = if let Some(basic) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()) {
        let decoded = String::from_utf8(STANDARD.decode(basic.trim_start_matches("Basic ")).unwrap()).unwrap();
        let (user, pass) = decoded.split_once(':').unwrap();
        let unform = |s: &str| -> String {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}")).unwrap()[0]
                .1
                .clone()
        };
        format!("basic:{}:{}", unform(user), unform(pass))
    } else if let Some(assertion) = form.get("client_assertion") {
        let Some(jwks) = jwks else {
            return refuse("no key registered for rapport");
        };
        let set: Value = reqwest::get(&jwks).await.unwrap().json().await.unwrap();
        let key: jsonwebtoken::jwk::Jwk = serde_json::from_value(set["keys"][0].clone()).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES384);
        v.set_audience(&[format!("{}/oidc/token", data.1)]);
        v.set_issuer(&[CLIENT_ID]);
        match jsonwebtoken::decode::<Value>(assertion, &jsonwebtoken::DecodingKey::from_jwk(&key).unwrap(), &v) {
            Ok(t) => format!("jwt:{}", t.claims["sub"].as_str().unwrap()),
            Err(e) => {
                return HttpResponse::Unauthorized()
                    .json(json!({"error": "invalid_client", "error_description": e.to_string()}));
            }
        }
    } else {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    };
    data.0.lock().unwrap().auth_seen.push(seen);
    let now = now();
    let mut claims = json!({"iss": format!("{}/oidc", data.1), "sub": "user-17",
        "aud": behaviour.id_aud.clone().unwrap_or_else(|| CLIENT_ID.into()),
        "exp": now + 300, "iat": now, "fhirUser": behaviour.fhir_user});
    if let Some(name) = &behaviour.name {
        claims["name"] = json!(name);
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-2048-a".into());
    let id_token = jsonwebtoken::encode(&header, &claims, &signing_key(behaviour.id_key, Algorithm::RS256)).unwrap();
    let mut answer = json!({"access_token": "the-ehr-access-token", "token_type": "Bearer",
        "scope": "launch openid fhirUser", "id_token": id_token});
    if let Some(p) = behaviour.patient {
        answer["patient"] = json!(p);
    }
    if let Some(e) = behaviour.expires_in {
        answer["expires_in"] = json!(e);
    }
    if let Some(c) = behaviour.app_context {
        answer["appContext"] = json!(c);
    }
    HttpResponse::Ok().json(answer)
}

/// A browser: its own cookies (only rapport's launch cookies matter), no redirect following.
pub(crate) struct Browser {
    http: reqwest::Client,
    cookies: Vec<String>,
}

impl Browser {
    pub(crate) fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
            cookies: Vec::new(),
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut req = self.http.get(url);
        if !self.cookies.is_empty() {
            req = req.header("Cookie", self.cookies.join("; "));
        }
        let res = req.send().await.unwrap();
        for set in res.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            self.cookies.push(pair);
        }
        res
    }
}

/// What `/launch` sent the browser to.
struct Authorize {
    params: HashMap<String, String>,
}

impl Authorize {
    fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no `{name}` in the authorize URL"))
    }
}

async fn start_launch(app: &TestApp, ehr: &Ehr, browser: &mut Browser) -> Authorize {
    let url = format!("{}?iss={}&launch=launch-xyz", app.url("/launch"), percent(&ehr.fhir));
    let res = browser.get(&url).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/authorize?tenant=north&", ehr.issuer)),
        "{location}"
    );
    let params = url::Url::parse(&location).unwrap().query_pairs().into_owned().collect();
    Authorize { params }
}

fn percent(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn come_back(app: &TestApp, browser: &mut Browser, query: &str) -> reqwest::Response {
    browser.get(&format!("{}?{query}", app.url("/launch/callback"))).await
}

/// The console's part: the one-time code of the console URL, exchanged for the session.
async fn session_from(app: &TestApp, location: &str) -> reqwest::Response {
    let code = location
        .split("#/launch/")
        .nth(1)
        .unwrap_or_else(|| panic!("no code in {location}"));
    app.http
        .post(app.url("/v1/launch/session"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
}

/// A whole launch in `browser`; the callback's answer.
async fn launch(app: &TestApp, ehr: &Ehr, browser: &mut Browser) -> reqwest::Response {
    let authorize = start_launch(app, ehr, browser).await;
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    come_back(
        app,
        browser,
        &format!(
            "code={code}&state={}&iss={}",
            authorize.param("state"),
            percent(&ehr.issuer)
        ),
    )
    .await
}

/// A launch that must succeed: the session.
pub(crate) async fn launched_session(app: &TestApp, ehr: &Ehr) -> Value {
    let res = launch(app, ehr, &mut Browser::new()).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let res = session_from(app, &location).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

pub(crate) async fn connect(app: &TestApp, admin: &str, ehr: &Ehr, auth: &str) -> Value {
    let mut body = json!({"issuer": ehr.fhir, "client_id": CLIENT_ID, "client_auth": auth,
        "frame_origins": ["https://ehr-ui.example", "https://ehr-ui.example:8443/"]});
    if auth == "client_secret_basic" {
        body["client_secret"] = json!(SECRET);
    }
    let res = app.post_json(admin, "/v1/ehr-connections", body).await;
    assert_eq!(res.status(), 201);
    let connection: Value = res.json().await.unwrap();
    if let Some(jwks) = connection["jwks_url"].as_str() {
        ehr.state.lock().unwrap().rapport_jwks = Some(jwks.to_string());
    }
    connection
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> u16 {
    app.post_json(token, path, body).await.status().as_u16()
}

async fn status(app: &TestApp, token: &str, path: &str) -> u16 {
    app.get(token, path).await.status().as_u16()
}

async fn first_alert(app: &TestApp, admin: &str, patient: &str, kind: &str) -> String {
    let page = crate::alerts::wait_for(app, admin, &format!("patient={patient}&kind={kind}"), |items| {
        !items.is_empty()
    })
    .await;
    page[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_ehr_launch_ends_in_a_token_that_reads_its_patient_only() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let ehr = Ehr::start();
    let connection = connect(&app, &admin, &ehr, "client_secret_basic").await;
    assert!(
        connection.get("client_secret").is_none() && connection.get("jwks_url").is_none(),
        "{connection}"
    );
    assert_eq!(
        connection["frame_origins"],
        json!(["https://ehr-ui.example", "https://ehr-ui.example:8443"])
    );
    let id = connection["id"].as_str().unwrap();
    // Data: the launched patient and another.
    for (patient, total) in [("p-launch", 50), ("p-launch", 14), ("p-other", 50), ("p-other", 14)] {
        let body = json!({"instrument": "wai-sr", "patient": patient, "administered_at": format!("2026-11-{:02}T10:00:00Z", 1 + total / 10),
            "answers": wai_sr_answers(total as u32)});
        assert_eq!(post(&app, &admin, "/v1/responses", body).await, 201);
    }
    for patient in ["p-launch", "p-other"] {
        let body = json!({"instrument": "phq-9", "patient": patient, "administered_at": "2026-11-20T10:00:00Z",
            "answers": phq9_answers(10, 2)});
        assert_eq!(post(&app, &admin, "/v1/responses", body).await, 201);
    }
    let own_alert = first_alert(&app, &admin, "p-launch", "item_flag").await;
    let other_alert = first_alert(&app, &admin, "p-other", "item_flag").await;

    // /launch: a 302 to the EHR's authorization endpoint with everything SMART asks for.
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    assert_eq!(authorize.param("response_type"), "code");
    assert_eq!(authorize.param("client_id"), CLIENT_ID);
    assert_eq!(authorize.param("redirect_uri"), app.url("/launch/callback"));
    assert_eq!(authorize.param("launch"), "launch-xyz");
    assert_eq!(authorize.param("scope"), "launch openid fhirUser");
    assert_eq!(authorize.param("aud"), ehr.fhir);
    assert_eq!(authorize.param("code_challenge_method"), "S256");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(authorize.param("state")).unwrap().len(),
        32,
        "256 random bits"
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(authorize.param("code_challenge")).unwrap().len(),
        32
    );
    let raw_cookie = {
        let res = Browser::new()
            .get(&format!("{}?iss={}&launch=l", app.url("/launch"), percent(&ehr.fhir)))
            .await;
        assert_eq!(
            res.headers()["content-security-policy"],
            "frame-ancestors https://ehr-ui.example https://ehr-ui.example:8443"
        );
        res.headers()["set-cookie"].to_str().unwrap().to_string()
    };
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=None",
        "Partitioned",
        "Max-Age=600",
        "Path=/launch",
    ] {
        assert!(
            raw_cookie.split("; ").any(|a| a == attribute),
            "{attribute} missing: {raw_cookie}"
        );
    }

    // The callback exchanges the code with HTTP Basic and sends the browser into the console.
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    let res = come_back(
        &app,
        &mut browser,
        &format!(
            "code={code}&state={}&iss={}&extra=ignored",
            authorize.param("state"),
            percent(&ehr.issuer)
        ),
    )
    .await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&app.url(&format!("/console/launch/{id}/#/launch/"))),
        "{location}"
    );
    assert_eq!(ehr.auth_seen(), vec![format!("basic:{CLIENT_ID}:{SECRET}")]);

    let res = session_from(&app, &location).await;
    assert_eq!(res.status(), 200);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["patient"], "p-launch");
    assert_eq!(session["user"], "Dr Ada Byron");
    assert_eq!(session["fhir_user"], "Practitioner/dr-1");
    assert_eq!(session["expires_in"], 1800, "never longer than the EHR's token");
    assert_eq!(session["alert"], Value::Null);
    // The code works once.
    assert_problem(session_from(&app, &location).await, 422).await;
    let token = session["access_token"].as_str().unwrap();

    // Its patient: trends, chart, responses, alerts, FHIR.
    assert_eq!(
        status(&app, token, "/v1/patients/p-launch/trends?instrument=wai-sr").await,
        200
    );
    assert_eq!(
        status(&app, token, "/v1/patients/p-launch/trends.svg?instrument=wai-sr").await,
        200
    );
    assert_eq!(status(&app, token, "/v1/instruments").await, 200);
    let responses = app.get_json(token, "/v1/responses").await;
    let items = responses["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|r| r["patient"] == "p-launch"));
    let own_response = items[0]["id"].as_str().unwrap();
    assert_eq!(status(&app, token, &format!("/v1/responses/{own_response}")).await, 200);
    assert_eq!(
        status(&app, token, &format!("/fhir/r4/QuestionnaireResponse/{own_response}")).await,
        200
    );
    let alerts = app.get_json(token, "/v1/alerts?status=all").await;
    assert!(!alerts["items"].as_array().unwrap().is_empty());
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["patient"] == "p-launch")
    );
    let bundle = app
        .get_json(token, "/fhir/r4/Observation?subject=Patient/p-launch")
        .await;
    assert_eq!(bundle["entry"].as_array().map_or(0, Vec::len), 3);

    // Another patient's: 404 one by one, empty lists.
    let admin_list = app.get_json(&admin, "/v1/responses?patient=p-other").await;
    let other_response = admin_list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        status(&app, token, "/v1/patients/p-other/trends?instrument=wai-sr").await,
        404
    );
    assert_eq!(
        status(&app, token, "/v1/patients/p-other/trends.svg?instrument=wai-sr").await,
        404
    );
    assert_eq!(
        status(&app, token, &format!("/v1/responses/{other_response}")).await,
        404
    );
    assert_eq!(
        status(&app, token, &format!("/fhir/r4/QuestionnaireResponse/{other_response}")).await,
        404
    );
    assert_eq!(
        status(&app, token, &format!("/fhir/r4/Observation/{other_response}")).await,
        404
    );
    assert_eq!(status(&app, token, &format!("/v1/alerts/{other_alert}")).await, 404);
    assert_eq!(
        app.get_json(token, "/v1/responses?patient=p-other").await["items"],
        json!([])
    );
    assert_eq!(
        app.get_json(token, "/v1/alerts?patient=p-other&status=all").await["items"],
        json!([])
    );
    let other_bundle = app
        .get_json(token, "/fhir/r4/Observation?subject=Patient/p-other")
        .await;
    assert_eq!(other_bundle["entry"].as_array().map_or(0, Vec::len), 0);
    let both = app
        .get_json(token, "/fhir/r4/Observation?subject=Patient/p-launch,Patient/p-other")
        .await;
    assert_eq!(both["entry"].as_array().map_or(0, Vec::len), 0);

    // It acknowledges its patient's alerts, not another's, and writes nothing else.
    assert_eq!(
        post(&app, token, &format!("/v1/alerts/{other_alert}/acknowledge"), json!({})).await,
        404
    );
    assert_eq!(
        post(
            &app,
            token,
            &format!("/v1/alerts/{own_alert}/acknowledge"),
            json!({"note": "seen in the EHR"})
        )
        .await,
        200
    );
    let acknowledged = app.get_json(&admin, &format!("/v1/alerts/{own_alert}")).await;
    assert_eq!(acknowledged["acknowledged_by"], format!("ehr:{id}:Practitioner/dr-1"));
    let write = json!({"instrument": "wai-sr", "patient": "p-launch", "administered_at": "2026-11-30T10:00:00Z",
        "answers": wai_sr_answers(40)});
    assert_eq!(post(&app, token, "/v1/responses", write).await, 403);
    assert_eq!(
        post(
            &app,
            token,
            &format!("/v1/responses/{own_response}/void"),
            json!({"reason": "x"})
        )
        .await,
        403
    );
    assert_eq!(
        post(
            &app,
            token,
            "/v1/patients/p-launch/erase",
            json!({"confirm": "p-launch"})
        )
        .await,
        403
    );
    // Aggregates and administration are 403.
    for path in [
        "/v1/clinicians?instrument=wai-sr",
        "/v1/trajectory?instrument=wai-sr",
        "/v1/patients?instrument=wai-sr",
        "/v1/alliance-outcome?alliance=wai-sr&outcome=phq-9&at_session=3",
        "/v1/instruments/wai-sr/versions/1/norms",
        "/v1/exports/responses?instrument=wai-sr",
        "/v1/audit-events",
        "/v1/clients",
        "/v1/webhooks",
        "/v1/ehr-connections",
        "/v1/cds-clients",
        "/v1/identity-providers",
    ] {
        assert_eq!(status(&app, token, path).await, 403, "{path}");
    }
    // The audit log names the EHR user, and the launch.
    let audit = app.get_json(&admin, "/v1/audit-events?limit=200").await;
    let actors: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let user = format!("ehr:{id}:Practitioner/dr-1");
    for action in [
        "launch.completed",
        "launch.session_started",
        "trend.read",
        "alert.acknowledged",
    ] {
        assert!(
            actors.iter().any(|(a, x)| *a == user && x == action),
            "{action} by {user}: {actors:?}"
        );
    }
    assert!(
        !audit.to_string().contains("p-launch"),
        "the audit log names patients by pseudonym only"
    );
    assert!(!audit.to_string().contains("the-ehr-access-token"));

    // A second organisation sees none of it; deleting the connection stops the token at once.
    let (_, other_admin) = app.create_org("launch-other").await;
    assert_eq!(
        app.get_json(&other_admin, "/v1/ehr-connections").await["items"],
        json!([])
    );
    assert_eq!(
        status(&app, &other_admin, &format!("/v1/ehr-connections/{id}")).await,
        404
    );
    assert_eq!(
        app.delete(&other_admin, &format!("/v1/ehr-connections/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(status(&app, token, "/v1/instruments").await, 200);
    assert_eq!(
        app.delete(&admin, &format!("/v1/ehr-connections/{id}")).await.status(),
        204
    );
    assert_eq!(status(&app, token, "/v1/instruments").await, 401);
}

#[tokio::test]
async fn every_other_operation_is_forbidden_to_a_launch_token() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let ehr = Ehr::start();
    connect(&app, &admin, &ehr, "client_secret_basic").await;
    let session = launched_session(&app, &ehr).await;
    let token = session["access_token"].as_str().unwrap();
    let document: Value = app.public_json("/openapi.json").await;
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if !bearer || rapport::launch::patient_route(&method.to_uppercase(), path) {
                continue;
            }
            let concrete = path
                .replace("{patient}", "p-launch")
                .replace("{key}", "wai-sr")
                .replace("{v}", "1")
                .replace("{clinician}", "dr-a")
                .replace("{delivery_id}", "00000000-0000-0000-0000-000000000001");
            let concrete = regex_free_ids(&concrete);
            let req = app
                .http
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .bearer_auth(token);
            let req = if method == "get" || method == "delete" {
                req
            } else {
                req.json(&json!({}))
            };
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 403, "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} operations checked");
}

/// Any remaining `{...}` path parameter becomes a UUID.
fn regex_free_ids(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str("00000000-0000-0000-0000-000000000001");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_failed_step_is_a_page_that_names_it_and_grants_nothing() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let ehr = Ehr::start();
    connect(&app, &admin, &ehr, "client_secret_basic").await;
    let page = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        assert!(res.headers().get("location").is_none(), "a refusal never redirects");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        (status, res.text().await.unwrap())
    };

    // No connection for the iss, no iss, no launch: 400 pages, never a redirect.
    let unknown = app
        .http
        .get(format!(
            "{}?iss=https%3A%2F%2Fevil.example%2Ffhir&launch=x",
            app.url("/launch")
        ))
        .send()
        .await
        .unwrap();
    assert!(
        unknown.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let (s, text) = page(unknown).await;
    assert_eq!(s, 400);
    assert!(
        text.contains("no EHR connection") || text.contains("No organisation"),
        "{text}"
    );
    let (s, _) = page(app.http.get(app.url("/launch?launch=x")).send().await.unwrap()).await;
    assert_eq!(s, 400);
    let (s, _) = page(
        app.http
            .get(format!("{}?iss={}", app.url("/launch"), percent(&ehr.fhir)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);

    // State reuse: the second callback with the same state and cookie is refused.
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    let state = authorize.param("state").to_string();
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    let query = format!("code={code}&state={state}");
    assert_eq!(come_back(&app, &mut browser, &query).await.status(), 302);
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    let (s, text) = page(come_back(&app, &mut browser, &format!("code={code}&state={state}")).await).await;
    assert_eq!(s, 400);
    assert!(text.contains("already used"), "{text}");

    // Another browser: without the cookie, and with another launch's cookie. The right
    // browser still finishes afterwards (the state was not spent by the others).
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    let state = authorize.param("state").to_string();
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    let (s, text) = page(come_back(&app, &mut Browser::new(), &format!("code={code}&state={state}")).await).await;
    assert_eq!(s, 400);
    assert!(text.contains("new window"), "{text}");
    let mut thief = Browser::new();
    start_launch(&app, &ehr, &mut thief).await;
    let forged = thief.cookies[0].split_once('=').unwrap().1.to_string();
    thief.cookies = vec![format!("rapport_launch_{}={forged}", &state[..16])];
    let (s, _) = page(come_back(&app, &mut thief, &format!("code={code}&state={state}")).await).await;
    assert_eq!(s, 400);
    assert_eq!(
        come_back(&app, &mut browser, &format!("code={code}&state={state}"))
            .await
            .status(),
        302
    );

    // Wrong PKCE: the EHR refuses the exchange (the code was granted for another challenge).
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    let other_challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(b"another verifier"));
    let code = ehr.grant(&other_challenge, authorize.param("redirect_uri"));
    let (s, text) = page(
        come_back(
            &app,
            &mut browser,
            &format!("code={code}&state={}", authorize.param("state")),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        text.contains("refused the code exchange") && text.contains("invalid_grant"),
        "{text}"
    );

    // An EHR error redirect: its description is shown as text.
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    let (s, text) = page(
        come_back(
            &app,
            &mut browser,
            &format!(
                "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={}",
                authorize.param("state")
            ),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        text.contains("access_denied") && text.contains("&lt;script&gt;") && !text.contains("<script>"),
        "{text}"
    );

    // RFC 9207: an `iss` that is not the authorization server's.
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    let (s, text) = page(
        come_back(
            &app,
            &mut browser,
            &format!(
                "code={code}&state={}&iss=https%3A%2F%2Fmix-up.example",
                authorize.param("state")
            ),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(text.contains("another issuer"), "{text}");

    // A bad id_token: signed by a key the EHR does not publish; for another audience.
    for (bad, says) in [("key", "id_token was refused"), ("aud", "id_token was refused")] {
        ehr.behave(|b| {
            if bad == "key" {
                b.id_key = "rsa-2048-b"
            } else {
                b.id_aud = Some("someone-else".into())
            }
        });
        let (s, text) = page(launch(&app, &ehr, &mut Browser::new()).await).await;
        assert_eq!(s, 400, "{bad}");
        assert!(text.contains(says), "{bad}: {text}");
        ehr.behave(|b| *b = Behaviour::default());
    }
    // No patient in the token answer.
    ehr.behave(|b| b.patient = None);
    let (s, text) = page(launch(&app, &ehr, &mut Browser::new()).await).await;
    assert_eq!(s, 400);
    assert!(text.contains("names no patient"), "{text}");
    ehr.behave(|b| *b = Behaviour::default());

    // No launch was granted by any of these: the only sessions are the two that succeeded.
    assert_eq!(audited(&app, &admin, "launch.completed").await.len(), 2);
}

#[tokio::test]
async fn a_smart_configuration_without_s256_is_a_502_page() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let ehr = Ehr::start();
    ehr.behave(|b| b.pkce_methods = vec!["plain"]);
    connect(&app, &admin, &ehr, "client_secret_basic").await;
    let res = app
        .http
        .get(format!("{}?iss={}&launch=x", app.url("/launch"), percent(&ehr.fhir)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert!(res.text().await.unwrap().contains("S256"));
}

#[tokio::test]
async fn a_private_key_jwt_connection_publishes_its_key_and_signs_the_exchange() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let ehr = Ehr::start();
    let connection = connect(&app, &admin, &ehr, "private_key_jwt").await;
    let id = connection["id"].as_str().unwrap();
    assert_eq!(connection["jwks_url"], app.url(&format!("/launch/jwks/{id}")));
    let res = app
        .http
        .get(app.url(&format!("/launch/jwks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "max-age=300");
    let set: Value = res.json().await.unwrap();
    let key = &set["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("P-384"), Some("ES384"), Some("sig"))
    );
    assert!(
        key["kid"].is_string() && key.get("d").is_none(),
        "the public half only: {key}"
    );
    let session = launched_session(&app, &ehr).await;
    assert_eq!(ehr.auth_seen(), vec![format!("jwt:{CLIENT_ID}")]);
    assert_eq!(session["patient"], "p-launch");
    // A connection by secret publishes nothing.
    let other = Ehr::start();
    let by_secret = connect(&app, &admin, &other, "client_secret_basic").await;
    let res = app
        .http
        .get(app.url(&format!("/launch/jwks/{}", by_secret["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // An EHR whose token endpoint verifies no ES384 is told so at registration.
    let rs_only = Ehr::start();
    rs_only.behave(|b| b.smart_algs = vec!["RS384"]);
    let res = app
        .post_json(
            &admin,
            "/v1/ehr-connections",
            json!({"issuer": rs_only.fhir, "client_id": "c", "client_auth": "private_key_jwt"}),
        )
        .await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(crate::helpers::pointers(&problem), vec!["/client_auth"]);
}

#[tokio::test]
async fn connections_are_checked_and_belong_to_one_organisation() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    for (body, pointer) in [
        (
            json!({"issuer": "not a url", "client_id": "c", "client_auth": "private_key_jwt"}),
            "/issuer",
        ),
        (
            json!({"issuer": "https://ehr.example/fhir", "client_id": "", "client_auth": "private_key_jwt"}),
            "/client_id",
        ),
        (
            json!({"issuer": "https://ehr.example/fhir", "client_id": "c", "client_auth": "none"}),
            "/client_auth",
        ),
        (
            json!({"issuer": "https://ehr.example/fhir", "client_id": "c", "client_auth": "client_secret_basic"}),
            "/client_secret",
        ),
        (
            json!({"issuer": "https://ehr.example/fhir", "client_id": "c", "client_auth": "private_key_jwt", "client_secret": "s"}),
            "/client_secret",
        ),
        (
            json!({"issuer": "https://ehr.example/fhir", "client_id": "c", "client_auth": "private_key_jwt", "frame_origins": ["https://ui.example/path"]}),
            "/frame_origins/0",
        ),
        (
            json!({"issuer": "https://ehr.example/fhir", "client_id": "c", "client_auth": "private_key_jwt", "frame_origins": ["https://a.example", "x; script-src *"]}),
            "/frame_origins/1",
        ),
    ] {
        let problem = assert_problem(app.post_json(&admin, "/v1/ehr-connections", body.clone()).await, 422).await;
        assert_eq!(crate::helpers::pointers(&problem), vec![pointer.to_string()], "{body}");
    }
    assert_eq!(count(&app).await, 0, "nothing half-written");
    // Without RAPPORT_WEBHOOK_ALLOW_PRIVATE, an internal issuer is refused.
    let strict = TestApp::spawn().await;
    let strict_admin = strict.admin_token().await;
    let body = json!({"issuer": "http://127.0.0.1:9/fhir", "client_id": "c", "client_auth": "private_key_jwt"});
    assert_problem(strict.post_json(&strict_admin, "/v1/ehr-connections", body).await, 422).await;

    let ehr = Ehr::start();
    let connection = connect(&app, &admin, &ehr, "private_key_jwt").await;
    let (_, other_admin) = app.create_org("ehr-second").await;
    let res = app
        .post_json(
            &other_admin,
            "/v1/ehr-connections",
            json!({"issuer": ehr.fhir, "client_id": "c", "client_auth": "private_key_jwt"}),
        )
        .await;
    assert_problem(res, 409).await;
    let listed = app.get_json(&admin, "/v1/ehr-connections").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0], connection);
    let token = app.token(&["responses:read"]).await;
    assert_eq!(status(&app, &token, "/v1/ehr-connections").await, 403);

    // Deleting drops its pending launches: a started launch cannot finish.
    let mut browser = Browser::new();
    let authorize = start_launch(&app, &ehr, &mut browser).await;
    let id = connection["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&admin, &format!("/v1/ehr-connections/{id}")).await.status(),
        204
    );
    let code = ehr.grant(authorize.param("code_challenge"), authorize.param("redirect_uri"));
    let res = come_back(
        &app,
        &mut browser,
        &format!("code={code}&state={}", authorize.param("state")),
    )
    .await;
    assert_eq!(res.status(), 400);
    let mut conn = app.db().await;
    assert_eq!(crate::helpers::count_rows(&mut conn, "launch_states").await, 0);
}

/// The organisation's audit events of one action.
async fn audited(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let page = app.get_json(admin, "/v1/audit-events?limit=500").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

async fn count(app: &TestApp) -> i64 {
    let mut conn = app.db().await;
    crate::helpers::count_rows(&mut conn, "ehr_connections").await
}

#[tokio::test]
async fn only_the_launched_view_may_be_framed_and_only_by_its_ehr() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = true).await;
    let admin = app.admin_token().await;
    let ehr = Ehr::start();
    let connection = connect(&app, &admin, &ehr, "client_secret_basic").await;
    let id = connection["id"].as_str().unwrap();
    let res = app
        .http
        .get(app.url(&format!("/console/launch/{id}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.ends_with("frame-ancestors https://ehr-ui.example https://ehr-ui.example:8443"),
        "{csp}"
    );
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(res.headers().get("x-frame-options").is_none());
    for path in [
        "/console/",
        "/console/console.js",
        "/healthz",
        "/openapi.json",
        "/docs/",
        "/v1/instruments",
        "/nowhere",
    ] {
        let res = app.http.get(app.url(path)).bearer_auth(&admin).send().await.unwrap();
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
    let unknown = app
        .http
        .get(app.url(&format!("/console/launch/{}/", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_cds_card_opens_the_launched_console_on_its_alert() {
    let cds = crate::cds::Cds::start_with(|_| {}).await;
    let (app, admin) = (&cds.app, &cds.admin);
    let ehr = Ehr::start();
    let connection = connect(app, admin, &ehr, "client_secret_basic").await;
    let connection_id = connection["id"].as_str().unwrap();
    // A client naming another organisation's connection is refused; its own is accepted.
    let (_, other_admin) = app.create_org("cds-launch-other").await;
    let other_ehr = Ehr::start();
    let foreign = connect(app, &other_admin, &other_ehr, "client_secret_basic").await;
    let res = app
        .post_json(
            admin,
            "/v1/cds-clients",
            json!({"issuer": "https://linked.example", "jwks": {"keys": [jwk("ec-p384")]},
        "ehr_connection_id": foreign["id"]}),
        )
        .await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(crate::helpers::pointers(&problem), vec!["/ehr_connection_id"]);
    let client = app.get_json(admin, "/v1/cds-clients").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.delete(admin, &format!("/v1/cds-clients/{client}")).await.status(),
        204
    );
    let res = app
        .post_json(
            admin,
            "/v1/cds-clients",
            json!({"issuer": cds.issuer, "jwks": {"keys": [jwk("ec-p384")]},
        "ehr_connection_id": connection_id}),
        )
        .await;
    assert_eq!(res.status(), 201);

    crate::cds::phq9_flag(app, admin, "p-launch").await;
    crate::cds::phq9_flag(app, admin, "p-else").await;
    let alert = first_alert(app, admin, "p-launch", "item_flag").await;
    let else_alert = first_alert(app, admin, "p-else", "item_flag").await;
    let cards = cds
        .call(
            "rapport-alliance",
            &crate::cds::patient_view("p-launch", "Practitioner/dr-1"),
        )
        .await;
    let link = &cards[0]["links"][0];
    assert_eq!(link["type"], "smart");
    assert_eq!(link["url"], app.url("/launch"));
    let context: Value = serde_json::from_str(link["appContext"].as_str().unwrap()).unwrap();
    assert_eq!(context["alert"], alert);

    // The EHR passes the card's appContext through the launch: the console opens on the alert.
    ehr.behave(|b| b.app_context = Some(link["appContext"].as_str().unwrap().to_string()));
    let session = launched_session(app, &ehr).await;
    assert_eq!(session["alert"], alert);
    assert_eq!(session["instrument"], "phq-9");
    // A context naming another patient's alert (or another patient) is ignored, and audited.
    for context in [
        json!({"patient": "p-launch", "instrument": "phq-9", "alert": else_alert}),
        json!({"patient": "p-else", "instrument": "phq-9", "alert": else_alert}),
    ] {
        ehr.behave(|b| b.app_context = Some(context.to_string()));
        let session = launched_session(app, &ehr).await;
        assert_eq!(session["alert"], Value::Null);
        assert_eq!(session["patient"], "p-launch");
    }
    assert_eq!(audited(app, admin, "launch.context_ignored").await.len(), 2);
    // Deleting the connection takes the link off the client's cards.
    assert_eq!(
        app.delete(admin, &format!("/v1/ehr-connections/{connection_id}"))
            .await
            .status(),
        204
    );
    let cards = cds
        .call(
            "rapport-alliance",
            &crate::cds::patient_view("p-launch", "Practitioner/dr-1"),
        )
        .await;
    assert!(
        cards[0]
            .get("links")
            .is_none_or(|l| l.as_array().is_some_and(Vec::is_empty)),
        "{}",
        cards[0]
    );
}
