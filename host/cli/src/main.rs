//! `pleo-oauth`: the command line of the reference host. See `--help`, and
//! the README's "The command line" for the exit codes.

mod classify_cmd;
mod commands;
mod describe;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pleo_oauth::imports::http::ClientAuthMethod;

/// Keeps Pleo OAuth connections alive from the terminal: connect, get a
/// token for scripts, call the API, and watch the pleo-oauth component
/// detect a dead grant and recover. `pleo-oauth demo` shows it all against
/// a local mock of Pleo, with no account and no network.
#[derive(Parser)]
#[command(name = "pleo-oauth", version)]
#[command(after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    logs: Logs,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes:
  0  done
  1  failed (storage, the component, an authorisation not granted or rejected); the message says why
  2  bad usage, or a configuration that cannot work
  3  re-authentication required: run `pleo-oauth connect <id>`
  4  try again later (a refresh is in progress or backing off, or the API is unavailable)
  5  the client is misconfigured (client id or secret): an operator must act
  6  not connected: unknown connection, never authorised, or disconnected
  7  the API answered with an error (call)";

/// Options for every command: logging.
#[derive(clap::Args)]
pub struct Logs {
    /// Log lines on stderr: readable text, or JSON lines.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) for pleo-oauth, or a
    /// tracing filter (`debug,ureq=trace`); other crates stay at warn.
    #[arg(long, global = true, env = "PLEO_OAUTH_LOG", default_value = "info")]
    log_level: String,
}

/// Where connections and tokens are kept: for the commands that use them.
#[derive(clap::Args, Clone, Default)]
pub struct Store {
    /// The database holding connections and tokens: a SQLite file, or a
    /// postgres:// (postgresql://) URL of a server every worker shares.
    /// [default: $XDG_DATA_HOME/pleo-oauth/pleo-oauth.db or ~/.local/share/pleo-oauth/pleo-oauth.db]
    #[arg(long, env = "PLEO_OAUTH_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// The key that seals tokens at rest (base64 of 32 bytes, first line).
    /// PLEO_OAUTH_KEY (the key itself) takes precedence. Created at first
    /// use when absent.
    /// [default: $XDG_CONFIG_HOME/pleo-oauth/key or ~/.config/pleo-oauth/key]
    #[arg(long, env = "PLEO_OAUTH_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Keeps these connections apart from other deployments sharing the
    /// database: 1 to 64 characters of A-Z a-z 0-9 - _ .
    #[arg(long, env = "PLEO_OAUTH_NAMESPACE", value_name = "NAME")]
    pub namespace: Option<String>,
}

/// The client secret and where it may go: for the commands that may send
/// it.
#[derive(clap::Args, Clone, Default)]
pub struct Secrets {
    /// A file holding the client secret of a confidential client (its
    /// first line). Otherwise the secret comes from PLEO_OAUTH_CLIENT_SECRET.
    /// Never on the command line.
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,
    /// How the secret is sent to the token endpoint. `connect` stores it
    /// with the connection; other commands use the stored one.
    /// [default: basic]
    #[arg(long, value_parser = client_auth_method())]
    pub client_auth: Option<ClientAuthMethod>,
    /// A server, besides Pleo's own, that may receive the client secret
    /// (e.g. the mock: http://127.0.0.1:8080); repeat, or separate with
    /// commas in PLEO_OAUTH_SECRET_ORIGINS. Only its origin counts.
    #[arg(
        long = "secret-origin",
        env = "PLEO_OAUTH_SECRET_ORIGINS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub secret_origins: Vec<String>,
}

/// What a command that opens the store runs with.
pub struct Global {
    pub db: Option<PathBuf>,
    pub namespace: Option<String>,
    pub key_file: Option<PathBuf>,
    pub client_secret_file: Option<PathBuf>,
    pub client_auth: Option<ClientAuthMethod>,
    pub secret_origins: Vec<String>,
    pub log_format: LogFormat,
}

impl Global {
    fn new(logs: &Logs, store: Store, secrets: Secrets) -> Self {
        Self {
            db: store.db,
            namespace: store.namespace,
            key_file: store.key_file,
            client_secret_file: secrets.client_secret_file,
            client_auth: secrets.client_auth,
            secret_origins: secrets.secret_origins,
            log_format: logs.log_format,
        }
    }
}

