//! `pleo-oauth demo`: the whole lifecycle on an embedded default, against
//! the mock Pleo server on 127.0.0.1, through the component with the real
//! HTTP client and SQLite. The component and the mock read one clock that
//! the demo moves forward, so an hour passes in an instant and the run
//! takes seconds.

use std::io::Write;
use std::sync::Arc;

use pleo_oauth_core::connection::{
    ApiAction, ClientType, ConnectionConfig, CustomEndpoints, Environment, Refusal, State,
};
use pleo_oauth_core::events::kebab;
use pleo_oauth_core::secret::Secret;
use pleo_oauth_core::types::Method;

use crate::app::{self, API_BASE_SETTING, Call};
use pleo_oauth::authorize::BeginOptions;
use pleo_oauth::imports::clock::{Clock, OffsetClock};
use pleo_oauth::imports::http::{ClientAuthMethod, ClientSecrets, HttpClient, HttpLimits};
use pleo_oauth::imports::log::CollectingLog;
use pleo_oauth::imports::random::OsRandom;
use pleo_oauth::imports::storage::SqliteStorage;
use pleo_oauth::mock::{Consent, Fault, MockConfig, MockServer, Stats};
use pleo_oauth::{Backends, Instance, Runtime, RuntimeConfig};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CONNECTION: &str = "acme-ledger";
const CLIENT_ID: &str = "demo-client";
const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";
const MINUTE: i64 = 60_000;

/// What the demo saw, for tests.
#[derive(Debug)]
pub struct Report {
    /// The connection's state after each step, in order.
    pub states: Vec<State>,
    /// Every event kind the component emitted, in order.
    pub events: Vec<String>,
    /// Every log line the component emitted, as printed (for secret scans).
    pub log_lines: Vec<String>,
    /// The mock server's counters at the end.
    pub mock: Stats,
    /// Every token, code and secret the mock issued.
    pub secrets: Vec<String>,
}

