//! End to end: the `pleo-oauth` binary and the library over real loopback
//! HTTP against the mock Pleo server, with SQLite on disk. Processes see
//! the future through `PLEO_OAUTH_CLOCK_OFFSET_MS` instead of sleeping.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pleo_oauth::RuntimeConfig;
use pleo_oauth::app::{API_BASE_SETTING, App, AppConfig};
use pleo_oauth::authorize::BeginOptions;
use pleo_oauth::connections::{ClientType, ConnectionConfig, CustomEndpoints, Environment, State};
use pleo_oauth::imports::clock::OffsetClock;
use pleo_oauth::imports::http::{ClientAuthMethod, ClientSecrets, HttpLimits};
use pleo_oauth::imports::storage::{SqliteStorage, Storage};
use pleo_oauth::mock::{Consent, Fault, MockConfig, MockServer};
use pleo_oauth::secret::Secret;

const BIN: &str = env!("CARGO_BIN_EXE_pleo-oauth");
const SECRET: &str = "e2e-client-secret-0123456789";
const HOURS_2: i64 = 2 * 3_600_000;

struct Setup {
    mock: MockServer,
    dir: tempfile::TempDir,
    redirect: String,
}

impl Setup {
    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let mut config = MockConfig::new(Arc::new(OffsetClock::new(0)));
        config.client_id = "e2e-client".into();
        config.client_secret = Some(SECRET.into());
        config.redirect_uris = vec![redirect.clone()];
        config.consent = Consent::Auto;
        Self {
            mock: MockServer::start(config).unwrap(),
            dir: tempfile::tempdir().unwrap(),
            redirect,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("pleo-oauth.db")
    }

    /// `pleo-oauth` with this database, the secret in the environment, a
    /// shared compiled-code cache, and the clock moved by `offset_ms`.
    fn command(&self, offset_ms: i64, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("PLEO_OAUTH_DB", self.db())
            .env("PLEO_OAUTH_CLIENT_SECRET", SECRET)
            .env("PLEO_OAUTH_CLOCK_OFFSET_MS", offset_ms.to_string())
            .env("PLEO_OAUTH_CACHE_DIR", cache_dir())
            .env("PLEO_OAUTH_LOG", "debug");
        command
    }

    fn run(&self, offset_ms: i64, args: &[&str]) -> Output {
        self.command(offset_ms, args).output().unwrap()
    }

    /// Connects `c1` in-process, through the library, into the database.
    fn connect_in_process(&self) {
        let app = App::open(AppConfig {
            db: self.db(),
            secrets: ClientSecrets::any(ClientAuthMethod::Basic, Secret::new(SECRET)),
            http: HttpLimits::default(),
            clock: Arc::new(OffsetClock::new(0)),
            runtime: RuntimeConfig {
                cache_dir: Some(cache_dir()),
                ..RuntimeConfig::default()
            },
        })
        .unwrap();
        let mut instance = app.instance().unwrap();
        instance.configure("c1", &self.config()).unwrap().unwrap();
        let authorization = instance
            .begin("c1", &BeginOptions::default())
            .unwrap()
            .unwrap();
        let callback = follow(authorization.url.expose());
        instance.complete(&callback, Some("c1")).unwrap().unwrap();
    }

    fn config(&self) -> ConnectionConfig {
        let base = self.mock.base_url();
        ConnectionConfig {
            environment: Environment::Custom(CustomEndpoints {
                authorize_url: format!("{base}/oauth/authorize"),
                token_url: format!("{base}/oauth/token"),
            }),
            client_id: "e2e-client".into(),
            client_type: ClientType::Confidential,
            redirect_uri: self.redirect.clone(),
            scopes: vec!["users:read".into()],
            issuer: Some(self.mock.issuer()),
            require_iss: true,
            settings: vec![(API_BASE_SETTING.into(), base)],
            revocation_url: None,
            refresh_margin_seconds: None,
            max_backoff_seconds: None,
            stall_after_seconds: None,
        }
    }

