//! The host as an application: the component with the real backends (the
//! HTTPS client, SQLite, the system clock, the OS random source, tracing),
//! and the API call loop a platform runs. The command line, the demo and
//! the end-to-end tests are built on it.

use std::path::PathBuf;
use std::sync::Arc;

use pleo_oauth_core::connection::{ApiAction, ConnectionConfig, Environment, Refusal};
use pleo_oauth_core::types::{Header, Method, Request, TransportError};

use pleo_oauth::imports::clock::Clock;
use pleo_oauth::imports::http::{ClientSecrets, Http, HttpClient, HttpLimits};
use pleo_oauth::imports::log::{LogStyle, TracingLog};
use pleo_oauth::imports::random::OsRandom;
use pleo_oauth::imports::storage::{
    InvalidNamespace, KeyRing, Namespaced, OpenError, PostgresOpenError, PostgresStorage,
    SealedStorage, SqliteStorage, Storage,
};
use pleo_oauth::{Backends, GuestError, Instance, Runtime, RuntimeConfig, RuntimeError};

/// The setting (in a connection's `settings`) naming the API base URL.
pub const API_BASE_SETTING: &str = "api-base";
/// The setting naming how a confidential client presents its secret
/// (`basic` or `post`), stored with the connection by `connect`.
pub const CLIENT_AUTH_SETTING: &str = "client-auth";
/// Pleo's APIs, by environment (Pleo's developer documentation).
pub const PRODUCTION_API: &str = "https://external.pleo.io";
pub const STAGING_API: &str = "https://external.staging.pleo.io";
/// Timeout of one API request.
pub const API_TIMEOUT_MS: u32 = 30_000;

/// Where the database lives unless told otherwise: `$XDG_DATA_HOME/pleo-oauth/pleo-oauth.db`,
/// else `~/.local/share/pleo-oauth/pleo-oauth.db`, else `./pleo-oauth.db`.
pub fn default_db_path() -> PathBuf {
    pleo_oauth::files::user_path("XDG_DATA_HOME", ".local/share", "pleo-oauth.db")
}

/// Where connections and tokens are kept: a SQLite file on this machine,
/// or a PostgreSQL server that every worker on every machine points at
/// (the storage contract of `wit/imports.wit` holds on both).
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL, which may hold a password:
    /// never printed (see [`App::database`]; `Debug` shows the scheme only).
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

impl Database {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL server;
    /// anything else is a SQLite path.
    pub fn from_arg(arg: PathBuf) -> Self {
        match arg.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Self::Postgres(url.to_owned())
            }
            _ => Self::Sqlite(arg),
        }
    }
}

#[cfg(test)]
mod database_tests {
    use super::Database;

    #[test]
    fn a_database_url_never_prints_its_password() {
        let db = Database::from_arg("postgres://worker:hunter2-secret@db.internal/pleo".into());
        assert!(matches!(db, Database::Postgres(_)));
        assert!(!format!("{db:?}").contains("hunter2"));
        assert!(matches!(
            Database::from_arg("/var/lib/pleo.db".into()),
            Database::Sqlite(_)
        ));
    }
}

impl From<PathBuf> for Database {
    fn from(arg: PathBuf) -> Self {
        Self::from_arg(arg)
    }
}

/// Opens the database, SQLite or PostgreSQL; also gives what to call it in
/// messages (a path, or the server without its password).
pub fn open_storage(db: &Database) -> Result<(Arc<dyn Storage>, String), AppError> {
    Ok(match db {
        Database::Sqlite(path) => (
            Arc::new(SqliteStorage::open(path)?),
            path.display().to_string(),
        ),
        Database::Postgres(url) => {
            let storage = PostgresStorage::open(url)?;
            let name = format!("postgres://{}", storage.server());
            (Arc::new(storage), name)
        }
    })
}

/// The operator's client secret for the connections an app serves, and
/// the origins it may be sent to. The client id it belongs to is each
/// connection's; the origins are the operator's, never the stored
/// configuration's, so a configuration pointed elsewhere gets nothing.
#[derive(Clone)]
pub struct OperatorSecret {
    pub secret: pleo_oauth::secret::Secret,
    /// URLs whose origins may receive it: Pleo's authorisation servers,
    /// plus any the operator names.
    pub origins: Vec<String>,
}