/// Runs the demo, printing the timeline to `out`.
pub fn run(out: &mut dyn Write) -> Result<Report> {
    let clock = Arc::new(OffsetClock::new(0));
    let client_secret = random_hex(24);
    let mut mock_config = MockConfig::new(clock.clone());
    mock_config.client_id = CLIENT_ID.into();
    mock_config.client_secret = Some(client_secret.clone());
    mock_config.redirect_uris = vec![REDIRECT_URI.into()];
    mock_config.consent = Consent::Auto;
    let mock = MockServer::start(mock_config)?;
    let base = mock.base_url();

    let dir = TempDir::new()?;
    let storage = Arc::new(SqliteStorage::open(&dir.0.join("pleo-oauth.db"))?);
    let log = Arc::new(CollectingLog::default());
    // The secret goes to the mock's origin and nowhere else.
    let mut secrets = ClientSecrets::new(ClientAuthMethod::Basic);
    secrets.insert(CLIENT_ID, Secret::new(client_secret), [base.as_str()])?;
    let http = Arc::new(HttpClient::new(
        HttpLimits {
            total_timeout: std::time::Duration::from_secs(10),
            ..HttpLimits::default()
        },
        secrets,
    ));
    let backends = Backends {
        http: http.clone(),
        storage,
        clock: clock.clone(),
        random: Arc::new(OsRandom),
        log: log.clone(),
    };
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let mut demo = Demo {
        out,
        instance: runtime.instance(backends)?,
        http,
        log,
        printed: 0,
        clock,
        states: Vec::new(),
        log_lines: Vec::new(),
        api: format!("{base}/v2/users"),
    };

    writeln!(
        demo.out,
        "pleo-oauth demo: the token lifecycle through the component, against a mock Pleo\n\
         server on {base} (loopback), with SQLite storage and the real HTTP client.\n\
         Time is moved forward instead of waited for."
    )?;

    demo.step("Configure the connection (the user's settings)")?;
    let config = ConnectionConfig {
        environment: Environment::Custom(CustomEndpoints {
            authorize_url: format!("{base}/oauth/authorize"),
            token_url: format!("{base}/oauth/token"),
        }),
        client_id: CLIENT_ID.into(),
        client_type: ClientType::Confidential,
        redirect_uri: REDIRECT_URI.into(),
        scopes: vec!["users:read".into(), "expenses:read".into()],
        issuer: Some(mock.issuer()),
        require_iss: true,
        settings: vec![
            (API_BASE_SETTING.into(), base.clone()),
            ("ledger-account".into(), "4000".into()),
        ],
        revocation_url: Some(format!("{base}/oauth/revoke")),
        refresh_margin_seconds: None,
        max_backoff_seconds: None,
        stall_after_seconds: None,
    };
    demo.instance.configure(CONNECTION, &config)??;
    demo.note(&format!(
        "{CONNECTION}: confidential client {CLIENT_ID}, scopes users:read expenses:read, ledger account 4000"
    ))?;

    demo.step("Connect: PKCE authorisation, automatic consent at the mock, code exchange")?;
    demo.authorize()?;
    demo.show_status()?;

    demo.step("Call the API")?;
    demo.call()?;

    demo.step("59 minutes pass: the token is inside its 60 s refresh margin")?;
    demo.clock.advance(59 * MINUTE + 30_000);
    demo.call()?;
    demo.show_status()?;

    demo.step("59 minutes later Pleo's token endpoint has an outage (503, an HTML page)")?;
    mock.control().inject(Fault::TokenServerErrorHtml, 1);
    demo.clock.advance(59 * MINUTE + 30_000);
    demo.call()?;
    demo.show_status()?;

    demo.step("The outage ends; 5 seconds later the back-off has passed")?;
    demo.clock.advance(5_000);
    demo.call()?;
    demo.show_status()?;

    demo.step("The user revokes the integration's access in Pleo")?;
    mock.control().revoke_grants();
    demo.call()?;
    demo.show_status()?;

    demo.step("Another API call: refused at once, nothing sent to Pleo")?;
    demo.call()?;

    demo.step("The user clicks \"Reconnect to Pleo\": same configuration, same scopes")?;
    let kept = demo.instance.get_config(CONNECTION)??;
    demo.note(&format!(
        "configuration kept: {}",
        if kept.as_ref() == Some(&config) {
            "yes, unchanged"
        } else {
            "NO"
        }
    ))?;
    demo.authorize()?;
    demo.call()?;
    demo.show_status()?;

    let stats = mock.control().stats();
    writeln!(
        demo.out,
        "\nAt the mock: {} code exchanges, {} refreshes, {} reuse detections, {} API requests ({} refused).",
        stats.code_exchanges,
        stats.refreshes,
        stats.reuse_detections,
        stats.api_requests,
        stats.api_unauthorized
    )?;
    writeln!(
        demo.out,
        "No token, code, verifier, state or secret was printed or logged; the events carry none."
    )?;
    let events = demo.log.events().into_iter().map(|e| e.kind).collect();
    Ok(Report {
        states: demo.states,
        events,
        log_lines: demo.log_lines,
        mock: stats,
        secrets: mock.control().issued_secrets(),
    })
}

struct Demo<'a> {
    out: &'a mut dyn Write,
    instance: Instance,
    http: Arc<HttpClient>,
    log: Arc<CollectingLog>,
    printed: usize,
    clock: Arc<OffsetClock>,
    states: Vec<State>,
    log_lines: Vec<String>,
    api: String,
}

