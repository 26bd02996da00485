//! The web console in a real browser: Debian's Chromium driven through chromedriver with
//! fantoccini (WebDriver). Without Chromium the test says it was skipped and why, unless
//! `RAPPORT_REQUIRE_BROWSER=1` (as CI sets), when a missing browser fails it.
//! Screenshots of each page go to `$CARGO_TARGET_TMPDIR/console/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::builders::wai_sr_answers;
use crate::helpers::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, or why there is none.
pub(crate) async fn driver() -> Result<Driver, String> {
    for path in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(path).exists() {
            return Err(format!(
                "{path} is not installed (apt-get install chromium chromium-driver)"
            ));
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver did not start: {e}"))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while reqwest::get(format!("{}/status", driver.url)).await.is_err() {
        if started.elapsed() > Duration::from_secs(15) {
            return Err("chromedriver did not answer within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(driver)
}

pub(crate) async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-quic", "--no-first-run", "--window-size=1280,800",
            format!("--user-data-dir={}", profile.display()),
        ]}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Waits for an element, with a clear failure naming it.
pub(crate) async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
}

pub(crate) async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
}

/// The browser's console entries at SEVERE level (errors, failed requests, CSP reports).
pub(crate) async fn severe_logs(driver: &Driver, client: &Client) -> Vec<Value> {
    let session = client.session_id().await.ok().flatten().expect("a session id");
    let logs: Value = reqwest::Client::new()
        .post(format!("{}/session/{session}/se/log", driver.url))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .expect("the browser log")
        .json()
        .await
        .expect("log json");
    logs["value"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect()
}

async fn wai(app: &TestApp, token: &str, patient: &str, day: u32, total: u32) {
    let body = json!({"instrument": "wai-sr", "patient": patient, "clinician": "dr-console",
        "administered_at": format!("2026-01-{day:02}T10:00:00Z"), "session": day / 7 + 1,
        "answers": wai_sr_answers(total)});
    assert_eq!(app.post_json(token, "/v1/responses", body).await.status(), 201);
}

#[tokio::test]
async fn the_console_signs_in_acknowledges_an_alert_and_shows_the_patient_chart() {
    let driver = match driver().await {
        Ok(d) => d,
        Err(why) if std::env::var("RAPPORT_REQUIRE_BROWSER").as_deref() != Ok("1") => {
            eprintln!("SKIPPED the console browser test: {why}");
            return;
        }
        Err(why) => panic!("RAPPORT_REQUIRE_BROWSER=1 but {why}"),
    };
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (client_id, secret) = app
        .create_client(
            &admin,
            &[
                "responses:read",
                "responses:write",
                "analytics:read",
                "instruments:write",
                "org:admin",
            ],
        )
        .await;
    // A stable history, then a crash: a rupture alert (sd_drop, no norms yet).
    for (day, total) in [(1, 48), (8, 48), (15, 48), (22, 12)] {
        wai(&app, &admin, "p-console", day, total).await;
    }
    let started = Instant::now();
    let alert_id = loop {
        let page = app.get_json(&admin, "/v1/alerts?kind=rupture").await;
        if let Some(id) = page["items"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no rupture alert");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&out).unwrap();
    let profile = tempdir(&out);
    let client = browser(&driver, &profile).await;
    client.goto(&app.url("/console/")).await.unwrap();
    screenshot(&client, &out, "sign-in").await;
    find(&client, "#client-id").await.send_keys(&client_id).await.unwrap();
    find(&client, "#client-secret").await.send_keys(&secret).await.unwrap();
    find(&client, "#sign-in-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();

    // The open alerts list shows the seeded rupture, in words.
    let row = find(&client, &format!("tr[data-alert='{alert_id}']")).await;
    let text = row.text().await.unwrap();
    assert!(text.contains("rupture") && text.contains("p-console"), "{text}");
    assert!(text.contains("fell from 48 to 12"), "{text}");
    // v3: a safety item raised after it is listed first, and says which item and answer.
    let flagged = json!({"instrument": "phq-9", "patient": "p-safety", "administered_at": "2026-01-23T10:00:00Z",
        "answers": crate::builders::phq9_answers(6, 2)});
    assert_eq!(app.post_json(&admin, "/v1/responses", flagged).await.status(), 201);
    let started = Instant::now();
    let flag_id = loop {
        let page = app.get_json(&admin, "/v1/alerts?kind=item_flag").await;
        if let Some(id) = page["items"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no item_flag alert");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client.goto(&app.url("/console/#/patients")).await.unwrap();
    client.goto(&app.url("/console/#/alerts")).await.unwrap();
    find(&client, &format!("tr[data-alert='{flag_id}']")).await;
    let rows = client.find_all(Locator::Css("tr[data-alert]")).await.unwrap();
    assert_eq!(rows.len(), 2);
    let first = rows[0].text().await.unwrap();
    assert!(
        first.contains("item_flag") && first.contains("item 9 answered 2"),
        "{first}"
    );
    screenshot(&client, &out, "alerts").await;
    let ack = app
        .post_json(
            &admin,
            &format!("/v1/alerts/{flag_id}/acknowledge"),
            json!({"note": "called"}),
        )
        .await;
    assert_eq!(ack.status(), 200);
    client
        .goto(&app.url("/console/#/patients/wai-sr/dr-console"))
        .await
        .unwrap();
    let link = find(&client, "tr.patient a").await;
    assert_eq!(link.text().await.unwrap(), "p-console", "my patients, by clinician");
    screenshot(&client, &out, "patients").await;
    client.goto(&app.url("/console/#/alerts")).await.unwrap();
    find(&client, &format!("tr[data-alert='{alert_id}']")).await;
    find(&client, &format!("#note-{alert_id}"))
        .await
        .send_keys("called the patient; booked a review")
        .await
        .unwrap();
    find(&client, &format!("form[data-alert='{alert_id}'] button"))
        .await
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//p[contains(., 'No open alerts')]"))
        .await
        .expect("the list empties after the acknowledgement");
    let alert = app.get_json(&admin, &format!("/v1/alerts/{alert_id}")).await;
    assert_eq!(alert["status"], "acknowledged");
    assert_eq!(alert["note"], "called the patient; booked a review");

    // The patient page: the chart with the seeded number of points, and the points table.
    client
        .goto(&app.url("/console/#/patient/p-console/wai-sr"))
        .await
        .unwrap();
    let chart = find(&client, "img#trend-chart").await;
    let started = Instant::now();
    loop {
        let loaded = client
            .execute("return document.querySelector('#trend-chart').naturalWidth", vec![])
            .await
            .unwrap();
        if loaded.as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the chart never drew");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alt = chart.attr("alt").await.unwrap().unwrap_or_default();
    assert!(alt.contains("4 points"), "{alt}");
    let points = client.find_all(Locator::Css("tr.point")).await.unwrap();
    assert_eq!(points.len(), 4);
    assert!(
        find(&client, "#ruptures")
            .await
            .text()
            .await
            .unwrap()
            .contains("48 → 12")
    );
    assert_eq!(
        find(&client, "#on-track").await.text().await.unwrap(),
        "– (no expectation)",
        "no expected-response model yet"
    );
    screenshot(&client, &out, "patient").await;
    // v3: with the clinic's expected-response model (30 WAI-SR courses), the page says
    // whether the latest point is on track and gives each point its expectation.
    let courses: Vec<Value> = (0..30u32)
        .flat_map(|i| {
            (0..4u32).map(move |t| {
                json!({"instrument": "wai-sr", "patient": format!("p-course-{i}"), "session": t + 1,
                    "administered_at": format!("2026-02-{:02}T10:00:00Z", 1 + t * 7),
                    "answers": wai_sr_answers(30 + (i % 10) + t * 2)})
            })
        })
        .collect();
    let res = app
        .post_json(&admin, "/v1/responses/batch", json!({"responses": courses}))
        .await;
    assert_eq!(res.status(), 200);
    let model = app
        .get_json(&admin, "/v1/instruments/wai-sr/expected-response?refit=true")
        .await;
    assert_eq!(model["status"], "fitted");
    client
        .goto(&app.url("/console/#/patient/p-course-3/wai-sr"))
        .await
        .unwrap();
    find(&client, "img#trend-chart").await;
    let on_track = find(&client, "#on-track").await.text().await.unwrap();
    assert!(on_track == "yes" || on_track == "no", "{on_track}");
    let rows = client.find_all(Locator::Css("tr.point")).await.unwrap();
    let last = rows.last().unwrap().text().await.unwrap();
    assert!(
        last.contains('(') && last.contains(')'),
        "the expected total and its bound: {last}"
    );
    screenshot(&client, &out, "patient-expected").await;
    // The same page on a phone.
    client.set_window_size(390, 844).await.unwrap();
    screenshot(&client, &out, "patient-phone").await;
    client.set_window_size(1280, 800).await.unwrap();

    // The other pages render from the API without errors.
    for (page, wait_for) in [
        ("#/clinicians/wai-sr", "table"),
        ("#/instruments", "table"),
        ("#/webhooks", "table"),
        ("#/audit", "table"),
    ] {
        client.goto(&app.url(&format!("/console/{page}"))).await.unwrap();
        find(&client, &format!("#page {wait_for}")).await;
        let name = page.trim_start_matches("#/").split('/').next().unwrap_or("page");
        screenshot(&client, &out, name).await;
        let error = find(&client, "#error").await;
        assert!(
            !error.is_displayed().await.unwrap(),
            "{page}: {}",
            error.text().await.unwrap()
        );
    }
    // A problem from the API is shown in words, with the field named.
    client
        .goto(&app.url("/console/#/clinicians/no-such-instrument"))
        .await
        .unwrap();
    let error = find(&client, "#error:not([hidden])").await;
    assert!(!error.text().await.unwrap().is_empty());

    let severe: Vec<Value> = severe_logs(&driver, &client)
        .await
        .into_iter()
        // The deliberate 404 just above is the one failed request allowed.
        .filter(|e| !e["message"].as_str().unwrap_or("").contains("no-such-instrument"))
        .collect();
    assert!(severe.is_empty(), "console errors or failed requests: {severe:?}");
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}

pub(crate) fn tempdir(under: &Path) -> PathBuf {
    let dir = under.join(format!("profile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_no_inline_script() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.url("/console")).send().await.unwrap();
    assert_eq!(res.status(), 200, "the redirect to /console/ is followed");
    assert!(res.url().path().ends_with("/console/"));
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.starts_with("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    for handler in [" onclick=", " onload=", " onsubmit=", " onerror="] {
        assert!(!html.contains(handler), "no inline handler {handler}");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    for (asset, kind) in [("console.js", "text/javascript"), ("console.css", "text/css")] {
        let res = app
            .http
            .get(app.url(&format!("/console/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with(kind));
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("localStorage") && !body.contains("document.cookie"),
            "{asset} stores no token"
        );
    }
}
