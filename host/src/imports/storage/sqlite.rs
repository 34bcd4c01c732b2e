//! The real `storage` backend: one SQLite file (rusqlite, SQLite compiled
//! in), shared safely by every process that opens it.
//!
//! - WAL mode, so readers never block the writer, and a busy timeout, so
//!   a writer waits its turn instead of failing at once;
//! - compare-and-swap: each write is one `BEGIN IMMEDIATE` transaction that
//!   checks the key's version and writes, so two processes can never both
//!   succeed from the same version;
//! - versions come from one counter for the whole file and are never reused,
//!   even after a delete, so a stale writer cannot match a recreated key;
//! - files an auditor accepts: the database (and so its `-wal` and `-shm`,
//!   which SQLite creates with the database's mode) is created 0600 in a
//!   folder created 0700, a looser existing file is warned about,
//!   `secure_delete` overwrites deleted content (a wiped refresh token does
//!   not linger in free pages), and `synchronous = FULL` makes every commit
//!   durable across power loss: with rotating refresh tokens, losing the
//!   last committed rotation means losing the grant.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Entry, Storage, StorageError};

/// How long a writer waits for another process's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How durable a commit is (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is synced to disk before it returns: survives power
    /// loss. The default.
    #[default]
    Full,
    /// Commits survive a process crash but the last ones may be lost on
    /// power loss. Only for benchmarks and throwaway databases.
    Normal,
}

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

/// Creates the database's folder (0700) and the file (0600) when they do
/// not exist, so no other user can read tokens, even for an instant; warns
/// when an existing file or folder is readable by others.
fn private_file(path: &Path) -> std::io::Result<()> {
    crate::files::private_parent(path)?;
    match crate::files::new_private_file().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if crate::files::too_open(path)? {
                tracing::warn!(
                    target: "pleo_oauth::storage",
                    path = %path.display(),
                    "the token database is readable by other users; run chmod 600 on it (and its -wal and -shm files)"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, with its folder,
    /// durable across power loss.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens the database with the given durability.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, OpenError> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| OpenError {
            path: path.to_owned(),
            source,
        };
        private_file(path).map_err(|e| fail(e.into()))?;
        let connection = Connection::open(path).map_err(|e| fail(e.into()))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail(e.into()))?;
        // WAL lets readers run alongside the one writer.
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = {synchronous};
                 PRAGMA secure_delete = ON;
                 CREATE TABLE IF NOT EXISTS entries (
                     key     TEXT PRIMARY KEY NOT NULL,
                     value   BLOB NOT NULL,
                     version INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS version_counter (
                     id   INTEGER PRIMARY KEY CHECK (id = 1),
                     last INTEGER NOT NULL
                 );
                 INSERT OR IGNORE INTO version_counter (id, last) VALUES (1, 0);"
            ))
            .map_err(|e| fail(e.into()))?;
        Ok(Self {
            connection: Mutex::new(connection),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        // Before the commit, a failure rolls back: nothing was written. A
        // commit that fails may have failed after the commit point (an I/O
        // error while syncing), so its outcome is reported as unknown and
        // the guest re-reads.
        transaction.commit().map_err(|e| match unavailable(e) {
            StorageError::Unavailable(why) => StorageError::OutcomeUnknown(why),
            other => other,
        })?;
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

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        // `key >= prefix` lets the primary key's index find the range;
        // `substr` bounds it (SQLite compares text bytewise).
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT key FROM entries
                 WHERE key >= ?1 AND substr(key, 1, ?2) = ?1 AND (?3 IS NULL OR key > ?3)
                 ORDER BY key LIMIT ?4",
            )
            .map_err(unavailable)?;
        statement
            .query_map(
                params![prefix, prefix.len() as i64, after, i64::from(limit)],
                |row| row.get(0),
            )
            .map_err(unavailable)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(unavailable)
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
    fn sqlite_storage_keeps_the_contract() {
        let (_dir, store) = temp();
        crate::imports::storage::contract::check(&store);
    }

    /// Four connections to one file, two threads each: compare-and-swap
    /// across connections loses no increment and never repeats a version.
    #[test]
    fn sqlite_connections_to_one_file_keep_the_contract_together() {
        let (dir, store) = temp();
        let path = dir.path().join("sub/pleo-oauth.db");
        let mut handles: Vec<std::sync::Arc<dyn Storage>> = vec![std::sync::Arc::new(store)];
        for _ in 0..3 {
            handles.push(std::sync::Arc::new(SqliteStorage::open(&path).unwrap()));
        }
        crate::imports::storage::contract::concurrent_handles(&handles, 2, 25);
    }

    /// An auditor's view of a fresh database: the folder 0700, the file and
    /// its `-wal` and `-shm` 0600; deleted content overwritten; commits
    /// synced (`synchronous = FULL`, 2).
    #[cfg(unix)]
    #[test]
    fn files_are_private_deletes_are_secure_and_commits_durable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("data");
        let path = folder.join("pleo-oauth.db");
        let store = SqliteStorage::open(&path).unwrap();
        let v = store
            .put("tokens/c1", b"RT-wiped-0123456789", None)
            .unwrap();
        store.delete("tokens/c1", v).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        for file in ["pleo-oauth.db", "pleo-oauth.db-wal", "pleo-oauth.db-shm"] {
            assert_eq!(mode(&folder.join(file)), 0o600, "{file}");
        }
        let connection = store.lock();
        let pragma = |name: &str| -> i64 {
            connection
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .unwrap()
        };
        assert_eq!(pragma("secure_delete"), 1);
        assert_eq!(pragma("synchronous"), 2);
        drop(connection);
        drop(store);
        // Checkpointed and closed: the wiped value is in no file.
        for entry in std::fs::read_dir(&folder).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(19).any(|w| w == b"RT-wiped-0123456789"),
                "a deleted value lingers on disk"
            );
        }
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
