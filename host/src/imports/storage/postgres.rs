//! A `storage` backend on a PostgreSQL server, for workers on several
//! machines sharing one store. It keeps the contract of `wit/imports.wit`
//! (interface `storage`) with the server doing the work:
//!
//! - **versions from a sequence**: one `SEQUENCE` for the whole store, so a
//!   version is never handed out twice, even after a delete (never a
//!   per-row `version + 1`, which would let a stale writer holding version
//!   1 of a deleted key match the recreated key);
//! - **compare-and-swap as single statements**: create-if-absent is
//!   `INSERT ... ON CONFLICT DO NOTHING RETURNING version`, update is
//!   `UPDATE ... WHERE key = $1 AND version = $2 RETURNING version`, delete
//!   is `DELETE ... WHERE key = $1 AND version = $2`; no row means another
//!   writer got there first: `conflict`. Each statement is its own
//!   transaction, so there is no lock held between round trips;
//! - **keys as `bytea`**: `keys` pages in byte order whatever the
//!   database's encoding and collation, a prefix is a range the primary
//!   key's index serves, and a key may hold any character;
//! - **honest outcomes**: an error before a statement was sent (no
//!   connection, pool exhausted, a dead pooled connection) or a statement
//!   the server refused is `unavailable`; a write whose connection broke
//!   after it was sent is `outcome-unknown`, and the guest re-reads;
//! - **bounded waits**: a connect timeout, a bounded wait for a pooled
//!   connection, a server-side `statement_timeout` and TCP timeouts, so a
//!   stuck database fails an operation within about the guest's storage
//!   budget (`STORE_OP_MS`, 5 s) instead of holding a worker past its
//!   refresh lease;
//! - **a versioned schema**, created and migrated at open in one
//!   transaction under `pg_advisory_xact_lock`, so workers starting
//!   together migrate once; a schema newer than this release is refused.
//!
//! The pool is `r2d2` with `r2d2_postgres`, whose 0.18 release is built on
//! the same `postgres` 0.19 client used here. TLS is rustls (with the ring
//! provider, as the HTTPS client uses), verifying the server's certificate
//! and name against the web PKI roots or the roots of a PEM file.

use postgres::types::Type;
use std::path::PathBuf;
use std::time::Duration;

use postgres::error::{DbError, SqlState};
use postgres::{Client, Config};
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Entry, Storage, StorageError};

#[cfg(unix)]
pub mod testing;

type Manager = PostgresConnectionManager<MakeRustlsConnect>;

/// The schema version this release creates and reads. Raise it with a new
/// entry in [`MIGRATIONS`].
pub const SCHEMA_VERSION: i32 = 1;

/// Migration `n` (1-based) takes the schema from version `n - 1` to `n`.
/// `{s}` is the table-name prefix (the schema and a dot, or nothing).
const MIGRATIONS: [&str; 1] = [
    // Keys are bytea so that order is byte order (the contract's `keys`),
    // whatever the database's collation.
    "CREATE SEQUENCE {s}pleo_oauth_versions AS bigint MINVALUE 1 NO CYCLE;
     CREATE TABLE {s}pleo_oauth_entries (
         key     bytea  PRIMARY KEY,
         value   bytea  NOT NULL,
         version bigint NOT NULL
     );",
];

/// How a [`PostgresStorage`] connects and how long it waits.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// A schema to hold the tables (created when missing); `None` uses the
    /// connection's `search_path` (normally `public`). 1 to 63 characters
    /// of `a-z`, `0-9` and `_`, not starting with a digit.
    pub schema: Option<String>,
    /// The most connections this handle opens.
    pub pool_size: u32,
    /// How long one connection attempt, and the wait for a pooled
    /// connection, may take.
    pub connect_timeout: Duration,
    /// The server-side limit on one statement (`statement_timeout`).
    /// With `connect_timeout`, it bounds one storage operation: the default
    /// 2 s + 3 s is the guest's storage budget, `STORE_OP_MS`.
    pub statement_timeout: Duration,
    /// A PEM file of root certificates to trust for TLS, besides the web
    /// PKI roots (libpq's `sslrootcert`; also read from the URL).
    pub root_certificates: Option<PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            pool_size: 8,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(3),
            root_certificates: None,
        }
    }
}