    /// No output of any process may hold a token, code or secret the mock
    /// issued, or the client secret.
    fn assert_no_secrets(&self, outputs: &[&str]) {
        let mut secrets = self.mock.control().issued_secrets();
        secrets.push(SECRET.into());
        for output in outputs {
            for secret in &secrets {
                assert!(
                    !output.contains(secret.as_str()),
                    "a secret leaked into:\n{output}"
                );
            }
        }
    }
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// The browser: follows an authorisation URL to the mock (which consents
/// at once) and returns where it redirects.
fn follow(url: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let response = agent.get(url).call().unwrap();
    assert_eq!(response.status().as_u16(), 302);
    response.headers()["location"].to_str().unwrap().to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The README's main command, in-process: the whole lifecycle, its states,
/// and no secret in anything it printed or logged.
#[test]
fn demo_runs_the_whole_lifecycle() {
    let mut out = Vec::new();
    let report = pleo_oauth::demo::run(&mut out).unwrap();
    let out = text(&out);
    assert_eq!(
        report.states,
        [
            State::New,
            State::Connected,
            State::Connected,
            State::Connected,
            State::Degraded,
            State::Connected,
            State::ReauthRequired,
            State::ReauthRequired,
            State::Connected
        ],
        "{out}"
    );
    for kind in [
        "connected",
        "refresh-succeeded",
        "tokens-rotated",
        "refresh-failed",
        "revocation-detected",
        "reauth-required",
        "reauth-started",
        "reauth-completed",
    ] {
        assert!(
            report.events.iter().any(|e| e == kind),
            "{kind} missing: {:?}",
            report.events
        );
    }
    assert_eq!(report.mock.reuse_detections, 0);
    assert_eq!(report.mock.code_exchanges, 2);
    assert_eq!(report.mock.refreshes, 2);
    for secret in &report.secrets {
        assert!(!out.contains(secret.as_str()));
        assert!(
            report
                .log_lines
                .iter()
                .all(|l| !l.contains(secret.as_str()))
        );
    }
}

/// The binary's demo exits 0 and reads as a timeline.
#[test]
fn demo_command_exits_zero() {
    let output = Command::new(BIN)
        .arg("demo")
        .env("PLEO_OAUTH_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("recovered: reconnected"), "{stdout}");
    assert!(stdout.contains("0 reuse detections"), "{stdout}");
}

/// `connect` with a loopback redirect URI: it prints the URL, listens for
/// the callback, and stores the connection; then `token`, `call` and
/// `status` work, a revoked grant is detected (exit 3 with the fixing
/// command), and nothing secret reaches the logs.
#[test]
fn connect_token_call_status_and_revocation_from_the_command_line() {
    let setup = Setup::new();
    let base = setup.mock.base_url();
    let mut child = setup
        .command(
            0,
            &[
                "connect",
                "c1",
                "--issuer",
                &base,
                "--client-id",
                "e2e-client",
                "--redirect-uri",
                &setup.redirect,
                "--scope",
                "users:read",
                "--api-base",
                &base,
                "--timeout",
                "60",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no URL in:\n{seen}"
        );
        if let Some(url) = line.trim().strip_prefix("http") {
            break format!("http{url}");
        }
        seen.push_str(&line);
    };
    let callback = follow(&url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The listener starts right after the URL is printed.
        match agent.get(&callback).call() {
            Ok(response) => {
                assert_eq!(response.status().as_u16(), 200);
                break;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("the callback listener never answered: {error}"),
        }
    }
    let output = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(output.status.success(), "{seen}{rest}");
    assert!(text(&output.stdout).contains("connected c1"));

    let token = setup.run(0, &["token", "c1"]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token_value = text(&token.stdout).trim().to_owned();
    assert!(setup.mock.control().issued_secrets().contains(&token_value));

    let call = setup.run(0, &["call", "c1", "GET", "/v2/users"]);
    assert!(call.status.success(), "{}", text(&call.stderr));
    assert!(text(&call.stdout).contains("data"));

    let status = setup.run(0, &["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["connection"], "c1");
    assert_eq!(rows[0]["state"], "connected");
    let table = setup.run(0, &["status"]);
    assert!(text(&table.stdout).contains("c1"));

    setup.mock.control().revoke_grants();
    let revoked = setup.run(0, &["call", "c1", "GET", "/v2/users"]);
    assert_eq!(revoked.status.code(), Some(3), "{}", text(&revoked.stderr));
    let refused = setup.run(0, &["token", "c1"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        text(&refused.stderr).contains("pleo-oauth connect c1"),
        "{}",
        text(&refused.stderr)
    );

    assert_eq!(setup.run(0, &["token", "nope"]).status.code(), Some(6));
    assert!(setup.run(0, &["disconnect", "c1"]).status.success());
    assert!(setup.run(0, &["forget", "c1"]).status.success());
    assert_eq!(setup.run(0, &["token", "c1"]).status.code(), Some(6));

    let logs = [
        seen,
        rest,
        text(&output.stdout),
        text(&token.stderr),
        text(&call.stdout),
        text(&call.stderr),
        text(&status.stdout),
        text(&table.stdout),
        text(&revoked.stdout),
        text(&revoked.stderr),
        text(&refused.stderr),
    ];
    setup.assert_no_secrets(&logs.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Two processes share one SQLite file and ask for a token of a connection
/// at expiry, ten times each: exactly one refresh reaches the mock, reuse
/// detection never trips, and every token printed is the rotated one.
#[test]
fn two_processes_share_one_database_and_refresh_once() {
    let setup = Setup::new();
    setup.connect_in_process();
    // The refresh takes a moment, so the other process meets the lease.
    setup.mock.control().inject(Fault::TokenDelay(300), 1);
    let runs: Vec<Vec<Output>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let setup = &setup;
                scope.spawn(move || {
                    let format = if worker == 0 { "json" } else { "text" };
                    (0..10)
                        .map(|_| setup.run(HOURS_2, &["--log-format", format, "token", "c1"]))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let stats = setup.mock.control().stats();
    assert_eq!(stats.refresh_attempts, 1, "{stats:?}");
    assert_eq!(stats.refreshes, 1);
    assert_eq!(stats.reuse_detections, 0);
    let mut tokens = std::collections::BTreeSet::new();
    let mut logs = Vec::new();
    for output in runs.iter().flatten() {
        match output.status.code() {
            Some(0) => {
                tokens.insert(text(&output.stdout).trim().to_owned());
            }
            Some(4) => assert!(text(&output.stderr).contains("another process is refreshing")),
            other => panic!("exit {other:?}: {}", text(&output.stderr)),
        }
        logs.push(text(&output.stderr));
    }
    assert_eq!(tokens.len(), 1, "one rotated token: {tokens:?}");
    // The JSON log lines parse and carry the event kind.
    let json_lines: Vec<serde_json::Value> = runs[0]
        .iter()
        .flat_map(|o| {
            text(&o.stderr)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!json_lines.is_empty());
    assert!(
        json_lines
            .iter()
            .all(|e: &serde_json::Value| e.get("level").is_some())
    );
    let refreshes_logged = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("refresh-succeeded"))
        .count();
    assert_eq!(refreshes_logged, 1, "one refresh logged");
    setup.assert_no_secrets(&logs.iter().map(String::as_str).collect::<Vec<_>>());
}

/// A process killed in the middle of a refresh holds the lease: the next
/// caller is told to wait; once the lease lapses (its 65 s plus the 30 s
/// skew allowance, by the clock) the next caller refreshes and gets a token.
#[test]
fn a_killed_refresher_blocks_only_until_its_lease_lapses() {
    let setup = Setup::new();
    setup.connect_in_process();
    setup.mock.control().inject(Fault::TokenDelay(60_000), 1);
    let mut stuck = setup
        .command(HOURS_2, &["token", "c1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let storage = SqliteStorage::open(&setup.db()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Killed only once its refresh request is being held at the mock, so
    // the delay fault is spent and the lease is in storage.
    while storage.get("lease/c1").unwrap().is_none()
        || setup.mock.control().stats().faults_served == 0
    {
        assert!(
            Instant::now() < deadline,
            "the refresher never reached the mock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stuck.kill().unwrap();
    stuck.wait().unwrap();

    let blocked = setup.run(HOURS_2, &["token", "c1"]);
    assert_eq!(blocked.status.code(), Some(4), "{}", text(&blocked.stderr));
    assert!(text(&blocked.stderr).contains("another process is refreshing"));

    let still = setup.run(HOURS_2 + 61_000, &["token", "c1"]);
    assert_eq!(still.status.code(), Some(4), "{}", text(&still.stderr));
    let later = setup.run(HOURS_2 + 96_000, &["token", "c1"]);
    assert!(later.status.success(), "{}", text(&later.stderr));
    let status = setup.run(HOURS_2 + 96_000, &["status", "c1", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["state"], "connected");
    assert_eq!(setup.mock.control().stats().reuse_detections, 0);
    setup.assert_no_secrets(&[&text(&blocked.stderr), &text(&later.stderr)]);
}

fn status_json(setup: &Setup, offset_ms: i64) -> serde_json::Value {
    let status = setup.run(offset_ms, &["status", "c1", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    rows[0].clone()
}

/// Single flight across processes whose clocks differ (100 ms, 2 s and the
/// 30 s bound): eight `token` processes at expiry on one SQLite file, half
/// with their clock ahead. A lease written by the clock ahead is honoured by
/// the others, so exactly one refresh per expiry, and no reuse.
#[test]
fn skewed_workers_on_one_sqlite_file_refresh_once_per_expiry() {
    let setup = Setup::new();
    setup.connect_in_process();
    for (round, skew) in [100, 2_000, 30_000].into_iter().enumerate() {
        let base = HOURS_2 * (round as i64 + 1);
        let before = setup.mock.control().stats();
        let children: Vec<_> = (0..8)
            .map(|i| {
                let offset = if i % 2 == 0 { base } else { base + skew };
                setup
                    .command(offset, &["token", "c1"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for output in &outputs {
            let code = output.status.code();
            assert!(
                code == Some(0) || code == Some(4),
                "skew {skew}: {code:?} {}",
                text(&output.stderr)
            );
        }
        let after = setup.mock.control().stats();
        assert_eq!(after.refreshes - before.refreshes, 1, "skew {skew}");
        assert_eq!(after.reuse_detections, 0, "skew {skew}");
        let printed: std::collections::BTreeSet<String> = outputs
            .iter()
            .filter(|o| o.status.success())
            .map(|o| text(&o.stdout).trim().to_owned())
            .collect();
        assert_eq!(printed.len(), 1, "skew {skew}: one token for everyone");
        let row = status_json(&setup, base + skew);
        assert_eq!(row["state"], "connected", "skew {skew}");
    }
}

/// The server rotated, and the answer was lost: a proxy's 504, or a
/// connection that broke after the request went out. The next refresh
/// presents the rotated-away token, the strict server revokes the grant,
/// and the command line says what happened (a lost rotation, with the
/// earlier cause), not that the user revoked access.
#[test]
fn a_rotation_lost_to_a_504_or_a_reset_is_reported_as_such() {
    for (fault, cause) in [
        (Fault::TokenRotateThenGatewayTimeout, "status 504"),
        (Fault::TokenRotateThenDrop, "connection lost after sending"),
    ] {
        let setup = Setup::new();
        setup.connect_in_process();
        setup.mock.control().inject(fault, 1);
        let first = setup.run(HOURS_2, &["token", "c1"]);
        assert_eq!(first.status.code(), Some(4), "{}", text(&first.stderr));
        assert!(text(&first.stderr).contains("refreshes are failing"));
        let row = status_json(&setup, HOURS_2);
        assert_eq!(row["state"], "degraded");
        assert_eq!(row["last-error"], cause);
        assert!(row["refresh-outcome-unknown-since-ms"].is_u64(), "{row}");

        let later = HOURS_2 + 400_000;
        let second = setup.run(later, &["token", "c1"]);
        assert_eq!(second.status.code(), Some(3), "{}", text(&second.stderr));
        assert!(
            text(&second.stderr).contains("whose answer was lost"),
            "{}",
            text(&second.stderr)
        );
        let row = status_json(&setup, later);
        assert_eq!(row["reason"], "rotation-lost");
        assert_eq!(
            row["last-error"],
            format!("rotation lost after: {cause}").as_str()
        );
        assert!(
            row["next-action"]
                .as_str()
                .unwrap()
                .contains("not by anything you did")
        );
        setup.assert_no_secrets(&[&text(&first.stderr), &text(&second.stderr)]);
    }
}

/// The API refuses a token the authorisation server has just issued: the
/// grant is alive (the refresh proved it), so the tokens are kept and the
/// command says what happened; the next call works.
#[test]
fn a_spurious_second_401_keeps_the_grant() {
    let setup = Setup::new();
    setup.connect_in_process();
    setup.mock.control().inject(Fault::ApiUnauthorized, 2);
    let call = setup.run(0, &["call", "c1", "GET", "/v2/users"]);
    assert_eq!(call.status.code(), Some(7), "{}", text(&call.stderr));
    assert!(text(&call.stderr).contains("refused a token Pleo had just issued"));
    assert_eq!(setup.mock.control().stats().refreshes, 1, "one refresh");
    let row = status_json(&setup, 0);
    assert_eq!(row["state"], "connected");
    assert_eq!(row["fresh-token-rejections"], 1);
    let again = setup.run(0, &["call", "c1", "GET", "/v2/users"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(setup.mock.control().stats().reuse_detections, 0);
}

/// No client secret for a confidential client: found before anything is
/// sent, by `token` (exit 5, naming the variable) and by `connect` (before
/// the browser opens).
#[test]
fn a_missing_secret_is_found_before_anything_is_sent() {
    let setup = Setup::new();
    setup.connect_in_process();
    let token = setup
        .command(HOURS_2, &["token", "c1"])
        .env_remove("PLEO_OAUTH_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(token.status.code(), Some(5), "{}", text(&token.stderr));
    assert!(text(&token.stderr).contains("PLEO_OAUTH_CLIENT_SECRET"));
    assert!(text(&token.stderr).contains("nothing was sent"));
    assert_eq!(setup.mock.control().stats().refresh_attempts, 0);
    let row = status_json(&setup, HOURS_2);
    assert_eq!(row["state"], "client-error");
    assert_eq!(row["next-retry-at-ms"], serde_json::Value::Null);

    let issuer = setup.mock.issuer();
    let connect = setup
        .command(
            0,
            &[
                "connect",
                "c2",
                "--issuer",
                &issuer,
                "--client-id",
                "e2e-client",
                "--redirect-uri",
                &setup.redirect,
                "--scope",
                "users:read",
                "--timeout",
                "5",
            ],
        )
        .env_remove("PLEO_OAUTH_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(connect.status.code(), Some(5), "{}", text(&connect.stderr));
    assert!(text(&connect.stderr).contains("PLEO_OAUTH_CLIENT_SECRET"));
    assert!(!text(&connect.stderr).contains("Open this URL"));

    // With the secret back, the very next call refreshes: no back-off.
    let fixed = setup.run(HOURS_2, &["token", "c1"]);
    assert!(fixed.status.success(), "{}", text(&fixed.stderr));
}

/// After the operator fixes a rotated client secret, `retry-now` refreshes
/// at once instead of waiting out the back-off; every refusal says until
/// when.
#[test]
fn a_fixed_secret_is_retried_at_once() {
    let setup = Setup::new();
    setup.connect_in_process();
    setup
        .mock
        .control()
        .rotate_client_secret("rotated-secret-9876543210");
    let refused = setup.run(HOURS_2, &["token", "c1"]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(stderr.contains("retry-now c1"), "{stderr}");
    assert!(stderr.contains(" s)"), "says until when: {stderr}");
    let fixed = |args: &[&str]| {
        setup
            .command(HOURS_2 + 1_000, args)
            .env("PLEO_OAUTH_CLIENT_SECRET", "rotated-secret-9876543210")
            .output()
            .unwrap()
    };
    let still = fixed(&["token", "c1"]);
    assert_eq!(still.status.code(), Some(5), "backing off");
    let retried = fixed(&["retry-now", "c1"]);
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    assert_eq!(status_json(&setup, HOURS_2 + 1_000)["state"], "connected");
}

/// The rotated tokens' write meets a locked database for 25 s (real time):
/// the write is retried until the lock goes, within the lease, and nothing
/// is lost: the next process gets the same new token without a refresh.
#[test]
fn rotated_tokens_survive_a_database_locked_for_25_seconds() {
    let setup = Setup::new();
    setup.connect_in_process();
    setup.mock.control().inject(Fault::TokenDelay(1_000), 1);
    let refresher = setup
        .command(HOURS_2, &["token", "c1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.mock.control().stats().faults_served == 0 {
        assert!(Instant::now() < deadline, "the refresher never came");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The request is at the server: lock the database against writers.
    let locker = rusqlite::Connection::open(setup.db()).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(Duration::from_secs(25));
    locker.execute_batch("COMMIT").unwrap();
    let output = refresher.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("tokens-store-retrying"),
        "the write met the lock: {}",
        text(&output.stderr)
    );
    let token = text(&output.stdout).trim().to_owned();
    assert_eq!(setup.mock.control().stats().refreshes, 1);
    let next = setup.run(HOURS_2, &["token", "c1"]);
    assert_eq!(
        text(&next.stdout).trim(),
        token,
        "the rotated tokens were kept"
    );
    assert_eq!(setup.mock.control().stats().refreshes, 1);
}
