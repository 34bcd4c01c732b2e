//! The lifecycle commands: connect, token, status, call, disconnect,
//! forget, mock-server and demo, over [`pleo_oauth_cli::app::App`].

use std::error::Error;
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use pleo_oauth::RuntimeConfig;
use pleo_oauth::authorize::{BeginOptions, CompleteError, ExchangeFailure};
use pleo_oauth::connections::{
    ApiAction, ClientFault, ClientType, ConnectionConfig, CustomEndpoints, DisconnectError,
    Environment, NotConnected, Reason, Refusal, Revocation, StatusView, WaitReason,
};
use pleo_oauth::imports::clock::{Clock, OffsetClock};
use pleo_oauth::imports::http::{ClientAuthMethod, ClientSecrets, HttpLimits};
use pleo_oauth::imports::log::LogStyle;
use pleo_oauth::imports::storage::{KeyRing, SealedStorage, SealingKey};
use pleo_oauth::mock::{Consent, MockConfig, MockServer};
use pleo_oauth::secret::Secret;
use pleo_oauth::types::Method;
use pleo_oauth_cli::app::{self, App, AppConfig, Call, OperatorSecret, api_base};
use pleo_oauth_cli::callback_listener::{Listener, page};
use pleo_oauth_core::connection::validate_connection_id;
use pleo_oauth_core::events::kebab;

use crate::{Command, Global, HttpMethod, Logs, Secrets, Store, classify_cmd};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_REAUTH: u8 = 3;
pub const EXIT_LATER: u8 = 4;
pub const EXIT_CLIENT: u8 = 5;
pub const EXIT_NOT_CONNECTED: u8 = 6;
pub const EXIT_API_ERROR: u8 = 7;

/// The environment variable holding a confidential client's secret.
pub const SECRET_ENV: &str = "PLEO_OAUTH_CLIENT_SECRET";
/// The environment variable naming origins, besides Pleo's, that may
/// receive the client secret.
pub const SECRET_ORIGINS_ENV: &str = "PLEO_OAUTH_SECRET_ORIGINS";
/// Shifts the clock (ms), for tests and demos that need the future.
pub const CLOCK_OFFSET_ENV: &str = "PLEO_OAUTH_CLOCK_OFFSET_MS";

#[derive(Clone, Copy, ValueEnum)]
pub enum Env {
    Staging,
    Production,
}

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// The connection id you choose (e.g. a tenant id): A-Z a-z 0-9 - _ . :
    id: String,
    /// Pleo's staging or production authorisation server.
    #[arg(long, value_enum, conflicts_with = "issuer")]
    env: Option<Env>,
    /// Another authorisation server (e.g. the mock: http://127.0.0.1:8080):
    /// its /oauth/authorize and /oauth/token are used, and callbacks must
    /// carry this issuer (RFC 9207).
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// The OAuth client id.
    #[arg(long)]
    client_id: Option<String>,
    /// A public client (PKCE only, no secret).
    #[arg(long)]
    public: bool,
    /// The redirect URI registered with Pleo, exactly.
    #[arg(long, value_name = "URI")]
    redirect_uri: Option<String>,
    /// A scope to request (resource:permission); repeat, or separate with spaces.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// The API base URL for `call` (default: Pleo's API of the environment).
    #[arg(long, value_name = "URL")]
    api_base: Option<String>,
    /// An RFC 7009 revocation endpoint, used by `disconnect --revoke`.
    #[arg(long, value_name = "URL")]
    revocation_url: Option<String>,
    /// Reject callbacks without `iss` (RFC 9207 §2.4); the connection
    /// needs an issuer (--issuer).
    #[arg(long)]
    require_iss: bool,
    /// Refresh this many seconds before the access token expires (0-3600;
    /// default 60).
    #[arg(long, value_name = "SECONDS")]
    refresh_margin: Option<u32>,
    /// The longest wait between failed refreshes (1-3600 s; default 300).
    #[arg(long, value_name = "SECONDS")]
    max_backoff: Option<u32>,
    /// How long to wait for the authorisation, in seconds.
    #[arg(long, default_value = "300", value_name = "SECONDS")]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct MockArgs {
    /// The port on 127.0.0.1; 0 picks a free one (see --json).
    #[arg(long, default_value = "8080")]
    port: u16,
    /// The client id it knows. With PLEO_OAUTH_CLIENT_SECRET set the client
    /// is confidential with that secret; otherwise public.
    #[arg(long, default_value = "demo-client")]
    client_id: String,
    /// `page` shows a consent page; `auto` approves at once.
    #[arg(long, value_enum, default_value = "page")]
    consent: ConsentArg,
    /// Access-token lifetime, in seconds.
    #[arg(long, default_value = "3600")]
    access_ttl: u32,
    /// Print one JSON line, `{"url": ..., "client-id": ..., "confidential":
    /// ...}`, instead of the instructions: for a test harness in another
    /// language that starts the mock and reads where it listens. The secret
    /// is never printed: it is the PLEO_OAUTH_CLIENT_SECRET you set.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ConsentArg {
    Auto,
    Page,
}