/// Why the store could not be opened. Never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum PostgresOpenError {
    #[error("invalid PostgreSQL connection string: {0}")]
    Config(String),
    #[error(
        "invalid schema name {0:?}: 1 to 63 characters of a-z, 0-9 and _, not starting with a digit"
    )]
    Schema(String),
    #[error("cannot read the root certificates {path}: {why}")]
    RootCertificates { path: PathBuf, why: String },
    #[error("cannot reach the PostgreSQL server {server}: {why}")]
    Connect { server: String, why: String },
    #[error("cannot create or migrate the schema on {server}: {why}")]
    Migrate { server: String, why: String },
    #[error(
        "the database {server} has schema version {found}, newer than this release's {SCHEMA_VERSION}: upgrade every worker"
    )]
    NewerSchema { server: String, found: i32 },
}

/// The `storage` import on a PostgreSQL server. One handle is a pool of
/// connections; any number of handles, in any number of processes, may
/// share a database.
pub struct PostgresStorage {
    pool: Pool<Manager>,
    server: String,
    sql: Statements,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("server", &self.server)
            .finish()
    }
}

/// The statements, with the table names filled in once.
struct Statements {
    get: String,
    insert: String,
    update: String,
    delete: String,
    keys_bounded: String,
    keys_unbounded: String,
}

impl Statements {
    fn new(s: &str) -> Self {
        Self {
            get: format!("SELECT value, version FROM {s}pleo_oauth_entries WHERE key = $1"),
            insert: format!(
                "INSERT INTO {s}pleo_oauth_entries (key, value, version)
                 VALUES ($1, $2, nextval('{s}pleo_oauth_versions'))
                 ON CONFLICT (key) DO NOTHING RETURNING version"
            ),
            update: format!(
                "UPDATE {s}pleo_oauth_entries SET value = $3, version = nextval('{s}pleo_oauth_versions')
                 WHERE key = $1 AND version = $2 RETURNING version"
            ),
            delete: format!("DELETE FROM {s}pleo_oauth_entries WHERE key = $1 AND version = $2"),
            keys_bounded: format!(
                "SELECT key FROM {s}pleo_oauth_entries WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3"
            ),
            keys_unbounded: format!(
                "SELECT key FROM {s}pleo_oauth_entries WHERE key >= $1 ORDER BY key LIMIT $2"
            ),
        }
    }
}

/// Whether a schema name is one we can put in SQL unquoted and safely.
fn valid_schema(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The parts of a libpq URL that `postgres` does not read: `sslrootcert`
/// is taken out (a root file), and `sslmode=verify-ca`/`verify-full` become
/// `require`, which with rustls always verifies the certificate and the
/// host name (so `require` here is libpq's `verify-full`).
fn libpq_compat(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslrootcert", path)) => root = Some(PathBuf::from(path)),
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
            _ => kept.push(pair),
        }
    }
    if kept.is_empty() {
        (base.to_owned(), root)
    } else {
        (format!("{base}?{}", kept.join("&")), root)
    }
}

/// Who we connect to, for messages: hosts, ports and database, never the
/// user's password.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    format!(
        "{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

fn tls(root_certificates: Option<&PathBuf>) -> Result<MakeRustlsConnect, PostgresOpenError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_certificates {
        use rustls_pki_types::pem::PemObject;
        let fail = |why: String| PostgresOpenError::RootCertificates {
            path: path.clone(),
            why,
        };
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?;
        for certificate in certificates {
            roots
                .add(certificate.map_err(|e| fail(e.to_string()))?)
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PostgresOpenError::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Reports the pool's connection failures (which never hold a password)
/// as `tracing` events.
#[derive(Debug)]
struct TracingErrors;

impl r2d2::HandleError<postgres::Error> for TracingErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!(target: "pleo_oauth::storage", error = %describe_error(&error), "a PostgreSQL connection failed");
    }
}

impl PostgresStorage {
    /// Opens the store at `url` (`postgres://user:password@host:port/db`,
    /// with `?sslmode=disable|prefer|require` and `sslrootcert=path`, or a
    /// libpq key=value string), creating or migrating its tables.
    pub fn open(url: &str) -> Result<Self, PostgresOpenError> {
        Self::open_with(url, PostgresOptions::default())
    }

