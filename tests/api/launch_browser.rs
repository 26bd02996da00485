//! The EHR launch end to end in a real browser against a real authorization server: the
//! EHR's chart page (served beside `oidc-provider`, npm, by `scripts/ehr-peer.mjs`) frames
//! rapport's launch URL; rapport reads the EHR's smart-configuration, sends the frame to the
//! provider's authorization endpoint with PKCE, exchanges the code with an ES384 client
//! assertion the provider verifies against rapport's published key, checks the provider's
//! RS256 id_token, and the console opens in the frame on the patient's page with the user's
//! name. Skipped (saying why) without Chromium, Node or the provider package, unless
//! `RAPPORT_REQUIRE_BROWSER=1` (as CI sets). The screenshot goes to
//! `$CARGO_TARGET_TMPDIR/launch/launched.png`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::builders::{phq9_answers, wai_sr_answers};
use crate::console::{browser, driver, find, screenshot, severe_logs, tempdir};
use crate::helpers::{TestApp, free_port};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where CI installs oidc-provider (and scripts/identity-peers.sh looks for it).
fn node_dir() -> PathBuf {
    Path::new(&std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())).join("rapport-oidc")
}

fn skip_or_fail(why: &str) -> bool {
    if std::env::var("RAPPORT_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("RAPPORT_REQUIRE_BROWSER=1 but {why}");
    }
    eprintln!("SKIPPED the EHR launch browser test: {why}");
    true
}

#[tokio::test]
async fn an_ehr_frames_the_launch_and_the_console_opens_on_the_patient() {
    let driver = match driver().await {
        Ok(d) => d,
        Err(why) => {
            skip_or_fail(&why);
            return;
        }
    };
    let node_dir = node_dir();
    if !node_dir.join("node_modules/oidc-provider").is_dir() {
        skip_or_fail(&format!(
            "oidc-provider is not installed in {} (npm install oidc-provider@9)",
            node_dir.display()
        ));
        return;
    }
    // rapport on a port known in advance, so that its public URL (localhost: a secure
    // context, where Chromium keeps `Secure` cookies over http) can be configured.
    let port = free_port();
    let app = TestApp::spawn_with(|s| {
        s.bind = format!("127.0.0.1:{port}");
        s.public_url = Some(format!("http://localhost:{port}"));
        s.webhook_allow_private = true;
    })
    .await;
    let rapport = format!("http://localhost:{port}");
    let admin = app.admin_token().await;
    for (day, total) in [(1, 50), (8, 50), (15, 50), (22, 14)] {
        let body = json!({"instrument": "wai-sr", "patient": "p-ehr", "clinician": "dr-hopper",
            "administered_at": format!("2026-11-{day:02}T10:00:00Z"), "answers": wai_sr_answers(total)});
        assert_eq!(app.post_json(&admin, "/v1/responses", body).await.status(), 201);
    }
    let flagged = json!({"instrument": "phq-9", "patient": "p-ehr", "administered_at": "2026-11-22T10:30:00Z",
        "answers": phq9_answers(12, 1)});
    assert_eq!(app.post_json(&admin, "/v1/responses", flagged).await.status(), 201);
    let other = json!({"instrument": "wai-sr", "patient": "p-not-launched", "administered_at": "2026-11-22T10:30:00Z",
        "answers": wai_sr_answers(20)});
    assert_eq!(app.post_json(&admin, "/v1/responses", other).await.status(), 201);
    let alerts = crate::alerts::wait_for(&app, &admin, "patient=p-ehr", |items| items.len() >= 2).await;
    let flag = alerts
        .iter()
        .find(|a| a["kind"] == "item_flag")
        .expect("an item_flag alert");
    let flag_id = flag["id"].as_str().unwrap().to_string();

    let ehr_port = free_port();
    let ehr = format!("http://localhost:{ehr_port}");
    let connection = app
        .post_json(
            &admin,
            "/v1/ehr-connections",
            json!({"issuer": format!("{ehr}/fhir"), "client_id": "rapport", "client_auth": "private_key_jwt",
                "frame_origins": [ehr]}),
        )
        .await;
    assert_eq!(connection.status(), 201);
    let connection: Value = connection.json().await.unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ehr-peer.mjs"),
        node_dir.join("ehr-peer.mjs"),
    )
    .unwrap();
    let config = json!({"port": ehr_port, "clientId": "rapport", "jwksUri": connection["jwks_url"],
        "redirectUri": format!("{rapport}/launch/callback"), "launchUrl": format!("{rapport}/launch"),
        "patient": "p-ehr",
        "appContext": json!({"patient": "p-ehr", "instrument": "phq-9", "alert": flag_id}).to_string()});
    let log = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("ehr-peer.log")).unwrap();
    let _peer = Peer(
        Command::new("node")
            .arg("ehr-peer.mjs")
            .arg(config.to_string())
            .current_dir(&node_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("node runs"),
    );
    let started = Instant::now();
    while reqwest::get(format!("{ehr}/fhir/.well-known/smart-configuration"))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the EHR peer did not start (see ehr-peer.log)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("launch");
    std::fs::create_dir_all(&out).unwrap();
    let client = browser(&driver, &tempdir(&out)).await;
    client.goto(&format!("{ehr}/ehr")).await.unwrap();
    let frame = find(&client, "iframe#app").await;
    frame.enter_frame().await.unwrap();
    // The console, in the EHR's frame, on the launched patient, with the user's name.
    let user = find(&client, "#launch-user").await;
    let says = user.text().await.unwrap();
    assert!(says.contains("Dr Grace Hopper"), "{says}");
    let heading = find(&client, "#page h2").await.text().await.unwrap();
    assert_eq!(heading, "Patient p-ehr");
    // Opened on the card's alert (the safety flag), with the chart of its instrument.
    let focused = find(&client, "#focused-alert").await;
    assert_eq!(
        focused.attr("data-alert").await.unwrap().as_deref(),
        Some(flag_id.as_str())
    );
    find(&client, "#trend-chart").await;
    client.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    client.enter_parent_frame().await.unwrap();
    client.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    screenshot(&client, &out, "launched").await;
    let frame = find(&client, "iframe#app").await;
    frame.enter_frame().await.unwrap();
    let rows = client.find_all(Locator::Css("tr[data-alert]")).await.unwrap();
    assert_eq!(rows.len(), 2, "the launched patient's two open alerts, nobody else's");
    assert_eq!(
        rows[0].attr("data-alert").await.unwrap().as_deref(),
        Some(flag_id.as_str()),
        "the safety flag first"
    );
    // No navigation to organisation pages, no sign-in form: the launched view only.
    for hidden in ["#nav", "#sign-in"] {
        let element = client.find(Locator::Css(hidden)).await.unwrap();
        assert!(!element.is_displayed().await.unwrap(), "{hidden} is shown");
    }
    // Acknowledging from the EHR is audited under the EHR user.
    find(&client, &format!("form[data-alert='{flag_id}'] button[type=submit]"))
        .await
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let alert = app.get_json(&admin, &format!("/v1/alerts/{flag_id}")).await;
        if alert["status"] == "acknowledged" {
            let id = connection["id"].as_str().unwrap();
            assert_eq!(alert["acknowledged_by"], format!("ehr:{id}:Practitioner/dr-hopper"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the alert was not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let severe = severe_logs(&driver, &client).await;
    assert!(severe.is_empty(), "browser errors: {severe:?}");
    client.close().await.unwrap();
}