pub fn run(logs: &Logs, command: Command) -> Result<ExitCode> {
    let global = |store: Store, secrets: Secrets| Global::new(logs, store, secrets);
    match command {
        Command::Demo => {
            pleo_oauth_cli::demo::run(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify(command) => {
            let runtime = pleo_oauth::Runtime::new(RuntimeConfig::default())?;
            classify_cmd::classify(&mut runtime.instance(Default::default())?, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Component { out } => {
            std::fs::write(&out, pleo_oauth::COMPONENT)
                .map_err(|e| format!("writing {}: {e}", out.display()))?;
            println!(
                "wrote the pleo-oauth component ({} bytes) to {}",
                pleo_oauth::COMPONENT.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::MockServer(args) => mock_server(args),
        Command::Rekey {
            new_key_file,
            store,
        } => rekey(&global(store, Secrets::default()), &new_key_file),
        Command::Connect {
            args,
            store,
            secrets,
        } => {
            let global = global(store, secrets);
            let client_auth = global.client_auth;
            with_app(&global, None, |app| connect(app, args, client_auth))
        }
        Command::Token { id, store, secrets } => {
            with_app(&global(store, secrets), Some(&id), |app| token(app, &id))
        }
        Command::RetryNow { id, store, secrets } => {
            with_app(&global(store, secrets), Some(&id), |app| {
                retry_now(app, &id)
            })
        }
        Command::KeepFresh {
            interval_ms,
            rounds,
            store,
            secrets,
        } => with_app(&global(store, secrets), None, |app| {
            keep_fresh(app, Duration::from_millis(interval_ms), rounds)
        }),
        Command::Status { id, json, store } => {
            let global = global(store, Secrets::default());
            with_app(&global, id.as_deref(), |app| status(app, id.clone(), json))
        }
        Command::Call {
            id,
            method,
            path,
            data,
            store,
            secrets,
        } => with_app(&global(store, secrets), Some(&id), |app| {
            call(app, &id, method, &path, data)
        }),
        Command::Disconnect {
            id,
            revoke,
            store,
            secrets,
        } => with_app(&global(store, secrets), Some(&id), |app| {
            disconnect(app, &id, revoke)
        }),
        Command::Forget { id, store } => {
            with_app(&global(store, Secrets::default()), None, |app| {
                let mut instance = app.instance()?;
                if instance.get_config(&id)??.is_none() {
                    return Ok(refused(
                        &id,
                        &Refusal::NotConnected(NotConnected::UnknownConnection),
                        now(app),
                    ));
                }
                instance.forget(&id)??;
                println!("forgot {id}: its configuration, tokens and status are deleted");
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// Runs a command on the app, then logs what this process counted
/// (refreshes, failures, client errors, re-authentications, race
/// recoveries) for operators' log pipelines.
fn with_app(
    global: &Global,
    id: Option<&str>,
    command: impl FnOnce(&App) -> Result<ExitCode>,
) -> Result<ExitCode> {
    if let Some(id) = id
        && let Err(error) = validate_connection_id(id)
    {
        eprintln!("pleo-oauth: {id:?} is not a connection id: {error}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let app = open(global)?;
    if let Some(id) = id
        && let Ok(Ok(Some(config))) = app.instance()?.get_config(id)
    {
        app.bind(&config);
    }
    let result = command(&app);
    let counters = app.log.counters.values();
    tracing::debug!(
        target: "pleo_oauth::counters",
        refreshes = counters.refreshes,
        refresh_failures = counters.refresh_failures,
        client_errors = counters.client_errors,
        reauth_required = counters.reauth_required,
        race_recoveries = counters.race_recoveries,
        "counters of this process"
    );
    result
}

/// The app over the configured database, with the client secret from the
/// environment or a file (never the command line).
fn open(global: &Global) -> Result<App> {
    let secret = match &global.client_secret_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading the client secret file {}: {e}", path.display()))?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        None => std::env::var(SECRET_ENV).ok(),
    }
    .filter(|s| !s.is_empty());
    let operator =
        secret.map(|secret| OperatorSecret::new(Secret::new(secret), &global.secret_origins));
    let offset = match std::env::var(CLOCK_OFFSET_ENV) {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("{CLOCK_OFFSET_ENV} must be an integer (milliseconds)"))?,
        Err(_) => 0,
    };
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock::new(offset));
    Ok(App::open(AppConfig {
        db: global
            .db
            .clone()
            .unwrap_or_else(app::default_db_path)
            .into(),
        namespace: global.namespace.clone(),
        secrets: ClientSecrets::new(global.client_auth.unwrap_or_default()),
        operator,
        sealing: Some(KeyRing::new(sealing_key(global)?)),
        log: match global.log_format {
            crate::LogFormat::Text => LogStyle::Text,
            crate::LogFormat::Json => LogStyle::Json,
        },
        http: HttpLimits::default(),
        clock,
        // A command holds one instance at a time, two at most: a pool of 64
        // slots would reserve address space for some 60 never used.
        runtime: RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        },
    })?)
}

/// The environment variable holding the sealing key itself (base64).
pub const KEY_ENV: &str = "PLEO_OAUTH_KEY";

/// The key that seals tokens at rest: `PLEO_OAUTH_KEY`, else the key file
/// (`--key-file`, `PLEO_OAUTH_KEY_FILE`, or the default under the user's
/// configuration folder, away from the database), generated at first use.
fn sealing_key(global: &Global) -> Result<SealingKey> {
    if let Some(text) = std::env::var(KEY_ENV).ok().filter(|t| !t.is_empty()) {
        return SealingKey::from_base64(&text).map_err(|e| format!("{KEY_ENV}: {e}").into());
    }
    let path = global
        .key_file
        .clone()
        .unwrap_or_else(app::default_key_path);
    key_file(&path)
}

/// Reads the key in `path`, or creates the file (0600, in a 0700 folder)
/// with a new key when it does not exist.
fn key_file(path: &std::path::Path) -> Result<SealingKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            if pleo_oauth::files::too_open(path)? {
                tracing::warn!(
                    target: "pleo_oauth::key",
                    path = %path.display(),
                    "the sealing key file is readable by other users; run chmod 600 on it"
                );
            }
            SealingKey::from_base64(text.lines().next().unwrap_or_default())
                .map_err(|e| format!("the key file {}: {e}", path.display()).into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = SealingKey::generate();
            match write_private(path, &format!("{text}\n")) {
                Ok(()) => {}
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return key_file(path),
                Err(e) => {
                    return Err(format!("creating the key file {}: {e}", path.display()).into());
                }
            }
            tracing::info!(
                target: "pleo_oauth::key",
                path = %path.display(),
                key_id = key.id(),
                "generated a new key to seal tokens at rest; back it up: without it the stored tokens cannot be read"
            );
            Ok(key)
        }
        Err(e) => Err(format!("reading the key file {}: {e}", path.display()).into()),
    }
}

/// Writes a new file only its owner can read, in a folder only its owner
/// can enter (created if needed). Atomic and never overwrites: the content
/// goes to a temporary file that is then hard-linked into place, so
/// processes starting together agree on one key (`AlreadyExists` for all
/// but one) and none ever reads a half-written file.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    pleo_oauth::files::private_parent(path)?;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let temporary = std::path::PathBuf::from(name);
    let written = pleo_oauth::files::new_private_file()
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked
}

/// `rekey`: every sealed record re-sealed under the key in `new_key_file`.
fn rekey(global: &Global, new_key_file: &std::path::Path) -> Result<ExitCode> {
    let current = sealing_key(global)?;
    let new = key_file(new_key_file)?;
    let db = global
        .db
        .clone()
        .unwrap_or_else(app::default_db_path)
        .into();
    let (storage, _) = app::open_storage(&db)?;
    let keys = pleo_oauth::imports::storage::all_keys(storage.as_ref(), "")?;
    let sealed = SealedStorage::new(
        storage,
        KeyRing::new(new.clone()).with_previous(current.clone()),
    );
    let count = sealed.reseal_all(&keys)?;
    println!(
        "re-sealed {count} record(s) from key {} to key {}. Now point every process at the new key: PLEO_OAUTH_KEY_FILE={} (or --key-file); the old key no longer opens them",
        current.id(),
        new.id(),
        new_key_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn now(app: &App) -> u64 {
    app.backends.clock.now_ms()
}

/// The exit code and the sentence for a refusal, with the command that fixes it.
fn refusal(id: &str, refusal: &Refusal, now_ms: u64) -> (u8, String) {
    match refusal {
        Refusal::Reauthenticate(reason) => (
            EXIT_REAUTH,
            format!(
                "{id} needs re-authentication: {}. Its settings are kept. Fix: pleo-oauth connect {id}",
                reason_text(*reason)
            ),
        ),
        Refusal::Wait { until_ms, why } => (
            EXIT_LATER,
            format!(
                "no token for {id} yet: {}; try again {}",
                match why {
                    WaitReason::RefreshInProgress => "another process is refreshing it",
                    WaitReason::BackingOff =>
                        "refreshes are failing for now (Pleo unreachable or busy)",
                    WaitReason::Stalled =>
                        "refreshes have failed for a long time without a break (an operator should check the network path to Pleo; the connection heals itself when Pleo answers)",
                },
                app::when(*until_ms, now_ms)
            ),
        ),
        Refusal::ClientMisconfigured {
            fault: ClientFault::NoCredentials,
            ..
        } => (
            EXIT_CLIENT,
            format!(
                "{id} is a confidential client and the host holds no client secret it may send to its token endpoint: nothing was sent. Set {SECRET_ENV} or pass --client-secret-file; a server other than Pleo's must also be named with {SECRET_ORIGINS_ENV} or --secret-origin. Then run `pleo-oauth token {id}` again"
            ),
        ),
        Refusal::ClientMisconfigured { fault, retry_at_ms } => (
            EXIT_CLIENT,
            format!(
                "Pleo refuses this client ({fault}): check the client id and the secret ({SECRET_ENV} or --client-secret-file). {}",
                match retry_at_ms {
                    Some(at) if *at > now_ms => format!(
                        "The next automatic retry is {}; after fixing, run `pleo-oauth retry-now {id}` to retry at once",
                        app::when(*at, now_ms)
                    ),
                    _ => format!("Then run `pleo-oauth token {id}` again"),
                }
            ),
        ),
        Refusal::NotConnected(NotConnected::UnknownConnection) => (
            EXIT_NOT_CONNECTED,
            format!(
                "no connection named {id}. Fix: pleo-oauth connect {id} --env staging --client-id ID --redirect-uri URI --scope users:read"
            ),
        ),
        Refusal::NotConnected(NotConnected::NeverAuthorized) => (
            EXIT_NOT_CONNECTED,
            format!("{id} is not authorised yet. Fix: pleo-oauth connect {id}"),
        ),
        Refusal::NotConnected(NotConnected::Disconnected) => (
            EXIT_NOT_CONNECTED,
            format!("{id} was disconnected. Fix: pleo-oauth connect {id}"),
        ),
        Refusal::Storage(error) => (
            EXIT_FAILED,
            format!(
                "storage failed: {error}. No request was left half-done and the stored tokens were not changed; try again"
            ),
        ),
    }
}

fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::RefreshTokenRejected => {
            "Pleo rejected the refresh token (expired, revoked by the user, or the client credentials changed)"
        }
        Reason::NoRefreshToken => "the access token expired and Pleo issued no refresh token",
        Reason::RotationLost => {
            "Pleo rotated the tokens during a refresh whose answer was lost (see `pleo-oauth status` for the earlier failure), so the new tokens never reached storage; this was a technical fault, not the user's doing"
        }
        Reason::RefreshTokenReused => {
            "a refresh token that had already been rotated away was sent again and Pleo revoked the grant; a technical fault in the platform (check that every worker shares one store and that clocks are in sync)"
        }
    }
}

fn refused(id: &str, r: &Refusal, now_ms: u64) -> ExitCode {
    let (code, message) = refusal(id, r, now_ms);
    eprintln!("pleo-oauth: {message}");
    ExitCode::from(code)
}

fn token(app: &App, id: &str) -> Result<ExitCode> {
    match app.instance()?.access_token(id)? {
        Ok(bearer) => {
            println!("{}", bearer.token.expose());
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => Ok(refused(id, &r, now(app))),
    }
}

/// What one round of `keep-fresh` saw.
#[derive(Default)]
struct Round {
    connections: u64,
    served: u64,
    waiting: u64,
    reauthenticate: u64,
    client_error: u64,
    not_connected: u64,
    storage_errors: u64,
}

/// `keep-fresh`: rounds of the gate over every connection. The operator's
/// secret is bound to each client id once; an instance is reused across
/// rounds (the runtime replaces it if the guest ever fails).
///
/// SIGTERM and SIGINT stop it between two gate calls: a refresh whose
/// server has rotated the tokens is always stored before the process goes,
/// because those tokens exist nowhere else.
fn keep_fresh(app: &App, interval: Duration, rounds: Option<u64>) -> Result<ExitCode> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let stopping = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let mut instance = app.instance()?;
    let mut bound = std::collections::BTreeSet::new();
    let mut round_number = 0;
    while rounds.is_none_or(|n| round_number < n) {
        let started = std::time::Instant::now();
        let mut round = Round::default();
        for id in app::connection_ids(&mut instance)? {
            if stopping() {
                break;
            }
            if !bound.contains(&id) {
                if let Ok(Ok(Some(config))) = instance.get_config(&id) {
                    app.bind(&config);
                }
                bound.insert(id.clone());
            }
            round.connections += 1;
            match instance.access_token(&id)? {
                Ok(_) => round.served += 1,
                Err(Refusal::Wait { .. }) => round.waiting += 1,
                Err(Refusal::Reauthenticate(_)) => round.reauthenticate += 1,
                Err(Refusal::ClientMisconfigured { .. }) => round.client_error += 1,
                Err(Refusal::NotConnected(_)) => round.not_connected += 1,
                Err(Refusal::Storage(_)) => round.storage_errors += 1,
            }
        }
        let line = serde_json::json!({
            "round": round_number,
            "at-ms": now(app),
            "connections": round.connections,
            "served": round.served,
            "waiting": round.waiting,
            "reauthenticate": round.reauthenticate,
            "client-error": round.client_error,
            "not-connected": round.not_connected,
            "storage-errors": round.storage_errors,
            "elapsed-ms": started.elapsed().as_millis() as u64,
        });
        println!("{line}");
        round_number += 1;
        let more = rounds.is_none_or(|n| round_number < n);
        while more && !stopping() && started.elapsed() < interval {
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        if stopping() {
            eprintln!("pleo-oauth: keep-fresh stopped by a signal after {round_number} round(s)");
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `retry-now`: clears the back-off, then does what `token` does.
fn retry_now(app: &App, id: &str) -> Result<ExitCode> {
    match app.instance()?.retry_now(id)? {
        Ok(()) => token(app, id),
        Err(pleo_oauth::connections::StatusError::UnknownConnection) => Ok(refused(
            id,
            &Refusal::NotConnected(NotConnected::UnknownConnection),
            now(app),
        )),
        Err(error) => Err(error.into()),
    }
}

fn connect(
    app: &App,
    args: ConnectArgs,
    client_auth: Option<ClientAuthMethod>,
) -> Result<ExitCode> {
    // Everything is checked before anything happens: no browser opens, no
    // pending authorisation is replaced, for a configuration that cannot work.
    if let Err(error) = validate_connection_id(&args.id) {
        eprintln!("pleo-oauth: {:?} is not a connection id: {error}", args.id);
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let mut instance = app.instance()?;
    let existing = instance.get_config(&args.id)??;
    let config = match connect_config(existing, &args, client_auth) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pleo-oauth: {error}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if let Err(error) = config.validate() {
        eprintln!("pleo-oauth: the configuration cannot work: {error}");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    // A confidential client needs its secret for the code exchange, sent
    // only to an origin the operator allows: refuse now, not after the
    // user has been through the consent screen.
    app.bind(&config);
    if config.client_type == ClientType::Confidential {
        let token_url = config.token_url();
        if !app.has_operator_secret() {
            eprintln!(
                "pleo-oauth: {} is a confidential client and no client secret is configured. Set {SECRET_ENV} or pass --client-secret-file (or use --public for a public client)",
                args.id
            );
            return Ok(ExitCode::from(EXIT_CLIENT));
        }
        if !app.http.secrets().allows(&config.client_id, &token_url) {
            eprintln!(
                "pleo-oauth: the client secret may not be sent to {}: only Pleo's own servers receive it unless you name others with {SECRET_ORIGINS_ENV} or --secret-origin",
                pleo_oauth::imports::http::origin_of(&token_url).unwrap_or(token_url)
            );
            return Ok(ExitCode::from(EXIT_CLIENT));
        }
    }
    // Listen before anything changes: a port already taken (another
    // `connect` waiting there) is found before a pending flow is replaced.
    let listener = match loopback_listener(&config.redirect_uri) {
        Some(address) => Some(Listener::start(address, &config.redirect_uri)?),
        None => None,
    };
    if let Err(error) = instance.configure(&args.id, &config)? {
        return Err(format!("the configuration was refused: {error}").into());
    }
    let authorization = instance.begin(&args.id, &BeginOptions::default())??;
    if let Some(listener) = &listener {
        // Before the URL is shown: the callback may come back at once.
        let state = authorization.state().unwrap_or_else(|| Secret::new(""));
        listener.expect_state(state.expose());
    }
    // Prompts go to stdout, apart from the log lines on stderr.
    println!("Open this URL in your browser to authorise {}:\n", args.id);
    println!("  {}\n", authorization.url.expose());
    let timeout = Duration::from_secs(args.timeout);
    let (callback, browser) = match &listener {
        Some(listener) => {
            println!(
                "Waiting for Pleo to redirect back to {} (up to {} s; Ctrl-C to stop)...",
                config.redirect_uri, args.timeout
            );
            std::io::Write::flush(&mut std::io::stdout())?;
            match listener.wait(timeout) {
                Some(arrived) => (Some(arrived.url.clone()), Some(arrived)),
                None => (None, None),
            }
        }
        None => {
            println!(
                "After you approve, paste the full URL your browser landed on ({}...) and press Enter (up to {} s):",
                config.redirect_uri, args.timeout
            );
            std::io::Write::flush(&mut std::io::stdout())?;
            (read_line(timeout)?, None)
        }
    };
    let Some(callback) = callback else {
        return Err(format!(
            "no callback within {} s; run the command again (the pending authorisation expires by itself)",
            args.timeout
        )
        .into());
    };
    let result = instance.complete(&callback, Some(&args.id))?;
    if let Some(browser) = browser {
        browser.respond(match &result {
            Ok(_) => page(
                "Connected to Pleo",
                "The connection is ready. You can close this window.",
            ),
            Err(pleo_oauth::authorize::CompleteError::Denied { .. }) => page(
                "Access was not granted",
                "Pleo did not grant access. Nothing was stored; run the command again to retry.",
            ),
            Err(error) => page(
                "The authorisation did not complete",
                &complete_failure(&args.id, error).1,
            ),
        });
    }
    match result {
        Ok(done) => {
            println!(
                "{} {}: scopes {}",
                if done.recovered {
                    "reconnected"
                } else {
                    "connected"
                },
                args.id,
                done.scopes.join(" ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let (code, message) = complete_failure(&args.id, &error);
            eprintln!("pleo-oauth: {message}");
            Ok(ExitCode::from(code))
        }
    }
}

/// The exit code and the sentence for an authorisation that did not
/// complete, with what to do.
fn complete_failure(id: &str, error: &CompleteError) -> (u8, String) {
    match error {
        CompleteError::Denied { error, .. } => (
            EXIT_FAILED,
            format!(
                "Pleo did not grant access ({}); nothing was stored. Run `pleo-oauth connect {id}` to try again",
                error.code.as_str()
            ),
        ),
        CompleteError::Rejected(rejection) => (
            EXIT_FAILED,
            format!(
                "the callback was rejected: {}; nothing was exchanged. Run `pleo-oauth connect {id}` to start again",
                rejection.reason.describe()
            ),
        ),
        CompleteError::ExchangeFailed { failure, .. } => match failure {
            ExchangeFailure::ClientMisconfigured(error) => (
                EXIT_CLIENT,
                format!(
                    "Pleo refused the client ({}) when exchanging the code: check the client id and the secret ({SECRET_ENV} or --client-secret-file), then run `pleo-oauth connect {id}` again",
                    error.code.as_str()
                ),
            ),
            ExchangeFailure::CredentialsMissing => (
                EXIT_CLIENT,
                format!(
                    "no client secret may be sent to {id}'s token endpoint: set {SECRET_ENV} (and {SECRET_ORIGINS_ENV} for a server other than Pleo's), then run `pleo-oauth connect {id}` again"
                ),
            ),
            ExchangeFailure::Transient(_) => (
                EXIT_LATER,
                format!(
                    "Pleo's token endpoint is unreachable or busy; the code cannot be reused. Run `pleo-oauth connect {id}` again in a minute"
                ),
            ),
            ExchangeFailure::Reauthenticate(_) | ExchangeFailure::RequestInvalid(_) => (
                EXIT_FAILED,
                format!(
                    "Pleo rejected the authorisation code (expired, already used, or the PKCE check failed). Run `pleo-oauth connect {id}` to start again"
                ),
            ),
        },
        CompleteError::Storage(error) => (
            EXIT_FAILED,
            format!("storage failed: {error}. Nothing was consumed; run the command again"),
        ),
    }
}

/// The configuration to store: the stored one with any flags applied, or
/// a new one from the flags.
fn connect_config(
    existing: Option<ConnectionConfig>,
    args: &ConnectArgs,
    client_auth: Option<ClientAuthMethod>,
) -> Result<ConnectionConfig> {
    let environment = match (&args.env, &args.issuer) {
        (Some(Env::Staging), _) => Some(Environment::Staging),
        (Some(Env::Production), _) => Some(Environment::Production),
        (None, Some(issuer)) => {
            let base = issuer.trim_end_matches('/');
            Some(Environment::Custom(CustomEndpoints {
                authorize_url: format!("{base}/oauth/authorize"),
                token_url: format!("{base}/oauth/token"),
            }))
        }
        (None, None) => None,
    };
    let scopes: Vec<String> = args
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    let mut config = match existing {
        Some(config) => config,
        None => {
            let missing: Vec<&str> = [
                (
                    environment.is_none(),
                    "--env staging|production (or --issuer URL)",
                ),
                (args.client_id.is_none(), "--client-id"),
                (args.redirect_uri.is_none(), "--redirect-uri"),
                (scopes.is_empty(), "--scope"),
            ]
            .into_iter()
            .filter_map(|(missing, flag)| missing.then_some(flag))
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "{} is a new connection; also give {}",
                    args.id,
                    missing.join(", ")
                )
                .into());
            }
            ConnectionConfig {
                environment: Environment::Staging,
                client_id: String::new(),
                client_type: ClientType::Confidential,
                redirect_uri: String::new(),
                scopes: Vec::new(),
                issuer: None,
                require_iss: false,
                settings: Vec::new(),
                revocation_url: None,
                refresh_margin_seconds: None,
                max_backoff_seconds: None,
                stall_after_seconds: None,
            }
        }
    };
    if let Some(environment) = environment {
        config.issuer = args
            .issuer
            .as_ref()
            .map(|i| i.trim_end_matches('/').to_owned());
        config.environment = environment;
    }
    if let Some(client_id) = &args.client_id {
        config.client_id = client_id.clone();
    }
    if args.public {
        config.client_type = ClientType::Public;
    }
    if let Some(uri) = &args.redirect_uri {
        config.redirect_uri = uri.clone();
    }
    if !scopes.is_empty() {
        config.scopes = scopes;
    }
    if let Some(url) = &args.revocation_url {
        config.revocation_url = Some(url.clone());
    }
    if args.require_iss {
        config.require_iss = true;
    }
    if args.refresh_margin.is_some() {
        config.refresh_margin_seconds = args.refresh_margin;
    }
    if args.max_backoff.is_some() {
        config.max_backoff_seconds = args.max_backoff;
    }
    if let Some(base) = &args.api_base {
        config.settings.retain(|(k, _)| k != app::API_BASE_SETTING);
        config.settings.push((
            app::API_BASE_SETTING.into(),
            base.trim_end_matches('/').into(),
        ));
    }
    if let Some(method) = client_auth {
        config
            .settings
            .retain(|(k, _)| k != app::CLIENT_AUTH_SETTING);
        config
            .settings
            .push((app::CLIENT_AUTH_SETTING.into(), method.as_str().into()));
    }
    Ok(config)
}

/// The address to listen on when the redirect URI is plain http on a
/// loopback address with a port.
fn loopback_listener(redirect_uri: &str) -> Option<std::net::SocketAddr> {
    let url = url::Url::parse(redirect_uri).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let port = url.port()?;
    match url.host()? {
        url::Host::Ipv4(ip) if ip.is_loopback() => Some((ip, port).into()),
        url::Host::Ipv6(ip) if ip.is_loopback() => Some((ip, port).into()),
        url::Host::Domain("localhost") => Some(([127, 0, 0, 1], port).into()),
        _ => None,
    }
}

/// One line from stdin, or `None` after `timeout`.
fn read_line(timeout: Duration) -> Result<Option<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(line);
    });
    Ok(rx
        .recv_timeout(timeout)
        .ok()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty()))
}

fn status(app: &App, id: Option<String>, json: bool) -> Result<ExitCode> {
    let mut instance = app.instance()?;
    let ids = match id {
        Some(id) => vec![id],
        None => app::connection_ids(&mut instance)?,
    };
    let mut views = Vec::new();
    for id in ids {
        match instance.status(&id)? {
            Ok(view) => views.push((id, view)),
            Err(pleo_oauth::connections::StatusError::UnknownConnection) => {
                eprintln!("pleo-oauth: no connection named {id}");
                return Ok(ExitCode::from(EXIT_NOT_CONNECTED));
            }
            Err(error) => return Err(error.into()),
        }
    }
    let now = now(app);
    if json {
        let rows: Vec<serde_json::Value> = views.iter().map(|(id, v)| status_json(id, v)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        println!(
            "no connections in {}. Start with: pleo-oauth connect <id> --env staging --client-id ID --redirect-uri URI --scope users:read",
            app.database()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<16} {:<24} {:<16} {:>8}  {:<16}",
        "CONNECTION", "STATE", "REASON", "TOKEN EXPIRES", "FAILURES", "LAST REFRESH"
    );
    let mut by_state = std::collections::BTreeMap::new();
    for (id, view) in &views {
        *by_state.entry(kebab(&view.state)).or_insert(0) += 1;
        println!(
            "{:<20} {:<16} {:<24} {:<16} {:>8}  {:<16}",
            id,
            kebab(&view.state),
            view.reason.map(|r| kebab(&r)).unwrap_or_else(|| "-".into()),
            app::relative_time(view.access_expires_at_ms, now),
            view.failures,
            app::relative_time(view.last_refresh_at_ms, now),
        );
        println!("{:<20} {}", "", view.next_action);
    }
    let summary: Vec<String> = by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("\n{} connection(s): {}", views.len(), summary.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn status_json(id: &str, view: &StatusView) -> serde_json::Value {
    serde_json::json!({
        "connection": id,
        "state": kebab(&view.state),
        "reason": view.reason.map(|r| kebab(&r)),
        "since-ms": view.since_ms,
        "access-expires-at-ms": view.access_expires_at_ms,
        "scopes": view.scopes,
        "missing-scopes": view.missing_scopes,
        "consecutive-failures": view.failures,
        "next-retry-at-ms": view.next_retry_at_ms,
        "last-refresh-at-ms": view.last_refresh_at_ms,
        "last-error": view.last_error,
        "refreshing-until-ms": view.refreshing_until_ms,
        "failing-since-ms": view.failing_since_ms,
        "refresh-outcome-unknown-since-ms": view.refresh_outcome_unknown_since_ms,
        "fresh-token-rejections": view.fresh_token_rejections,
        "next-action": view.next_action,
    })
}

fn call(
    app: &App,
    id: &str,
    method: HttpMethod,
    path: &str,
    data: Option<String>,
) -> Result<ExitCode> {
    if let Some(data) = &data
        && serde_json::from_str::<serde_json::Value>(data).is_err()
    {
        eprintln!("pleo-oauth: --data must be JSON (the API takes application/json)");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let mut instance = app.instance()?;
    let Some(config) = instance.get_config(id)?? else {
        return Ok(refused(
            id,
            &Refusal::NotConnected(NotConnected::UnknownConnection),
            now(app),
        ));
    };
    let base = api_base(&config).ok_or_else(|| {
        format!("{id} has no API base URL: run `pleo-oauth connect {id} --api-base URL`")
    })?;
    let method = match method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
    };
    let url = format!("{base}/{}", path.trim_start_matches('/'));
    let body = data.unwrap_or_default().into_bytes();
    let outcome = app::call(&mut instance, app.http.as_ref(), id, method, &url, body)?;
    Ok(match outcome {
        Call::Refused { refusal, answered } => {
            if let Some(status) = answered {
                eprintln!("(the API answered {status})");
            }
            refused(id, &refusal, now(app))
        }
        Call::Transport(error) => {
            eprintln!(
                "pleo-oauth: the API request failed ({}); try again",
                error.summary()
            );
            ExitCode::from(EXIT_LATER)
        }
        Call::Answered {
            status,
            body,
            action,
            retried,
            ..
        } => {
            if retried {
                eprintln!("(the token was stale: refreshed and retried once)");
            }
            println!("{}", String::from_utf8_lossy(&body));
            match action {
                ApiAction::Proceed if status < 400 => ExitCode::SUCCESS,
                ApiAction::InsufficientScope(scopes) => {
                    eprintln!(
                        "pleo-oauth: {status}: the grant lacks {}; run `pleo-oauth connect {id}` to grant it",
                        scopes.join(" ")
                    );
                    ExitCode::from(EXIT_API_ERROR)
                }
                ApiAction::RateLimited(at) | ApiAction::Transient(at) => {
                    eprintln!(
                        "pleo-oauth: {status}: the API is busy or unavailable; try again {}",
                        match at {
                            Some(at) => app::when(at, now(app)),
                            None => "in a little while".into(),
                        }
                    );
                    ExitCode::from(EXIT_LATER)
                }
                ApiAction::RejectedAfterRefresh => {
                    eprintln!(
                        "pleo-oauth: {status}: the API refused a token Pleo had just issued. The tokens are kept (Pleo's authorisation server accepts the grant); check the API base URL and the app's access in Pleo, and alert if it persists"
                    );
                    ExitCode::from(EXIT_API_ERROR)
                }
                _ => {
                    eprintln!("pleo-oauth: the API answered {status}");
                    ExitCode::from(EXIT_API_ERROR)
                }
            }
        }
    })
}

fn disconnect(app: &App, id: &str, revoke: bool) -> Result<ExitCode> {
    let result = app.instance()?.disconnect(id, revoke)?;
    let message = match result {
        Ok(Revocation::Revoked) => "the grant was revoked at the server".to_owned(),
        Ok(Revocation::NotRequested) => "not revoked at the server (no --revoke)".to_owned(),
        Ok(Revocation::NotConfigured) => {
            "not revoked: the connection has no revocation endpoint; remove the app in Pleo too"
                .to_owned()
        }
        Ok(Revocation::NoToken) => "there were no tokens to revoke".to_owned(),
        Ok(Revocation::Failed(why)) => {
            format!("the server did not confirm the revocation ({why}); remove the app in Pleo too")
        }
        Err(DisconnectError::UnknownConnection) => {
            return Ok(refused(
                id,
                &Refusal::NotConnected(NotConnected::UnknownConnection),
                now(app),
            ));
        }
        Err(DisconnectError::Storage(error)) => return Err(error.into()),
    };
    println!("disconnected {id}: tokens wiped, configuration kept; {message}");
    Ok(ExitCode::SUCCESS)
}

/// How the user runs this program, for the commands it prints: the
/// installed `pleo-oauth`, or `cargo run -p pleo-oauth-cli --` when it runs
/// from a build folder.
fn invocation() -> String {
    let in_build = std::env::current_exe()
        .is_ok_and(|exe| exe.components().any(|c| c.as_os_str() == "target"));
    if in_build {
        "cargo run -p pleo-oauth-cli --".into()
    } else {
        "pleo-oauth".into()
    }
}

fn mock_server(args: MockArgs) -> Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock::new(0));
    let mut config = MockConfig::new(clock);
    config.port = args.port;
    config.client_id = args.client_id.clone();
    config.client_secret = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
    config.access_ttl_secs = args.access_ttl;
    config.consent = match args.consent {
        ConsentArg::Auto => Consent::Auto,
        ConsentArg::Page => Consent::Page,
    };
    let confidential = config.client_secret.is_some();
    let server = MockServer::start(config).map_err(|e| {
        format!(
            "cannot start the mock server on 127.0.0.1:{} ({e}): another program (perhaps another mock-server) uses that port; choose another with --port",
            args.port
        )
    })?;
    let base = server.base_url();
    if args.json {
        let line = serde_json::json!({
            "url": base,
            "client-id": args.client_id,
            "confidential": confidential,
        });
        println!("{line}");
        std::io::Write::flush(&mut std::io::stdout())?;
        server.wait();
        return Ok(ExitCode::SUCCESS);
    }
    println!("mock Pleo server on {base} (loopback only; Ctrl-C to stop)");
    println!(
        "client {}: {}",
        args.client_id,
        if confidential {
            format!("confidential, secret from {SECRET_ENV}")
        } else {
            format!("public (set {SECRET_ENV} to make it confidential)")
        }
    );
    println!("\nConnect to it:\n");
    if confidential {
        println!(
            "  export {SECRET_ORIGINS_ENV}={base}   # lets the client secret go to this server"
        );
    }
    let me = invocation();
    println!(
        "  {me} connect demo --issuer {base} --client-id {}{} --redirect-uri http://127.0.0.1:8765/callback --scope users:read --api-base {base} --revocation-url {base}/oauth/revoke",
        args.client_id,
        if confidential { "" } else { " --public" }
    );
    println!(
        "\nThen: {me} call demo GET /v2/users; control it with POST {base}/_mock/revoke-grants, /_mock/expire-access-tokens, /_mock/fault"
    );
    // Shown at once even when stdout is a pipe (a log file, a test).
    std::io::Write::flush(&mut std::io::stdout())?;
    server.wait();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pleo_oauth::connections::{Reason, StorageError, WaitReason};

    /// The README's exit-code table, as `code -> meaning`.
    fn readme_table() -> std::collections::BTreeMap<u8, String> {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("Exit codes (every command):")
            .nth(1)
            .expect("the README's exit-code table");
        table
            .lines()
            .skip_while(|l| !l.starts_with("| 0 "))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                Some((cells.next()?.parse().ok()?, cells.next()?.to_owned()))
            })
            .collect()
    }

    /// One mapping from every refusal to an exit code and a sentence with
    /// what to do, matching the README's table and `--help`.
    #[test]
    fn every_outcome_maps_to_the_documented_exit_code() {
        let table = readme_table();
        for (code, words) in [
            (EXIT_FAILED, "failed"),
            (EXIT_USAGE, "bad usage"),
            (EXIT_REAUTH, "re-authentication required"),
            (EXIT_LATER, "try again later"),
            (EXIT_CLIENT, "misconfigured"),
            (EXIT_NOT_CONNECTED, "not connected"),
            (EXIT_API_ERROR, "the API answered with an error"),
        ] {
            assert!(
                table[&code].contains(words),
                "README row {code}: {}",
                table[&code]
            );
            let help = crate::EXIT_CODES
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{code} ")))
                .unwrap_or_else(|| panic!("--help lists {code}"));
            assert!(help.contains(words), "--help row {code}: {help}");
        }
        let later = 1_700_000_090_000;
        let refusals = [
            (
                Refusal::Reauthenticate(Reason::RefreshTokenRejected),
                EXIT_REAUTH,
                "pleo-oauth connect c1",
            ),
            (
                Refusal::Reauthenticate(Reason::NoRefreshToken),
                EXIT_REAUTH,
                "pleo-oauth connect c1",
            ),
            (
                Refusal::Reauthenticate(Reason::RotationLost),
                EXIT_REAUTH,
                "not the user's doing",
            ),
            (
                Refusal::Reauthenticate(Reason::RefreshTokenReused),
                EXIT_REAUTH,
                "pleo-oauth connect c1",
            ),
            (
                Refusal::Wait {
                    until_ms: later,
                    why: WaitReason::RefreshInProgress,
                },
                EXIT_LATER,
                "(in 90 s)",
            ),
            (
                Refusal::Wait {
                    until_ms: later,
                    why: WaitReason::BackingOff,
                },
                EXIT_LATER,
                "(in 90 s)",
            ),
            (
                Refusal::Wait {
                    until_ms: later,
                    why: WaitReason::Stalled,
                },
                EXIT_LATER,
                "operator",
            ),
            (
                Refusal::ClientMisconfigured {
                    fault: ClientFault::Rejected(pleo_oauth::classify::ErrorCode::InvalidClient),
                    retry_at_ms: Some(later),
                },
                EXIT_CLIENT,
                "pleo-oauth retry-now c1",
            ),
            (
                Refusal::ClientMisconfigured {
                    fault: ClientFault::NoCredentials,
                    retry_at_ms: None,
                },
                EXIT_CLIENT,
                SECRET_ENV,
            ),
            (
                Refusal::NotConnected(NotConnected::UnknownConnection),
                EXIT_NOT_CONNECTED,
                "pleo-oauth connect c1",
            ),
            (
                Refusal::NotConnected(NotConnected::NeverAuthorized),
                EXIT_NOT_CONNECTED,
                "pleo-oauth connect c1",
            ),
            (
                Refusal::NotConnected(NotConnected::Disconnected),
                EXIT_NOT_CONNECTED,
                "pleo-oauth connect c1",
            ),
            (
                Refusal::Storage(StorageError::Unavailable("disk".into())),
                EXIT_FAILED,
                "try again",
            ),
        ];
        for (refusal, code, fix) in refusals {
            let (got, message) = super::refusal("c1", &refusal, 1_700_000_000_000);
            assert_eq!(got, code, "{refusal:?}");
            assert!(message.contains(fix), "{refusal:?}: {message}");
            assert!(table.contains_key(&got));
        }
    }
}