    /// Opens the store with `options`.
    pub fn open_with(url: &str, options: PostgresOptions) -> Result<Self, PostgresOpenError> {
        if let Some(schema) = &options.schema
            && !valid_schema(schema)
        {
            return Err(PostgresOpenError::Schema(schema.clone()));
        }
        let (url, url_root) = libpq_compat(url);
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| PostgresOpenError::Config(e.to_string()))?;
        let server = describe(&config);
        let statement_timeout = options.statement_timeout.as_millis().max(1);
        let session = format!("-c statement_timeout={statement_timeout}");
        let session = match config.get_options() {
            Some(given) if !given.is_empty() => format!("{given} {session}"),
            _ => session,
        };
        config
            .options(&session)
            .connect_timeout(options.connect_timeout)
            // A server that vanished: unacknowledged data fails the
            // connection after this long, and keepalives find a silent peer.
            .tcp_user_timeout(options.statement_timeout + options.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
        if config.get_application_name().is_none() {
            config.application_name("pleo-oauth");
        }
        let root = options.root_certificates.as_ref().or(url_root.as_ref());
        let manager = PostgresConnectionManager::new(config, tls(root)?);
        let pool = Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            // Checked out connections are checked by the operations
            // themselves: a read is retried once, a write pings first.
            .test_on_check_out(false)
            .error_handler(Box::new(TracingErrors))
            .build_unchecked(manager);
        let prefix = options
            .schema
            .as_ref()
            .map_or(String::new(), |s| format!("{s}."));
        let store = Self {
            pool,
            server,
            sql: Statements::new(&prefix),
        };
        store.migrate(options.schema.as_deref(), &prefix)?;
        Ok(store)
    }