impl OperatorSecret {
    /// The secret for Pleo's own authorisation servers and `extra` origins.
    pub fn new(secret: pleo_oauth::secret::Secret, extra: &[String]) -> Self {
        let mut origins = vec![
            pleo_oauth_core::connection::PRODUCTION_AS.to_owned(),
            pleo_oauth_core::connection::STAGING_AS.to_owned(),
        ];
        origins.extend(extra.iter().cloned());
        Self { secret, origins }
    }
}

/// Where the sealing key lives unless told otherwise, apart from the
/// database: `$XDG_CONFIG_HOME/pleo-oauth/key`, else
/// `~/.config/pleo-oauth/key`, else `./key`.
pub fn default_key_path() -> PathBuf {
    pleo_oauth::files::user_path("XDG_CONFIG_HOME", ".config", "key")
}

/// What an [`App`] is made of.
pub struct AppConfig {
    pub db: Database,
    /// Keeps this deployment's connections apart from others sharing the
    /// database (the storage contract's namespaces).
    pub namespace: Option<String>,
    /// Credentials registered up front, each with its origins.
    pub secrets: ClientSecrets,
    /// The operator's secret, registered for a connection's client id by
    /// [`App::bind`].
    pub operator: Option<OperatorSecret>,
    /// Seals tokens and pending authorisations at rest when given.
    pub sealing: Option<KeyRing>,
    /// How events are written.
    pub log: LogStyle,
    pub http: HttpLimits,
    pub clock: Arc<dyn Clock>,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Storage(#[from] OpenError),
    #[error(transparent)]
    Postgres(#[from] PostgresOpenError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Namespace(#[from] InvalidNamespace),
    #[error("storage failed: {0}")]
    Listing(#[from] pleo_oauth_core::types::StorageError),
    #[error(
        "{0} is not an origin a client secret may go to: it must be an https URL (or http on a loopback address)"
    )]
    Origin(String),
}

/// The component wired to the real backends.
pub struct App {
    pub runtime: Runtime,
    pub backends: Backends,
    /// The database, under sealing and namespaces.
    pub storage: Arc<dyn Storage>,
    /// What to call the database in messages: its path, or its server
    /// without the password.
    database: String,
    pub log: Arc<TracingLog>,
    pub http: Arc<HttpClient>,
    /// The sealing layer over `storage`, when tokens are encrypted at rest.
    pub sealed: Option<Arc<SealedStorage>>,
    operator: Option<OperatorSecret>,
}

impl App {
    pub fn open(config: AppConfig) -> Result<Self, AppError> {
        if let Some(operator) = &config.operator {
            for origin in &operator.origins {
                if pleo_oauth::imports::http::origin_of(origin).is_none() {
                    return Err(AppError::Origin(origin.clone()));
                }
            }
        }
        let (storage, database) = open_storage(&config.db)?;
        let log = Arc::new(TracingLog::new(config.log));
        let http = Arc::new(HttpClient::new(config.http, config.secrets));
        let sealed = config
            .sealing
            .map(|ring| Arc::new(SealedStorage::new(storage.clone(), ring)));
        let mut guest_storage: Arc<dyn Storage> = match &sealed {
            Some(sealed) => sealed.clone(),
            None => storage.clone(),
        };
        if let Some(namespace) = &config.namespace {
            guest_storage = Arc::new(Namespaced::new(guest_storage, namespace)?);
        }
        let backends = Backends {
            http: http.clone(),
            storage: guest_storage,
            clock: config.clock,
            random: Arc::new(OsRandom),
            log: log.clone(),
        };
        Ok(Self {
            runtime: Runtime::new(config.runtime)?,
            backends,
            storage,
            database,
            log,
            http,
            sealed,
            operator: config.operator,
        })
    }

    /// Registers the operator's secret for this connection's client id
    /// (confidential clients only), for the operator's origins.
    pub fn bind(&self, config: &ConnectionConfig) {
        if let Some(operator) = &self.operator
            && config.client_type == pleo_oauth_core::connection::ClientType::Confidential
        {
            let method = config
                .settings
                .iter()
                .find(|(k, _)| k == CLIENT_AUTH_SETTING)
                .and_then(|(_, v)| {
                    v.parse::<pleo_oauth::imports::http::ClientAuthMethod>()
                        .ok()
                });
            self.http
                .register(
                    &config.client_id,
                    operator.secret.clone(),
                    operator.origins.iter().map(String::as_str),
                    method,
                )
                .expect("origins checked at open");
        }
    }

    /// Whether the operator holds a secret at all.
    pub fn has_operator_secret(&self) -> bool {
        self.operator.is_some()
    }

    /// A fresh instance over the app's backends.
    pub fn instance(&self) -> Result<Instance, RuntimeError> {
        self.runtime.instance(self.backends.clone())
    }

