//! The `storage` import: versioned values with compare-and-swap writes.

#[cfg(feature = "sealed")]
mod sealed;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sealed")]
pub use sealed::{
    InvalidKey, KeyRing, SEALED_PREFIXES, SealedStorage, SealingKey, is_sealed_key, seal, unseal,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{BUSY_TIMEOUT, Durability, OpenError, SqliteStorage};

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::HostState;
use crate::bindings::pleo::oauth::storage as wit;

pub use pleo_oauth_core::types::{Entry, StorageError};

/// A shared store of versioned values. Versions are assigned by the store
/// and never reused for a key, even after a delete (so a stale writer can
/// never match a recreated key: no ABA).
pub trait Storage: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError>;
    /// Writes when the key is at `expected` (or absent, for `None`); returns
    /// the new version.
    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError>;
    /// Deletes when the key is at `expected`.
    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError>;
}

/// In-memory storage for tests, shareable between instances, with fault
/// injection: queued faults are returned by the next operations instead of
/// running them.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    entries: BTreeMap<String, Entry>,
    last_version: u64,
    faults: VecDeque<StorageError>,
    /// Faults for the next writes (put or delete) to keys with a prefix.
    write_faults: Vec<(String, StorageError)>,
}

impl MemoryStorage {
    /// Makes the next operation fail with `error` (queued, in order).
    pub fn inject_fault(&self, error: StorageError) {
        self.lock().faults.push_back(error);
    }

    /// Makes the next write (put or delete) to a key starting with
    /// `prefix` fail with `error`; call it `n` times for `n` writes. Reads
    /// and other keys are unaffected: a fault in the middle of an operation.
    pub fn fail_write(&self, prefix: &str, error: StorageError) {
        self.lock().write_faults.push((prefix.to_owned(), error));
    }

    /// A snapshot of every key and entry, in key order.
    pub fn snapshot(&self) -> BTreeMap<String, Entry> {
        self.lock().entries.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().expect("storage lock")
    }
}

impl MemoryState {
    fn fault(&mut self) -> Result<(), StorageError> {
        self.faults.pop_front().map_or(Ok(()), Err)
    }

    fn write_fault(&mut self, key: &str) -> Result<(), StorageError> {
        self.fault()?;
        match self
            .write_faults
            .iter()
            .position(|(p, _)| key.starts_with(p))
        {
            Some(i) => Err(self.write_faults.remove(i).1),
            None => Ok(()),
        }
    }

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
        let mut state = self.lock();
        state.fault()?;
        Ok(state.entries.get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        let mut state = self.lock();
        state.write_fault(key)?;
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
        state.write_fault(key)?;
        state.check(key, Some(expected))?;
        state.entries.remove(key);
        Ok(())
    }
}

impl From<StorageError> for wit::StorageError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict => Self::Conflict,
            StorageError::Unavailable(why) => Self::Unavailable(why),
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
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_semantics() {
        check_contract(&MemoryStorage::default());
    }

    /// The storage contract (`wit/imports.wit`) that every backend keeps:
    /// compare-and-swap on put and delete, and versions never reused.
    pub(super) fn check_contract(store: &dyn Storage) {
        assert_eq!(store.get("k"), Ok(None));
        let v1 = store.put("k", b"a", None).unwrap();
        assert_eq!(
            store.put("k", b"b", None),
            Err(StorageError::Conflict),
            "must not exist"
        );
        assert_eq!(
            store.put("k", b"b", Some(v1 + 1)),
            Err(StorageError::Conflict),
            "wrong version"
        );
        let v2 = store.put("k", b"b", Some(v1)).unwrap();
        assert!(v2 > v1);
        assert_eq!(
            store.get("k").unwrap().unwrap(),
            Entry {
                value: b"b".to_vec(),
                version: v2
            }
        );
        assert_eq!(store.delete("k", v1), Err(StorageError::Conflict));
        store.delete("k", v2).unwrap();
        assert_eq!(store.get("k"), Ok(None));
        assert_eq!(
            store.delete("k", v2),
            Err(StorageError::Conflict),
            "already gone"
        );
        // A recreated key gets a fresh version: a stale v2 cannot match.
        let v3 = store.put("k", b"c", None).unwrap();
        assert!(v3 > v2, "versions are never reused");
    }

    #[test]
    fn injected_faults_fail_operations_without_writing() {
        let store = MemoryStorage::default();
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
