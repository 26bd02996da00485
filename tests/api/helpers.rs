//! The test harness: every test gets a rapport server on 127.0.0.1:0 over a Postgres
//! database of its own, dropped when the test ends. Databases left by crashed runs
//! (their process is gone) are swept on the first spawn.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rapport::config::Settings;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

pub const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";
pub const JWT_SECRET: &str = "test-signing-secret-that-is-long-enough-0123456789";
pub const ADMIN_ID: &str = "test-bootstrap-admin";
pub const ADMIN_SECRET: &str = "test-bootstrap-secret";

/// One argon2 hash per test process for fixture clients (their secret is never presented).
static FIXTURE_HASH: OnceCell<String> = OnceCell::const_new();

pub struct TestApp {
    pub address: String,
    /// The database engine's hold on this test (the Citus tests run one at a time).
    _turn: crate::backend::Turn,
    pub db_name: String,
    pub database_url: String,
    pub http: Client,
    settings: Settings,
    handle: actix_web::dev::ServerHandle,
}

pub fn test_settings(db_name: &str) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        database_url: format!("{}/{db_name}", crate::backend::server_url()),
        pool_size: 4,
        jwt_secret: Some(JWT_SECRET.into()),
        bootstrap_client_id: Some(ADMIN_ID.into()),
        bootstrap_client_secret: Some(ADMIN_SECRET.into()),
        workers: Some(2),
        // Load-shaped tests send thousands of requests a minute from one client; the rate
        // limit's own tests set a small limit.
        rate_limit_per_minute: 1_000_000,
        ..Settings::default()
    }
}