    /// The database in words: a SQLite path, or `postgres://host:port/db`
    /// (never the password).
    pub fn database(&self) -> &str {
        &self.database
    }
}

/// The ids of every configured connection, sorted, page by page through
/// the component's `connections.list`, on the caller's instance.
pub fn connection_ids(instance: &mut Instance) -> Result<Vec<String>, AppError> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = instance.list(after.as_deref(), pleo_oauth::connections::MAX_PAGE)??;
        ids.extend(page.connections.into_iter().map(|c| c.connection));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(ids),
        }
    }
}

/// The API base URL of a connection: its `api-base` setting, else Pleo's
/// API of its environment.
pub fn api_base(config: &ConnectionConfig) -> Option<String> {
    config
        .settings
        .iter()
        .find(|(k, _)| k == API_BASE_SETTING)
        .map(|(_, v)| v.trim_end_matches('/').to_owned())
        .or(match &config.environment {
            Environment::Production => Some(PRODUCTION_API.into()),
            Environment::Staging => Some(STAGING_API.into()),
            Environment::Custom(_) => None,
        })
}

/// How an API call through the gate ended.
#[derive(Debug)]
pub enum Call {
    /// The API answered. `action` is what `report` said about the answer
    /// (`proceed`, `insufficient-scope`, `forbidden`, `rate-limited`,
    /// `transient`); `retried` when a 401 was refreshed and retried.
    Answered {
        status: u16,
        headers: Vec<Header>,
        body: Vec<u8>,
        action: ApiAction,
        retried: bool,
    },
    /// The gate (or `report`) gave no token: why, and what to do.
    /// `answered` is the API's status when a request was sent first (a 401
    /// whose refresh found the grant dead).
    Refused {
        refusal: Refusal,
        answered: Option<u16>,
    },
    /// The request got no response.
    Transport(TransportError),
}

/// One API request the way a platform makes it (README, "The connection
/// lifecycle"): a token from the gate, the request, the response reported,
/// and one retry with the new token after a 401.
pub fn call(
    instance: &mut Instance,
    http: &dyn Http,
    connection: &str,
    method: Method,
    url: &str,
    body: Vec<u8>,
) -> Result<Call, GuestError> {
    let mut bearer = match instance.access_token(connection)? {
        Ok(bearer) => bearer,
        Err(refusal) => {
            return Ok(Call::Refused {
                refusal,
                answered: None,
            });
        }
    };
    let mut retried = false;
    loop {
        let mut headers = vec![
            Header::new("Authorization", format!("Bearer {}", bearer.token.expose())),
            Header::new("Accept", "application/json"),
        ];
        if !body.is_empty() {
            headers.push(Header::new("Content-Type", "application/json"));
        }
        let request = Request {
            method,
            url: url.to_owned(),
            headers,
            body: body.clone(),
            timeout_ms: API_TIMEOUT_MS,
            client_auth: None,
        };
        let response = match http.send(request) {
            Ok(response) => response,
            Err(error) => return Ok(Call::Transport(error)),
        };
        let reported = instance.report(
            connection,
            bearer.token.expose(),
            response.status,
            &response.headers,
        )?;
        match reported {
            Ok(ApiAction::Retry(fresh)) if !retried => {
                bearer = fresh;
                retried = true;
            }
            Ok(action) => {
                return Ok(Call::Answered {
                    status: response.status,
                    headers: response.headers,
                    body: response.body,
                    action,
                    retried,
                });
            }
            Err(refusal) => {
                return Ok(Call::Refused {
                    refusal,
                    answered: Some(response.status),
                });
            }
        }
    }
}

/// A time relative to now, in words: "in 52 min", "3 s ago", "-".
/// A future instant for people: local wall-clock time and seconds from now,
/// e.g. `at 14:03:07 +01:00 (in 42 s)`.
pub fn when(at_ms: u64, now_ms: u64) -> String {
    let seconds = at_ms.saturating_sub(now_ms).div_ceil(1000);
    let local = i64::try_from(at_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()));
    match local {
        Some(zoned) => format!("at {} (in {seconds} s)", zoned.strftime("%H:%M:%S %:z")),
        None => format!("in {seconds} s"),
    }
}

pub fn relative_time(at: Option<u64>, now: u64) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let words = |ms: u64| match ms / 1000 {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    };
    if at >= now {
        format!("in {}", words(at - now))
    } else {
        format!("{} ago", words(now - at))
    }
}
