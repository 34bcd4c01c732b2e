//! The `storage` import: versioned values with compare-and-swap writes.

pub mod contract;
mod faulty;
mod namespace;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sealed")]
mod sealed;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(all(feature = "postgres", unix))]
pub use self::postgres::testing as postgres_testing;
#[cfg(feature = "postgres")]
pub use self::postgres::{
    PostgresOpenError, PostgresOptions, PostgresStorage, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION,
    Sent, classify as classify_postgres_error,
};
pub use faulty::Faulty;
pub use namespace::{InvalidNamespace, Namespaced};
#[cfg(feature = "sealed")]
pub use sealed::{
    InvalidKey, KeyRing, SEALED_PREFIXES, SealedStorage, SealingKey, is_sealed_key, seal, unseal,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{BUSY_TIMEOUT, Durability, OpenError, SqliteStorage};

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::HostState;
use crate::bindings::pleo::oauth::storage as wit;
use crate::bindings::pleo::oauth::types as wit_types;

pub use pleo_oauth_core::types::{Entry, StorageError};

/// A shared store of versioned values: the `storage` interface of
/// `wit/imports.wit`, whose rules every implementation keeps (check them
/// with [`contract::check`]). Versions are assigned by the store and only
/// ever increase for a key, even across a delete (so a stale writer can
/// never match a recreated key: no ABA). `Conflict` and `Unavailable` mean
/// nothing was written; a backend that cannot know returns
/// `OutcomeUnknown`.
pub trait Storage: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError>;
    /// Writes when the key is at `expected` (or absent, for `None`); returns
    /// the new version.
    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError>;
    /// Deletes when the key is at `expected`.
    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError>;
    /// At most `limit` keys starting with `prefix`, in ascending byte order,
    /// after `after` (exclusive) when given.
    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError>;
}

/// Every key starting with `prefix`, page by page: for host-side
/// maintenance such as re-sealing every record under a new key.
pub fn all_keys(store: &dyn Storage, prefix: &str) -> Result<Vec<String>, StorageError> {
    const PAGE: u32 = 500;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let page = store.keys(prefix, keys.last().map(String::as_str), PAGE)?;
        if page.is_empty() {
            return Ok(keys);
        }
        keys.extend(page);
    }
}

/// Where a page of keys starts: after `after` when it is within the
/// prefix's range, else at the prefix itself.
fn keys_start<'a>(prefix: &'a str, after: Option<&'a str>) -> Bound<&'a str> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

/// In-memory storage for tests, shareable between instances. Wrap it in
/// [`Faulty`] to inject faults.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    entries: BTreeMap<String, Entry>,
    last_version: u64,
}

impl MemoryStorage {
    /// A snapshot of every key and entry, in key order.
    pub fn snapshot(&self) -> BTreeMap<String, Entry> {
        self.lock().entries.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().expect("storage lock")
    }
}

impl MemoryState {
    fn check(&self, key: &str, expected: Option<u64>) -> Result<(), StorageError> {
        let current = self.entries.get(key).map(|e| e.version);
        if current == expected {
            Ok(())
        } else {
            Err(StorageError::Conflict)
        }
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        let mut state = self.lock();
        state.check(key, expected)?;
        state.last_version += 1;
        let version = state.last_version;
        state.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                version,
            },
        );
        Ok(version)
    }

    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        let mut state = self.lock();
        state.check(key, Some(expected))?;
        state.entries.remove(key);
        Ok(())
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range::<str, _>((keys_start(prefix, after), Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

impl From<StorageError> for wit_types::StorageError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict => Self::Conflict,
            StorageError::Unavailable(why) => Self::Unavailable(why),
            StorageError::OutcomeUnknown(why) => Self::OutcomeUnknown(why),
            StorageError::Corrupt(why) => Self::Corrupt(why),
        }
    }
}

impl wit::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<wit::Entry>, wit::StorageError> {
        self.timed(|backends| backends.storage.get(&key))
            .map(|entry| {
                entry.map(|e| wit::Entry {
                    value: e.value,
                    version: e.version,
                })
            })
            .map_err(Into::into)
    }

    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, wit::StorageError> {
        self.timed(|backends| backends.storage.put(&key, &value, expected))
            .map_err(Into::into)
    }

    fn delete(&mut self, key: String, expected: u64) -> Result<(), wit::StorageError> {
        self.timed(|backends| backends.storage.delete(&key, expected))
            .map_err(Into::into)
    }

    fn keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<String>, wit::StorageError> {
        self.timed(|backends| backends.storage.keys(&prefix, after.as_deref(), limit))
            .map_err(Into::into)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn memory_storage_keeps_the_contract() {
        contract::check(&MemoryStorage::default());
    }

    /// With no fault queued, the wrapper is the store underneath.
    #[test]
    fn a_faulty_store_without_faults_keeps_the_contract() {
        contract::check(&Faulty::default());
    }

    #[test]
    fn a_namespace_keeps_the_contract_and_hides_other_namespaces() {
        let shared: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStorage::default());
        let a = Namespaced::new(shared.clone(), "deployment-a").unwrap();
        let b = Namespaced::new(shared.clone(), "deployment-b").unwrap();
        contract::check(&a);
        b.put("config/x", b"b", None).unwrap();
        assert_eq!(
            a.get("config/x"),
            Ok(None),
            "a namespace sees only its own keys"
        );
        assert_eq!(
            a.keys("", None, 100)
                .unwrap()
                .iter()
                .filter(|k| k.starts_with("config/"))
                .count(),
            0
        );
        assert_eq!(b.keys("config/", None, 10).unwrap(), ["config/x"]);
        assert!(shared.get("deployment-b/config/x").unwrap().is_some());
    }

    #[test]
    fn a_lost_reply_still_writes() {
        let store = Faulty::default();
        store.lose_write_outcome("k");
        assert!(matches!(
            store.put("k", b"a", None),
            Err(StorageError::OutcomeUnknown(_))
        ));
        assert_eq!(store.get("k").unwrap().unwrap().value, b"a");
        assert!(store.put("k2", b"a", None).is_ok());
    }

    #[test]
    fn injected_faults_fail_operations_without_writing() {
        let store = Faulty::default();
        store.inject_fault(StorageError::Unavailable("disk".into()));
        assert_eq!(
            store.put("k", b"a", None),
            Err(StorageError::Unavailable("disk".into()))
        );
        assert!(store.snapshot().is_empty());
        assert!(store.put("k", b"a", None).is_ok());
    }

    #[test]
    fn entry_debug_hides_the_value() {
        let entry = Entry {
            value: b"refresh-token-value".to_vec(),
            version: 3,
        };
        assert!(!format!("{entry:?}").contains("refresh"));
    }
}