pub fn unique_db_name() -> String {
    format!(
        "rapport_test_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub async fn admin_conn() -> AsyncPgConnection {
    AsyncPgConnection::establish(&format!("{SERVER_URL}/postgres"))
        .await
        .expect("connect to the postgres database")
}

/// Drops a database on the shared server (tests that make their own).
pub fn drop_database_blocking(name: String) {
    // Drop runs inside the test's runtime: do the async work on a thread of its own.
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async move {
            let mut conn = admin_conn().await;
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        });
    })
    .join();
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let turn = crate::backend::Turn::take();
        let db_name = unique_db_name();
        crate::backend::create_database(&db_name).await;
        let mut settings = test_settings(&db_name);
        crate::backend::adjust(&mut settings);
        adjust(&mut settings);
        let app = rapport::Application::build(settings.clone())
            .await
            .expect("build the application");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        TestApp {
            _turn: turn,
            address,
            database_url: settings.database_url.clone(),
            db_name,
            http,
            settings,
            handle,
        }
    }

    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .expect("connect to the test database")
    }

    /// A token minted with the test signing key, as the token endpoint would issue it;
    /// None when the app runs with a generated key (then only the endpoint can issue).
    async fn mint(
        &self,
        client_id: &rapport::ids::ClientId,
        org: rapport::ids::OrgId,
        scopes: &[rapport::auth::Scope],
    ) -> Option<String> {
        let secret = self.settings.jwt_secret.as_ref()?;
        let keys = rapport::auth::JwtKeys::new(
            secret.as_bytes(),
            &self.settings.jwt_issuer,
            &self.settings.jwt_audience,
        )
        .expect("jwt keys");
        Some(
            keys.issue(client_id, org, scopes, Duration::from_secs(3600))
                .expect("issue"),
        )
    }

    async fn default_org(&self, conn: &mut AsyncPgConnection) -> rapport::ids::OrgId {
        rapport::organizations::store::find_by_slug(conn, "default")
            .await
            .expect("find the default organisation")
            .expect("the default organisation exists")
            .id
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A token for the bootstrap administrator (every scope). Minted directly: the token
    /// endpoint's own tests are in `auth`.
    pub async fn admin_token(&self) -> String {
        if self.settings.bootstrap_client_id.as_deref() == Some(ADMIN_ID) {
            let mut conn = self.db().await;
            let org = self.default_org(&mut conn).await;
            if let Some(token) = self
                .mint(&rapport::ids::ClientId::new(ADMIN_ID), org, &rapport::auth::Scope::ALL)
                .await
            {
                return token;
            }
        }
        self.token_for(ADMIN_ID, ADMIN_SECRET, None).await
    }

    pub async fn token_for(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let res = self
            .http
            .post(self.url("/v1/oauth/token"))
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert_eq!(res.status(), 200, "token grant failed");
        let body: Value = res.json().await.expect("token json");
        body["access_token"].as_str().expect("access_token").to_string()
    }

    /// A client in the bootstrap organisation holding `scopes`, written through the store,
    /// and a token for it (no HTTP round trips, no argon2 per token).
    pub async fn token(&self, scopes: &[&str]) -> String {
        let parsed: Vec<rapport::auth::Scope> = scopes
            .iter()
            .map(|s| rapport::auth::Scope::parse(s).expect("a known scope"))
            .collect();
        if self.settings.jwt_secret.is_none() {
            let admin = self.admin_token().await;
            let (id, secret) = self.create_client(&admin, scopes).await;
            return self.token_for(&id, &secret, None).await;
        }
        let hash = FIXTURE_HASH
            .get_or_init(|| async {
                rapport::auth::secrets::hash_secret("fixture-secret-never-presented").expect("hash")
            })
            .await
            .clone();
        let mut conn = self.db().await;
        let org = self.default_org(&mut conn).await;
        let credentials = rapport::clients::store::PreparedCredentials {
            client_id: rapport::auth::secrets::generate_client_id(),
            credential: rapport::clients::store::Credential::Secret {
                client_secret: String::new(),
                secret_hash: hash,
            },
        };
        let created = rapport::clients::store::create_client(&mut conn, org, "test client", &parsed, credentials)
            .await
            .expect("create the fixture client");
        self.mint(&created.client_id, org, &parsed).await.expect("minted token")
    }

    pub async fn create_client(&self, admin_token: &str, scopes: &[&str]) -> (String, String) {
        let res = self
            .post_json(
                admin_token,
                "/v1/clients",
                json!({"name": "test client", "scopes": scopes}),
            )
            .await;
        assert_eq!(res.status(), 201, "create client");
        let body: Value = res.json().await.expect("client json");
        (
            body["client_id"].as_str().unwrap().to_string(),
            body["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// Creates another organisation; returns (org id, its admin token).
    pub async fn create_org(&self, slug: &str) -> (String, String) {
        let admin = self.admin_token().await;
        let res = self
            .post_json(&admin, "/v1/organizations", json!({"slug": slug, "name": slug}))
            .await;
        assert_eq!(res.status(), 201, "create organisation");
        let body: Value = res.json().await.unwrap();
        let c = &body["admin_client"];
        let token = self
            .token_for(
                c["client_id"].as_str().unwrap(),
                c["client_secret"].as_str().unwrap(),
                None,
            )
            .await;
        (body["id"].as_str().unwrap().to_string(), token)
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// GET and read the JSON body (whatever the status).
    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        self.get(token, path).await.json().await.expect("JSON body")
    }

    /// An unauthenticated GET's body as text (`/metrics`).
    pub async fn public_text(&self, path: &str) -> String {
        let res = self.http.get(self.url(path)).send().await.expect("GET");
        res.text().await.expect("a text body")
    }

    /// An unauthenticated GET's body as JSON (`/openapi.json`).
    pub async fn public_json(&self, path: &str) -> Value {
        let res = self.http.get(self.url(path)).send().await.expect("GET");
        res.json().await.expect("a JSON body")
    }

    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn delete(&self, token: &str, path: &str) -> Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        crate::backend::drop_database_blocking(self.db_name.clone());
    }
}

/// Asserts a problem+json answer with `status`; returns the body.
pub async fn assert_problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "status");
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

/// The real binary, serving on a free loopback port over `database_url`.
pub struct BinaryApp {
    pub child: std::process::Child,
    pub address: String,
    /// Everything printed to stdout before it listened.
    pub printed: String,
}

pub fn start_binary(database_url: &str, env: &[(&str, &str)], stderr: std::process::Stdio) -> BinaryApp {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rapport"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("RAPPORT_BIND", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start rapport");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut printed = String::new();
    let mut address = String::new();
    let started = std::time::Instant::now();
    let mut line = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        printed.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix("rapport: listening on ") {
            address = rest.to_string();
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    BinaryApp {
        child,
        address,
        printed,
    }
}

/// A token for the bootstrap administrator from a running binary's token endpoint.
pub async fn binary_admin_token(http: &Client, address: &str) -> String {
    let answer: Value = http
        .post(format!("{address}/v1/oauth/token"))
        .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST the token endpoint")
        .json()
        .await
        .expect("a token answer");
    answer["access_token"].as_str().expect("an access token").to_string()
}

pub async fn count_rows(conn: &mut AsyncPgConnection, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let c: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result(conn)
        .await
        .expect("count");
    c.n
}

/// The JSON pointers a validation problem names, in order.
pub fn pointers(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["pointer"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One string field of every entry of a list answer's `items`.
pub fn item_strings(page: &Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i[field].as_str().expect("string").to_string())
        .collect()
}

/// A CSV text's rows as header -> cell maps.
pub fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// A port free at the moment of asking (for a server that must know its port in advance).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