/// The methods `call` sends.
#[derive(Clone, Copy, ValueEnum)]
pub enum HttpMethod {
    #[value(name = "GET")]
    Get,
    #[value(name = "POST")]
    Post,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The whole lifecycle against a local mock of Pleo, with a timeline:
    /// connect, refresh with rotation, an outage survived, access revoked,
    /// detected, and recovered.
    Demo,
    /// Connect (or reconnect) a connection: stores its configuration, sends
    /// you to Pleo to authorise, and stores the tokens.
    ///
    /// With a loopback redirect URI (http://127.0.0.1:PORT/...) it listens
    /// there for the callback; otherwise paste the URL your browser landed
    /// on. Reconnecting an existing connection needs only its id: the
    /// stored configuration and scopes are reused.
    Connect {
        #[command(flatten)]
        args: commands::ConnectArgs,
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        secrets: Secrets,
    },
    /// Print a usable access token for scripts (refreshing it if due).
    ///
    /// Without one it exits non-zero (3: reconnect, 4: try later, 5: client
    /// misconfigured, 6: not connected) and says on stderr which command
    /// fixes it, and until when to wait.
    Token {
        /// The connection id.
        id: String,
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        secrets: Secrets,
    },
    /// Keep every connection's access token fresh: the loop of a platform's
    /// token worker. Each round lists the connections through the component
    /// and asks the gate for each token, which refreshes the ones due:
    /// single flight across every worker sharing the store, so run as many
    /// as you like, on as many machines. One JSON line per round on stdout:
    /// how many tokens were served, how many must wait, how many need an
    /// operator or the user.
    KeepFresh {
        /// Time between the starts of two rounds, in milliseconds.
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        interval_ms: u64,
        /// Stop after this many rounds; without it, run until stopped.
        #[arg(long, value_name = "N")]
        rounds: Option<u64>,
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        secrets: Secrets,
    },
    /// Clear a connection's back-off and refresh at once, then print a token
    /// as `token` does: for an operator who has just fixed the client secret
    /// or the network.
    RetryNow {
        /// The connection id.
        id: String,
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        secrets: Secrets,
    },
    /// Show connections: state, reason, token expiry, failures.
    Status {
        /// One connection; all when left out.
        id: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: Store,
    },
    /// One API request through the gate, with Pleo's 401 and 403 handling.
    Call {
        /// The connection id.
        id: String,
        /// The HTTP method.
        #[arg(value_enum, ignore_case = true)]
        method: HttpMethod,
        /// The path under the API base, e.g. /v2/users.
        path: String,
        /// A JSON body for POST.
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        secrets: Secrets,
    },
    /// Disconnect: wipe the tokens (optionally revoking them at the server),
    /// keep the configuration.
    Disconnect {
        /// The connection id.
        id: String,
        /// Revoke the refresh token first (RFC 7009), when the connection has
        /// a revocation endpoint.
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        secrets: Secrets,
    },
    /// Delete everything stored for a connection, configuration included.
    Forget {
        /// The connection id.
        id: String,
        #[command(flatten)]
        store: Store,
    },
    /// Run the mock Pleo server on its own, to develop against.
    MockServer(commands::MockArgs),
    /// Classify responses with the component's pure verdicts.
    #[command(subcommand)]
    Classify(classify_cmd::Classify),
    /// Write the component (.wasm) to a file, to embed it in another host
    /// (jco for Node.js, wasmtime-py for Python, ...).
    Component {
        /// Where to write it.
        #[arg(default_value = "pleo-oauth.wasm")]
        out: PathBuf,
    },
    /// Rotate the key that seals tokens at rest: re-seal every record under
    /// a new key (generated into the file when it does not exist), then
    /// point PLEO_OAUTH_KEY_FILE (or --key-file) at it.
    Rekey {
        /// The new key's file (base64, first line); created 0600 if absent.
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
        #[command(flatten)]
        store: Store,
    },
}

/// `--client-auth`: the library's method names, offered as possible values.
fn client_auth_method() -> impl clap::builder::TypedValueParser<Value = ClientAuthMethod> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(ClientAuthMethod::ALL.map(ClientAuthMethod::as_str))
        .try_map(|name| name.parse::<ClientAuthMethod>())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(&cli.logs) {
        eprintln!("pleo-oauth: {error}");
        return ExitCode::from(2);
    }
    match commands::run(&cli.logs, cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pleo-oauth: {error}");
            ExitCode::from(commands::EXIT_FAILED)
        }
    }
}

fn init_logging(global: &Logs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(&global.log_level)?)
        .map_err(|e| format!("invalid --log-level {:?}: {e}", global.log_level))?;
    // Colours only for a person at a terminal, never in a file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The crates whose logs a bare level (`debug`, `trace`) applies to.
const OWN_CRATES: [&str; 2] = ["pleo_oauth", "pleo_oauth_core"];

/// Turns `--log-level` into a tracing filter. A bare level applies to this
/// project's crates only; every other crate stays at `warn` unless named
/// explicitly (`ureq=trace`), because a dependency's verbose output can
/// carry secrets: the HTTP client's trace level dumps whole requests,
/// `Authorization` headers and token responses included. A bare word that
/// is not a level is an error, not a silent filter on a target by that name.
fn log_filter(spec: &str) -> Result<String, String> {
    let mut directives = vec!["warn".to_owned()];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains('=') || part.contains('[') {
            directives.push(part.to_owned());
            continue;
        }
        let level: tracing_subscriber::filter::LevelFilter = part.parse().map_err(|_| {
            format!(
                "invalid --log-level {part:?}: use error, warn, info, debug, trace or off, or target=level"
            )
        })?;
        directives.extend(OWN_CRATES.iter().map(|c| format!("{c}={level}")));
    }
    Ok(directives.join(","))
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn a_bare_level_is_for_this_project_only_and_typos_are_errors() {
        assert_eq!(
            log_filter("trace").unwrap(),
            "warn,pleo_oauth=trace,pleo_oauth_core=trace"
        );
        assert_eq!(
            log_filter("info,ureq=debug").unwrap(),
            "warn,pleo_oauth=info,pleo_oauth_core=info,ureq=debug"
        );
        assert!(log_filter("infoo").is_err());
        assert!(log_filter("verbose").is_err());
    }
}