    /// Who this store connects to (hosts, ports, database; no password).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Creates or migrates the schema in one transaction, under an advisory
    /// lock so that processes opening at once migrate one after the other.
    fn migrate(&self, schema: Option<&str>, prefix: &str) -> Result<(), PostgresOpenError> {
        let mut connection = self.pool.get().map_err(|e| PostgresOpenError::Connect {
            server: self.server.clone(),
            why: e.to_string(),
        })?;
        let fail = |e: postgres::Error| PostgresOpenError::Migrate {
            server: self.server.clone(),
            why: describe_error(&e),
        };
        let mut transaction = connection.transaction().map_err(fail)?;
        // One lock per schema: "pleo-oau" as a number, plus the schema's hash.
        let lock = 0x706c_656f_2d6f_6175_i64 ^ fnv(schema.unwrap_or("")).cast_signed();
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
            .map_err(fail)?;
        if let Some(schema) = schema {
            transaction
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .map_err(fail)?;
        }
        transaction
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {prefix}pleo_oauth_schema (
                     id      smallint PRIMARY KEY CHECK (id = 1),
                     version integer  NOT NULL
                 )"
            ))
            .map_err(fail)?;
        let found: i32 = transaction
            .query_opt(
                &format!("SELECT version FROM {prefix}pleo_oauth_schema WHERE id = 1"),
                &[],
            )
            .map_err(fail)?
            .map_or(0, |row| row.get(0));
        if found > SCHEMA_VERSION {
            return Err(PostgresOpenError::NewerSchema {
                server: self.server.clone(),
                found,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        for migration in &MIGRATIONS[found as usize..] {
            transaction
                .batch_execute(&migration.replace("{s}", prefix))
                .map_err(fail)?;
        }
        transaction
            .execute(
                &format!(
                    "INSERT INTO {prefix}pleo_oauth_schema (id, version) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET version = excluded.version"
                ),
                &[&SCHEMA_VERSION],
            )
            .map_err(fail)?;
        transaction.commit().map_err(fail)?;
        tracing::info!(target: "pleo_oauth::storage", server = %self.server, from = found, to = SCHEMA_VERSION, "PostgreSQL schema migrated");
        Ok(())
    }

    /// A pooled connection, or `unavailable` (nothing was sent).
    fn connection(&self) -> Result<PooledConnection<Manager>, StorageError> {
        let connection = self
            .pool
            .get()
            .map_err(|e| StorageError::Unavailable(format!("postgres: {e}")))?;
        Ok(connection)
    }

    /// Runs a read, once more on another connection when the first one
    /// turns out to be broken (a pooled connection the server closed while
    /// it was idle): reads are safe to repeat.
    fn read<T>(
        &self,
        run: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StorageError> {
        let mut connection = self.connection()?;
        match run(&mut connection) {
            Ok(value) => Ok(value),
            Err(error) if error.as_db_error().is_none() => {
                drop(connection);
                let mut connection = self.connection()?;
                run(&mut connection).map_err(|e| classify(&e, Sent::Read))
            }
            Err(error) => Err(classify(&error, Sent::Read)),
        }
    }

    /// Runs a write on a connection known to be alive just before, so a
    /// failure to reach the server is `unavailable`; a broken connection
    /// after the statement went out is `outcome-unknown`.
    fn write<T>(
        &self,
        run: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StorageError> {
        let mut connection = self.connection()?;
        if connection.is_valid(Duration::from_secs(1)).is_err() {
            // The pool drops it as broken; one more, fresh or pooled.
            drop(connection);
            connection = self.connection()?;
            connection
                .is_valid(Duration::from_secs(1))
                .map_err(|e| classify(&e, Sent::Read))?;
        }
        run(&mut connection).map_err(|e| classify(&e, Sent::Write))
    }
}

/// FNV-1a, for a stable lock number per schema.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What had gone out when a statement failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A read, or a probe before a write: nothing was written.
    Read,
    /// A write statement.
    Write,
}

/// A driver error as words that name no value: the error's kind, and for a
/// server error its severity, SQLSTATE and message (never the detail,
/// which may quote a row).
fn describe_error(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// The contract's outcome for a failed statement (`wit/imports.wit`,
/// `storage-error`): whatever happened to a read, nothing was written:
/// `unavailable`. A write the server refused with an error (a timeout, a
/// constraint) was rolled back: `unavailable`. A write whose connection
/// ended (the connection broke, or the server ended the session with a
/// fatal error, as `pg_terminate_backend` or a shutdown does) may have
/// committed before it did: `outcome-unknown`.
pub fn classify(error: &postgres::Error, sent: Sent) -> StorageError {
    let why = format!("postgres: {}", describe_error(error));
    match (sent, error.as_db_error()) {
        (Sent::Read, _) => StorageError::Unavailable(why),
        (Sent::Write, Some(db)) if !session_ended(db) => StorageError::Unavailable(why),
        (Sent::Write, _) => StorageError::OutcomeUnknown(why),
    }
}

/// Whether a server error ended the session rather than only the
/// statement: a FATAL or PANIC, a shutdown, a lost connection.
fn session_ended(db: &DbError) -> bool {
    matches!(db.severity(), "FATAL" | "PANIC")
        || db.code().code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(db.code())
}

/// The smallest key after every key starting with `prefix`, in byte order:
/// the exclusive end of the prefix's range (`None`: no end).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A version as PostgreSQL's `bigint`; a version beyond it was never
/// handed out.
fn version_param(version: u64) -> Option<i64> {
    i64::try_from(version).ok()
}

impl Storage for PostgresStorage {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        // Typed parameters: one round trip (no separate prepare), which
        // halves the gate's hot path; the types are the schema's.
        let key = key.as_bytes();
        let row =
            self.read(|client| client.query_typed_opt(&self.sql.get, &[(&key, Type::BYTEA)]))?;
        Ok(row.map(|row| Entry {
            value: row.get(0),
            version: row.get::<_, i64>(1) as u64,
        }))
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        let row = match expected {
            None => {
                let key = key.as_bytes();
                self.write(|client| {
                    client.query_typed_opt(
                        &self.sql.insert,
                        &[(&key, Type::BYTEA), (&value, Type::BYTEA)],
                    )
                })?
            }
            Some(expected) => {
                let Some(expected) = version_param(expected) else {
                    return Err(StorageError::Conflict);
                };
                let key = key.as_bytes();
                self.write(|client| {
                    client.query_typed_opt(
                        &self.sql.update,
                        &[
                            (&key, Type::BYTEA),
                            (&expected, Type::INT8),
                            (&value, Type::BYTEA),
                        ],
                    )
                })?
            }
        };
        match row {
            Some(row) => Ok(row.get::<_, i64>(0) as u64),
            None => Err(StorageError::Conflict),
        }
    }

    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        let Some(expected) = version_param(expected) else {
            return Err(StorageError::Conflict);
        };
        match self
            .write(|client| client.execute(&self.sql.delete, &[&key.as_bytes(), &expected]))?
        {
            0 => Err(StorageError::Conflict),
            _ => Ok(()),
        }
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        // The first key of the page, inclusive: the prefix itself, or the
        // byte string just after `after` (`after` followed by a zero byte).
        let start: Vec<u8> = match after {
            Some(after) if after >= prefix => [after.as_bytes(), &[0]].concat(),
            _ => prefix.as_bytes().to_vec(),
        };
        let limit = i64::from(limit);
        let rows = match prefix_end(prefix.as_bytes()) {
            Some(end) => self.read(|client| {
                client.query_typed(
                    &self.sql.keys_bounded,
                    &[
                        (&start, Type::BYTEA),
                        (&end, Type::BYTEA),
                        (&limit, Type::INT8),
                    ],
                )
            })?,
            None => self.read(|client| {
                client.query_typed(
                    &self.sql.keys_unbounded,
                    &[(&start, Type::BYTEA), (&limit, Type::INT8)],
                )
            })?,
        };
        rows.into_iter()
            .map(|row| {
                String::from_utf8(row.get(0)).map_err(|_| {
                    StorageError::Corrupt("a key in pleo_oauth_entries is not UTF-8".into())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
