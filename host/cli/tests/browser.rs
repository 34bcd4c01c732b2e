//! `connect` as a person meets it: a real headless Chromium, driven through
//! chromedriver (the W3C WebDriver protocol over loopback HTTP), opens the
//! URL the command prints, goes through the mock Pleo server's consent
//! page, approves or denies, and lands on the command's loopback listener.
//! The test checks what the browser shows at the end, and what the command
//! prints and returns.
//!
//! Chromium and chromedriver come from Debian (`chromium`,
//! `chromium-driver`; `.ci/run` installs them). Without them the test says
//! so loudly and skips, except under `CI=true`, where a skip is a failure.

mod common;

use std::io::BufReader;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pleo_oauth::imports::clock::OffsetClock;
use pleo_oauth::mock::{Consent, MockConfig, MockServer};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pleo-oauth");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SECRET: &str = "browser-client-secret-0123456789";

/// Whether the browser is here; under `CI=true` it must be.
fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: Chromium and chromedriver are required ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them"
        );
        eprintln!(
            "\n!!! SKIPPED: the real-browser test needs {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver) !!!\n"
        );
    }
    present
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Self {
        let port = common::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        // The flags a closed network needs (no background connections).
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "POST" => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        }
        .expect("webdriver");
        let text = response.body_mut().read_to_string().expect("a body");
        let value: Value = serde_json::from_str(&text).expect("json");
        value["value"].clone()
    }

    fn session(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn open(&self, url: &str) {
        self.call("POST", &self.session("/url"), json!({ "url": url }));
    }

    fn click(&self, css: &str) {
        let element = self.call(
            "POST",
            &self.session("/element"),
            json!({"using": "css selector", "value": css}),
        );
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {element}"))
            .to_owned();
        self.call(
            "POST",
            &self.session(&format!("/element/{id}/click")),
            json!({}),
        );
    }

    /// The page's source once it contains `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let source = self.call("GET", &self.session("/source"), Value::Null);
            let source = source.as_str().unwrap_or_default().to_owned();
            if source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "never showed {text:?}:\n{source}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.session(""), Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs `pleo-oauth connect` against a mock with a consent page, lets the
/// browser press `button`, and returns what the browser showed last, the
/// command's exit code and its output.
fn connect_in_the_browser(button: &str, expect_page: &str) -> (String, Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let redirect = format!("http://127.0.0.1:{}/callback", common::free_port());
    let mut config = MockConfig::new(Arc::new(OffsetClock::new(0)));
    config.client_id = "browser-client".into();
    config.client_secret = Some(SECRET.into());
    config.redirect_uris = vec![redirect.clone()];
    config.consent = Consent::Page;
    let mock = MockServer::start(config).unwrap();
    let base = mock.base_url();
    let mut child = Command::new(BIN)
        .args([
            "connect",
            "c1",
            "--issuer",
            &base,
            "--client-id",
            "browser-client",
            "--redirect-uri",
            &redirect,
            "--scope",
            "users:read",
            "--timeout",
            "60",
        ])
        .env("PLEO_OAUTH_DB", dir.path().join("db"))
        .env("PLEO_OAUTH_KEY_FILE", dir.path().join("key"))
        .env("PLEO_OAUTH_CLIENT_SECRET", SECRET)
        .env("PLEO_OAUTH_SECRET_ORIGINS", &base)
        .env(
            "PLEO_OAUTH_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let url = common::authorization_url(&mut stdout, &mut printed);
    let browser = Browser::start();
    browser.open(&url);
    browser.wait_for("Approve");
    browser.click(&format!("button[value={button}]"));
    let page = browser.wait_for(expect_page);
    let output = child.wait_with_output().unwrap();
    std::io::Read::read_to_string(&mut stdout, &mut printed).unwrap();
    let all = format!("{printed}{}", String::from_utf8_lossy(&output.stderr));
    for secret in mock.control().issued_secrets() {
        if !url.contains(&secret) {
            assert!(!all.contains(&secret), "a secret in the output:\n{all}");
        }
    }
    (page, output.status.code(), all)
}

#[test]
fn a_person_approves_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let (page, code, output) = connect_in_the_browser("approve", "Connected to Pleo");
    assert!(page.contains("You can close this window"), "{page}");
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("connected c1: scopes users:read"),
        "{output}"
    );
}

#[test]
fn a_person_denies_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let (page, code, output) = connect_in_the_browser("deny", "Access was not granted");
    assert!(page.contains("Nothing was stored"), "{page}");
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("Pleo did not grant access (access_denied)"),
        "{output}"
    );
}
