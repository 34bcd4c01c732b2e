//! End to end: the `pleo-oauth` binary and the library over real loopback
//! HTTP against the mock Pleo server, with SQLite on disk. Processes see
//! the future through `PLEO_OAUTH_CLOCK_OFFSET_MS` instead of sleeping.

mod common;

use common::{cache_dir, follow};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pleo_oauth::authorize::{BeginOptions, CompleteError, Rejection, RejectionReason};
use pleo_oauth::connections::{
    ClientType, ConnectionConfig, CustomEndpoints, Environment, Revocation, State,
};
use pleo_oauth::imports::clock::OffsetClock;
use pleo_oauth::imports::http::{ClientAuthMethod, ClientSecrets, HttpLimits};
use pleo_oauth::imports::storage::{SqliteStorage, Storage};
use pleo_oauth::mock::{Consent, Fault, MockConfig, MockServer};
use pleo_oauth::secret::Secret;
use pleo_oauth::{Instance, RuntimeConfig};
use pleo_oauth_cli::app::{API_BASE_SETTING, App, AppConfig};

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
        let port = common::free_port();
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
            .env("PLEO_OAUTH_SECRET_ORIGINS", self.mock.base_url())
            .env("PLEO_OAUTH_KEY_FILE", self.dir.path().join("keys/key"))
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
        let mut instance = self.app().instance().unwrap();
        instance.configure("c1", &self.config()).unwrap().unwrap();
        authorise(&mut instance);
    }

    /// The library over this database, with the client secret.
    fn app(&self) -> App {
        App::open(AppConfig {
            db: self.db().into(),
            namespace: None,
            secrets: {
                let mut secrets = ClientSecrets::new(ClientAuthMethod::Basic);
                secrets
                    .insert(
                        "e2e-client",
                        Secret::new(SECRET),
                        [self.mock.base_url().as_str()],
                    )
                    .unwrap();
                secrets
            },
            operator: None,
            sealing: None,
            log: Default::default(),
            http: HttpLimits::default(),
            clock: Arc::new(OffsetClock::new(0)),
            runtime: RuntimeConfig {
                cache_dir: Some(cache_dir()),
                ..RuntimeConfig::default()
            },
        })
        .unwrap()
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

/// Authorises `c1` through the mock's automatic consent.
fn authorise(instance: &mut Instance) {
    let callback = consent(instance);
    instance.complete(&callback, Some("c1")).unwrap().unwrap();
}

/// Begins an authorisation of `c1` and returns the callback the mock's
/// automatic consent redirects to.
fn consent(instance: &mut Instance) -> String {
    let authorization = instance
        .begin("c1", &BeginOptions::default())
        .unwrap()
        .unwrap();
    follow(authorization.url.expose())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The README's main command, in-process: the whole lifecycle, its states,
/// and no secret in anything it printed or logged.
#[test]
fn demo_runs_the_whole_lifecycle() {
    let mut out = Vec::new();
    let report = pleo_oauth_cli::demo::run(&mut out).unwrap();
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
/// Runs `pleo-oauth connect c1` against the mock and plays the browser:
/// reads the URL it prints, follows it, and calls the loopback callback.
/// `extra` adds options (a log format). Returns the command's stdout and
/// all of its stderr.
fn connect_from_the_command_line(setup: &Setup, extra: &[&str], log: &str) -> (String, String) {
    let base = setup.mock.base_url();
    let revoke = format!("{base}/oauth/revoke");
    let mut args = vec![
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
        "--revocation-url",
        &revoke,
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let mut child = setup
        .command(0, &args)
        .env("PLEO_OAUTH_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    // The prompt (with the URL) comes on stdout, apart from the logs.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let url = common::authorization_url(&mut stdout, &mut printed);
    let callback = follow(&url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The listener is up before the URL is printed.
        match agent.get(&callback).call() {
            Ok(mut response) => {
                assert_eq!(response.status().as_u16(), 200);
                let page = response.body_mut().read_to_string().unwrap();
                assert!(page.contains("Connected to Pleo"), "{page}");
                break;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("the callback listener never answered: {error}"),
        }
    }
    std::io::Read::read_to_string(&mut stdout, &mut printed).unwrap();
    let status = child.wait().unwrap();
    let logs = logs.join().unwrap();
    assert!(status.success(), "{printed}{logs}");
    // The authorisation URL is for the user to open, so it carries the
    // state: everything else printed is scanned for secrets.
    let printed = printed
        .lines()
        .filter(|l| !l.contains("/oauth/authorize?"))
        .collect::<Vec<_>>()
        .join("\n");
    (printed, logs)
}

#[test]
fn connect_token_call_status_and_revocation_from_the_command_line() {
    let setup = Setup::new();
    let (stdout, stderr) = connect_from_the_command_line(&setup, &[], "debug");
    assert!(stdout.contains("connected c1"));

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
        stderr,
        stdout,
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

/// RFC 7009 §2.1: the user disconnects with revocation while a
/// re-authorisation's code exchange waits on a slow answer from the server,
/// which has already issued the new grant. Those tokens reach no record, so
/// `disconnect` revokes only the grant before; the exchange, finding the
/// connection disconnected, revokes its own. No grant the user disconnected
/// stays alive at the server. Two instances over one SQLite file, the mock
/// over loopback.
#[test]
fn a_grant_issued_while_the_user_disconnects_with_revocation_is_revoked() {
    let setup = Setup::new();
    let app = setup.app();
    let config = ConnectionConfig {
        revocation_url: Some(format!("{}/oauth/revoke", setup.mock.base_url())),
        ..setup.config()
    };
    let mut worker = app.instance().unwrap();
    worker.configure("c1", &config).unwrap().unwrap();
    authorise(&mut worker);
    let callback = consent(&mut worker);
    let control = setup.mock.control();
    control.inject(Fault::TokenSlowAnswer(2_000), 1);
    let exchange = std::thread::spawn(move || worker.complete(&callback, Some("c1")).unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while control.stats().code_exchanges < 2 {
        assert!(
            Instant::now() < deadline,
            "the second code exchange never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut user = app.instance().unwrap();
    assert_eq!(
        user.disconnect("c1", true).unwrap().unwrap(),
        Revocation::Revoked
    );
    assert_eq!(control.stats().revocations, 1, "the grant before, only");
    let completed = exchange.join().unwrap();
    assert!(
        matches!(
            &completed,
            Err(CompleteError::Rejected(Rejection {
                reason: RejectionReason::UnknownState,
                ..
            }))
        ),
        "{completed:?}"
    );
    assert_eq!(control.stats().revocations, 2);
    let grants = control.grants();
    assert_eq!(grants.len(), 2);
    assert!(grants.iter().all(|g| !g.active), "{grants:?}");
    assert_eq!(
        user.status("c1").unwrap().unwrap().state,
        State::Disconnected
    );
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
/// 30 s bound): sixteen `token` processes at expiry on one SQLite file, half
/// with their clock ahead. A lease written by the clock ahead is honoured by
/// the others, so exactly one refresh per expiry, and no reuse.
#[test]
fn skewed_workers_on_one_sqlite_file_refresh_once_per_expiry() {
    let setup = Setup::new();
    setup.connect_in_process();
    for (round, skew) in [100, 2_000, 30_000].into_iter().enumerate() {
        let base = HOURS_2 * (round as i64 + 1);
        let before = setup.mock.control().stats();
        let children: Vec<_> = (0..16)
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
            .command(HOURS_2 + 200, args)
            .env("PLEO_OAUTH_CLIENT_SECRET", "rotated-secret-9876543210")
            .output()
            .unwrap()
    };
    let still = fixed(&["token", "c1"]);
    assert_eq!(still.status.code(), Some(5), "backing off");
    let retried = fixed(&["retry-now", "c1"]);
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    assert_eq!(status_json(&setup, HOURS_2 + 200)["state"], "connected");
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

/// Credentials are bound to their origins (RFC 9700 §4.1): a connection
/// whose stored token URL points at another server (another loopback
/// port) gets no client secret. Nothing reaches that server, the command
/// says why (exit 5), and an error-level line names the refused origin.
#[test]
fn a_hostile_token_url_receives_no_secret() {
    let setup = Setup::new();
    setup.connect_in_process();
    let hostile = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hostile.set_nonblocking(true).unwrap();
    let hostile_url = format!("http://127.0.0.1:{}", hostile.local_addr().unwrap().port());
    let mut config = setup.config();
    config.environment = Environment::Custom(CustomEndpoints {
        authorize_url: format!("{hostile_url}/oauth/authorize"),
        token_url: format!("{hostile_url}/oauth/token"),
    });
    let storage = Arc::new(SqliteStorage::open(&setup.db()).unwrap());
    let runtime = pleo_oauth::Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut instance = runtime
        .instance(pleo_oauth::Backends {
            storage,
            ..Default::default()
        })
        .unwrap();
    instance.configure("c1", &config).unwrap().unwrap();

    let token = setup.run(HOURS_2, &["token", "c1"]);
    let stderr = text(&token.stderr);
    assert_eq!(token.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("PLEO_OAUTH_SECRET_ORIGINS"), "{stderr}");
    assert!(
        stderr.contains("ERROR") && stderr.contains(&hostile_url),
        "the refused origin is logged at error level: {stderr}"
    );
    assert!(
        hostile.accept().is_err(),
        "nothing reached the hostile server"
    );
    setup.assert_no_secrets(&[&stderr]);
}

/// Every form in which a secret could hide in a log: as is, percent-encoded
/// (form bodies, query strings), inside base64 (a `Basic` header, which
/// encodes `client:secret` together), and as hex dumped across lines (an
/// HTTP client's trace output splits a request into 16-byte rows). The
/// whole log is decoded each of those ways and searched.
fn decoded_views(log: &str) -> Vec<Vec<u8>> {
    let mut views = vec![
        log.as_bytes().to_vec(),
        percent_decode(log),
        hex_dump_stream(log),
    ];
    // Base64 inside any of them (a `Basic` header inside a hex dump).
    let mut decoded = Vec::new();
    for view in &views {
        decoded.extend(base64_runs(&String::from_utf8_lossy(view)));
    }
    views.extend(decoded);
    let more: Vec<Vec<u8>> = views
        .iter()
        .map(|v| percent_decode(&String::from_utf8_lossy(v)))
        .collect();
    views.extend(more);
    views
}

/// The bytes of every hex dump in the log, rows joined across lines: on
/// each line, the run of hex groups (`504f 5354 ...`, `0a--` padding
/// dropped) before the first word that is not one.
fn hex_dump_stream(log: &str) -> Vec<u8> {
    let mut hex = String::new();
    for line in log.lines() {
        let mut started = false;
        for word in line.split_whitespace() {
            let digits = word.trim_end_matches('-');
            let is_group = (2..=8).contains(&word.len())
                && digits.len() % 2 == 0
                && digits.chars().all(|c| c.is_ascii_hexdigit());
            if is_group {
                hex.push_str(digits);
                started = true;
            } else if started {
                break;
            }
        }
    }
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Every run of base64 characters, decoded with each alphabet and at each
/// alignment (a secret may start mid-run).
fn base64_runs(text: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut out = Vec::new();
    let runs = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-".contains(c)))
        .filter(|run| run.len() >= 12);
    for run in runs {
        let run = run.trim_end_matches('=');
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for skip in 0..4.min(run.len()) {
                let part = &run[skip..];
                let part = &part[..part.len() - part.len() % 4];
                if let Ok(bytes) = engine.decode(part) {
                    out.push(bytes);
                }
            }
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The whole lifecycle at `trace`, in text and in JSON: connect through the
/// loopback listener, refresh with rotation, call the API, revoke, and
/// disconnect with revocation. No token, code, verifier, state or client
/// secret appears in any output in any encoding, because other crates stay
/// at `warn` unless named; and a level that is not a level is an error.
#[test]
fn the_lifecycle_at_trace_leaks_nothing_in_any_encoding() {
    for format in ["text", "json"] {
        let setup = Setup::new();
        let (stdout, stderr) =
            connect_from_the_command_line(&setup, &["--log-format", format], "trace");
        let mut outputs = vec![stdout, stderr];
        let mut run = |offset: i64, args: &[&str]| {
            let output = setup
                .command(offset, args)
                .env("PLEO_OAUTH_LOG", "trace")
                .args(["--log-format", format])
                .output()
                .unwrap();
            outputs.push(text(&output.stderr));
            output
        };
        let token = run(HOURS_2, &["token", "c1"]);
        assert!(token.status.success());
        assert!(
            run(HOURS_2, &["call", "c1", "GET", "/v2/users"])
                .status
                .success()
        );
        setup.mock.control().revoke_grants();
        assert_eq!(
            run(HOURS_2, &["call", "c1", "GET", "/v2/users"])
                .status
                .code(),
            Some(3)
        );
        assert!(
            run(HOURS_2, &["disconnect", "c1", "--revoke"])
                .status
                .success()
        );
        let log = outputs.join("\n");
        assert!(log.contains("DEBUG"), "verbose levels are on: {log}");

        let mut secrets = setup.mock.control().issued_secrets();
        secrets.push(SECRET.into());
        assert!(secrets.len() >= 6, "tokens, code, state, verifier, secret");
        let views = decoded_views(&log);
        for secret in &secrets {
            for view in &views {
                assert!(
                    !contains(view, secret.as_bytes()),
                    "{format}: a secret ({} chars) appears in the logs in some encoding",
                    secret.len()
                );
            }
        }
    }
    let invalid = Command::new(BIN)
        .args(["--log-level", "infoo", "status"])
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    assert!(text(&invalid.stderr).contains("invalid --log-level"));
}

/// Encryption at rest, on by default: after a connect and a rotation no
/// token, code, state, verifier or secret is in the database's bytes, and
/// every file the command line created is 0600. The wrong key is a clear
/// error that destroys nothing; `rekey` moves every record to a new key.
#[test]
fn tokens_rest_sealed_and_the_wrong_key_loses_nothing() {
    let setup = Setup::new();
    connect_from_the_command_line(&setup, &[], "info");
    let first = setup.run(HOURS_2, &["token", "c1"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let token = text(&first.stdout).trim().to_owned();
    let refreshes = setup.mock.control().stats().refreshes;
    assert_eq!(refreshes, 1);

    let mut secrets = setup.mock.control().issued_secrets();
    secrets.push(SECRET.into());
    let mut files = Vec::new();
    let mut pending = vec![setup.dir.path().to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("pleo-oauth.db")));
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for secret in &secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "a secret in {}",
                file.display()
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }

    let (_, other_key) = pleo_oauth::imports::storage::SealingKey::generate();
    let wrong = setup
        .command(HOURS_2, &["token", "c1"])
        .env("PLEO_OAUTH_KEY", &other_key)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong.stderr));
    assert!(
        text(&wrong.stderr).contains("which this host does not hold"),
        "{}",
        text(&wrong.stderr)
    );
    let again = setup.run(HOURS_2, &["token", "c1"]);
    assert_eq!(text(&again.stdout).trim(), token, "nothing was lost");
    assert_eq!(setup.mock.control().stats().refreshes, refreshes);

    let new_key = setup.dir.path().join("keys/new-key");
    let rekey = setup.run(
        HOURS_2,
        &["rekey", "--new-key-file", new_key.to_str().unwrap()],
    );
    assert!(rekey.status.success(), "{}", text(&rekey.stderr));
    assert!(
        text(&rekey.stdout).contains("re-sealed 1 record"),
        "{}",
        text(&rekey.stdout)
    );
    let with_new = setup
        .command(HOURS_2, &["token", "c1"])
        .env("PLEO_OAUTH_KEY_FILE", &new_key)
        .output()
        .unwrap();
    assert_eq!(
        text(&with_new.stdout).trim(),
        token,
        "{}",
        text(&with_new.stderr)
    );
    let with_old = setup.run(HOURS_2, &["token", "c1"]);
    assert_eq!(
        with_old.status.code(),
        Some(1),
        "the old key no longer opens it"
    );
}

/// The command line's error paths tell the right story: bad ids and
/// configurations are usage errors (exit 2) found before anything happens,
/// an unknown id is not "deleted", a body that is not JSON is not sent,
/// a taken port is explained, and a second `connect` on the same callback
/// port refuses without touching the first one's pending authorisation.
#[test]
fn command_line_error_paths_tell_the_right_story() {
    let setup = Setup::new();
    let base = setup.mock.base_url();
    let code = |output: &Output| output.status.code();

    let spaced = setup.run(0, &["token", "has space"]);
    assert_eq!(code(&spaced), Some(2), "{}", text(&spaced.stderr));
    assert!(text(&spaced.stderr).contains("not a connection id"));
    let long = "x".repeat(500);
    assert_eq!(code(&setup.run(0, &["status", &long])), Some(2));
    assert_eq!(code(&setup.run(0, &["token", &long])), Some(2));

    let connect = |extra: &[&str]| {
        let mut args = vec![
            "connect",
            "c9",
            "--issuer",
            &base,
            "--client-id",
            "e2e-client",
        ];
        args.extend_from_slice(extra);
        setup.run(0, &args)
    };
    let scope = connect(&["--redirect-uri", &setup.redirect, "--scope", "users"]);
    assert_eq!(code(&scope), Some(2), "{}", text(&scope.stderr));
    assert!(text(&scope.stderr).contains("resource:permission"));
    let redirect = connect(&[
        "--redirect-uri",
        "http://app.example/cb",
        "--scope",
        "users:read",
    ]);
    assert_eq!(code(&redirect), Some(2), "{}", text(&redirect.stderr));
    let missing = connect(&["--scope", "users:read"]);
    assert_eq!(code(&missing), Some(2), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("--redirect-uri"));
    assert!(!text(&scope.stdout).contains("Open this URL"));

    let forget = setup.run(0, &["forget", "nobody"]);
    assert_eq!(code(&forget), Some(6), "{}", text(&forget.stdout));
    assert!(!text(&forget.stdout).contains("forgot"));

    setup.connect_in_process();
    let body = setup.run(
        0,
        &[
            "call",
            "c1",
            "post",
            "/v2/export-jobs",
            "--data",
            "not json",
        ],
    );
    assert_eq!(code(&body), Some(2), "{}", text(&body.stderr));
    let api_before = setup.mock.control().stats().api_requests;
    assert_eq!(api_before, 0, "nothing was sent");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mock = setup.run(0, &["mock-server", "--port", &port]);
    assert_eq!(code(&mock), Some(1));
    assert!(
        text(&mock.stderr).contains("choose another with --port"),
        "{}",
        text(&mock.stderr)
    );

    // A first `connect` waits on the callback port; a second one for the
    // same connection refuses before replacing its pending authorisation.
    let mut first = setup
        .command(
            0,
            &[
                "connect",
                "c2",
                "--issuer",
                &base,
                "--client-id",
                "e2e-client",
                "--redirect-uri",
                &setup.redirect,
                "--scope",
                "users:read",
                "--timeout",
                "60",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(first.stdout.take().unwrap());
    let url = common::authorization_url(&mut stdout, &mut String::new());
    let second = setup.run(0, &["connect", "c2", "--timeout", "5"]);
    assert_eq!(code(&second), Some(1), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("another `pleo-oauth connect`"));
    let callback = follow(&url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut page = agent.get(&callback).call().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.body_mut()
            .read_to_string()
            .unwrap()
            .contains("Connected to Pleo")
    );
    assert!(
        first.wait().unwrap().success(),
        "the first connect completed"
    );
}

/// The storage contract's namespaces: two deployments on one database do
/// not see each other's connections.
#[test]
fn a_namespace_keeps_deployments_apart_on_one_database() {
    let setup = Setup::new();
    setup.connect_in_process();
    let status = |namespace: Option<&str>| {
        let mut command = setup.command(0, &["status", "--json"]);
        if let Some(namespace) = namespace {
            command.env("PLEO_OAUTH_NAMESPACE", namespace);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        rows.as_array().unwrap().len()
    };
    assert_eq!(status(None), 1);
    assert_eq!(status(Some("staging")), 0, "another namespace sees nothing");
    let token = setup
        .command(0, &["token", "c1"])
        .env("PLEO_OAUTH_NAMESPACE", "staging")
        .output()
        .unwrap();
    assert_eq!(token.status.code(), Some(6), "not connected there");
    let bad = setup
        .command(0, &["status"])
        .env("PLEO_OAUTH_NAMESPACE", "a/b")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("namespace"),
        "{}",
        text(&bad.stderr)
    );
}

/// `keep-fresh`: a round per interval over every connection, refreshing
/// the ones due once (not once per round), one JSON line per round; and a
/// SIGTERM stops it between two gate calls, with exit 0.
#[test]
fn keep_fresh_refreshes_what_is_due_once_and_stops_on_sigterm() {
    let setup = Setup::new();
    setup.connect_in_process();
    let rounds = setup.run(
        HOURS_2,
        &["keep-fresh", "--rounds", "3", "--interval-ms", "50"],
    );
    assert!(rounds.status.success(), "{}", text(&rounds.stderr));
    let lines: Vec<serde_json::Value> = text(&rounds.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(
            (line["connections"].as_u64(), line["served"].as_u64()),
            (Some(1), Some(1))
        );
    }
    assert_eq!(
        setup.mock.control().stats().refreshes,
        1,
        "refreshed once, not per round"
    );
    setup.assert_no_secrets(&[&text(&rounds.stdout), &text(&rounds.stderr)]);

    let mut worker = setup
        .command(HOURS_2, &["keep-fresh", "--interval-ms", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"served\":1"), "{first}");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = worker.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `mock-server --port 0 --json` is how a harness in another language
/// starts the mock: one JSON line says where it listens, and the secret set
/// in the environment is never printed.
#[test]
fn the_mock_server_reports_where_it_listens_as_one_json_line() {
    let secret = "mock-secret-not-printed";
    let mut child = Command::new(BIN)
        .args(["mock-server", "--port", "0", "--consent", "auto", "--json"])
        .env("PLEO_OAUTH_CLIENT_SECRET", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let reported: serde_json::Value = serde_json::from_str(&line).expect(&line);
    let url = reported["url"].as_str().expect(&line).to_owned();
    assert_eq!(reported["client-id"], "demo-client");
    assert_eq!(reported["confidential"], true);
    assert!(!line.contains(secret));
    let stats = ureq::get(format!("{url}/_mock/stats")).call();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(stats.unwrap().status(), 200);
}
