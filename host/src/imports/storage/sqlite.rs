//! The real `storage` backend: one SQLite file (rusqlite, SQLite compiled
//! in), shared safely by every process that opens it.
//!
//! - WAL mode, so readers never block the writer, and a busy timeout, so
//!   a writer waits its turn instead of failing at once;
//! - compare-and-swap: each write is one `BEGIN IMMEDIATE` transaction that
//!   checks the key's version and writes, so two processes can never both
//!   succeed from the same version;
//! - versions come from one counter for the whole file and are never reused,
//!   even after a delete, so a stale writer cannot match a recreated key.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Entry, Storage, StorageError};

/// How long a writer waits for another process's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStorage {
    connection: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .finish()
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the database {path}: {source}")]
pub struct OpenError {
    path: PathBuf,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, with its folder.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| OpenError {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.into()))?;
        }
        let connection = Connection::open(path).map_err(|e| fail(e.into()))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail(e.into()))?;
        // WAL lets readers run alongside the one writer; `synchronous=NORMAL`
        // is durable across process crashes in WAL mode.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS entries (
                     key     TEXT PRIMARY KEY NOT NULL,
                     value   BLOB NOT NULL,
                     version INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS version_counter (
                     id   INTEGER PRIMARY KEY CHECK (id = 1),
                     last INTEGER NOT NULL
                 );
                 INSERT OR IGNORE INTO version_counter (id, last) VALUES (1, 0);",
            )
            .map_err(|e| fail(e.into()))?;
        Ok(Self {
            connection: Mutex::new(connection),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key, sorted: for `status` listings.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT key FROM entries WHERE substr(key, 1, ?1) = ?2 ORDER BY key")
            .map_err(unavailable)?;
        let keys = statement
            .query_map(params![prefix.len() as i64, prefix], |row| row.get(0))
            .map_err(unavailable)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(unavailable)?;
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write` in an immediate transaction after checking that `key`
    /// is at `expected`.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<u64>,
        write: impl FnOnce(&rusqlite::Transaction<'_>, u64) -> rusqlite::Result<()>,
    ) -> Result<u64, StorageError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let current: Option<i64> = transaction
            .query_row(
                "SELECT version FROM entries WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
            .map_err(unavailable)?;
        if current.map(|v| v as u64) != expected {
            return Err(StorageError::Conflict);
        }
        let version: i64 = transaction
            .query_row(
                "UPDATE version_counter SET last = last + 1 WHERE id = 1 RETURNING last",
                [],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        write(&transaction, version as u64).map_err(unavailable)?;
        transaction.commit().map_err(unavailable)?;
        Ok(version as u64)
    }
}

/// A database error as the contract's `unavailable`: the SQLite error code
/// and message, which name no stored value (values are bound parameters).
fn unavailable(error: rusqlite::Error) -> StorageError {
    StorageError::Unavailable(match &error {
        rusqlite::Error::SqliteFailure(code, _) => format!("sqlite: {:?}", code.code),
        other => format!("sqlite: {other}"),
    })
}

impl Storage for SqliteStorage {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        // The hot path of the API gate: a cached statement, one row.
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT value, version FROM entries WHERE key = ?1")
            .map_err(unavailable)?;
        statement
            .query_row(params![key], |row| {
                Ok(Entry {
                    value: row.get(0)?,
                    version: row.get::<_, i64>(1)? as u64,
                })
            })
            .optional()
            .map_err(unavailable)
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        self.compare_and_swap(key, expected, |tx, version| {
            tx.execute(
                "INSERT INTO entries (key, value, version) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version",
                params![key, value, version as i64],
            )
            .map(|_| ())
        })
    }

    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        self.compare_and_swap(key, Some(expected), |tx, _| {
            tx.execute("DELETE FROM entries WHERE key = ?1", params![key])
                .map(|_| ())
        })
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, SqliteStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("sub/pleo-oauth.db")).unwrap();
        (dir, storage)
    }

    #[test]
    fn compare_and_swap_semantics() {
        let (_dir, store) = temp();
        super::super::tests::check_contract(&store);
        assert_eq!(store.keys("k").unwrap(), ["k"]);
        assert!(store.keys("x").unwrap().is_empty());
    }

    /// Two connections to one file (as two processes have): exactly one of
    /// two writers from the same version wins, and the data survives reopening.
    #[test]
    fn two_connections_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let a = SqliteStorage::open(&path).unwrap();
        let b = SqliteStorage::open(&path).unwrap();
        let v = a.put("tokens/c1", b"one", None).unwrap();
        let results = [
            a.put("tokens/c1", b"a", Some(v)),
            b.put("tokens/c1", b"b", Some(v)),
        ];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Err(StorageError::Conflict))
                .count(),
            1
        );
        drop((a, b));
        let c = SqliteStorage::open(&path).unwrap();
        assert!(c.get("tokens/c1").unwrap().is_some());
        let mode: String = c
            .lock()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn many_threads_one_winner_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = SqliteStorage::open(&path).unwrap();
        let v = first.put("k", b"0", None).unwrap();
        let wins: usize = std::thread::scope(|scope| {
            (0..8)
                .map(|i| {
                    let path = path.clone();
                    scope.spawn(move || {
                        let store = SqliteStorage::open(&path).unwrap();
                        usize::from(store.put("k", format!("{i}").as_bytes(), Some(v)).is_ok())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum()
        });
        assert_eq!(wins, 1);
    }
}