impl Demo<'_> {
    fn step(&mut self, title: &str) -> Result<()> {
        let number = self.states.len() + 1;
        self.states.push(State::New);
        writeln!(self.out, "\n{number:>2}. {title}")?;
        Ok(())
    }

    fn note(&mut self, text: &str) -> Result<()> {
        writeln!(self.out, "      {text}")?;
        Ok(())
    }

    /// Prints the events emitted since the last call.
    fn events(&mut self) -> Result<()> {
        let events = self.log.events();
        for event in &events[self.printed..] {
            // Instants in RFC 3339 beside their milliseconds, as in the logs.
            let fields: Vec<String> = pleo_oauth::imports::log::with_times(&event.fields)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let line = format!("event {} {}", event.kind, fields.join(" "));
            self.log_lines.push(format!("{line} {}", event.message));
            writeln!(self.out, "      {}", line.trim_end())?;
        }
        self.printed = events.len();
        Ok(())
    }

    /// The browser's part: follows the authorisation URL to the mock, which
    /// consents at once and redirects to the redirect URI with a code.
    fn authorize(&mut self) -> Result<()> {
        let authorization = self
            .instance
            .begin(CONNECTION, &BeginOptions::default())??;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let response = agent.get(authorization.url.expose()).call()?;
        let callback = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("the mock did not redirect back")?
            .to_owned();
        self.events()?;
        match self.instance.complete(&callback, Some(CONNECTION))? {
            Ok(done) => self.note(&format!(
                "{} with scopes {}",
                if done.recovered {
                    "recovered: reconnected"
                } else {
                    "connected"
                },
                done.scopes.join(" ")
            ))?,
            Err(error) => self.note(&format!("authorisation failed: {error}"))?,
        }
        self.events()
    }

    fn call(&mut self) -> Result<()> {
        let outcome = app::call(
            &mut self.instance,
            self.http.as_ref(),
            CONNECTION,
            Method::Get,
            &self.api,
            Vec::new(),
        )?;
        self.events()?;
        let line = match outcome {
            Call::Answered {
                status,
                action,
                retried,
                ..
            } => format!(
                "GET /v2/users -> {status}{}{}",
                if retried {
                    " (after one refresh and retry)"
                } else {
                    ""
                },
                match action {
                    ApiAction::Proceed => String::new(),
                    other => format!(": {other:?}"),
                }
            ),
            Call::Refused { refusal, answered } => format!(
                "GET /v2/users -> {}: {}",
                answered.map_or("not sent".into(), |s| s.to_string()),
                refusal_words(&refusal, self.clock.now_ms())
            ),
            Call::Transport(error) => format!("GET /v2/users -> failed: {}", error.summary()),
        };
        self.note(&line)?;
        self.record_state()
    }

    fn record_state(&mut self) -> Result<()> {
        let status = self.instance.status(CONNECTION)??;
        if let Some(last) = self.states.last_mut() {
            *last = status.state;
        }
        Ok(())
    }

    fn show_status(&mut self) -> Result<()> {
        let now = self.clock.now_ms();
        let status = self.instance.status(CONNECTION)??;
        let expires = app::relative_time(status.access_expires_at_ms, now);
        let line = format!(
            "status: {}{}, token expires {expires}, {} consecutive failure(s). {}",
            kebab(&status.state),
            status
                .reason
                .map(|r| format!(" ({})", kebab(&r)))
                .unwrap_or_default(),
            status.failures,
            status.next_action
        );
        self.note(&line)?;
        self.record_state()
    }
}

/// A refusal in a few words.
fn refusal_words(refusal: &Refusal, now: u64) -> String {
    match refusal {
        Refusal::Reauthenticate(reason) => format!(
            "re-authentication required ({}); tokens wiped, API calls stopped",
            kebab(reason)
        ),
        Refusal::Wait { until_ms, why } => format!(
            "wait {} ({})",
            app::relative_time(Some(*until_ms), now),
            kebab(why)
        ),
        Refusal::ClientMisconfigured { fault, .. } => format!("client misconfigured ({fault})"),
        Refusal::NotConnected(why) => {
            format!("not connected ({})", kebab(why))
        }
        Refusal::Storage(error) => format!("storage failed: {error}"),
    }
}

/// `bytes` random bytes from the OS, in hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    pleo_oauth::imports::random::Random::fill(&OsRandom, &mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A temporary folder removed on drop (the demo leaves nothing behind).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("pleo-oauth-demo-{}", random_hex(8)));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
