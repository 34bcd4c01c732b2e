//! Fault injection over any store, for tests: the storage failures a real
//! backend can produce (`wit/imports.wit`), on demand, over memory,
//! SQLite or PostgreSQL alike, so that a scenario runs unchanged on each.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{Entry, MemoryStorage, Storage, StorageError, all_keys};

/// A store whose next operations fail as told, then behave as the store
/// underneath.
pub struct Faulty {
    inner: Arc<dyn Storage>,
    faults: Mutex<Faults>,
}

#[derive(Default)]
struct Faults {
    /// For the next operations, of any kind.
    any: VecDeque<StorageError>,
    /// For the next writes (put or delete) to keys with a prefix.
    writes: Vec<(String, StorageError)>,
    /// Prefixes of the next writes that take effect and then report
    /// `OutcomeUnknown`, as a lost connection to a database server would.
    lost_outcomes: Vec<String>,
}

impl Default for Faulty {
    /// Over a fresh [`MemoryStorage`].
    fn default() -> Self {
        Self::new(Arc::new(MemoryStorage::default()))
    }
}

impl Faulty {
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            faults: Mutex::default(),
        }
    }

    /// Makes the next operation fail with `error` (queued, in order),
    /// without reaching the store.
    pub fn inject_fault(&self, error: StorageError) {
        self.lock().any.push_back(error);
    }

    /// Makes the next write (put or delete) to a key starting with
    /// `prefix` fail with `error`; call it `n` times for `n` writes. Reads
    /// and other keys are unaffected: a fault in the middle of an operation.
    pub fn fail_write(&self, prefix: &str, error: StorageError) {
        self.lock().writes.push((prefix.to_owned(), error));
    }

    /// Makes the next write (put or delete) to a key starting with `prefix`
    /// take effect and then fail with `OutcomeUnknown`: the reply lost on
    /// the way back. Call it `n` times for `n` writes.
    pub fn lose_write_outcome(&self, prefix: &str) {
        self.lock().lost_outcomes.push(prefix.to_owned());
    }

    /// Every key and entry of the store underneath, in key order.
    pub fn snapshot(&self) -> BTreeMap<String, Entry> {
        all_keys(self.inner.as_ref(), "")
            .expect("list the store")
            .into_iter()
            .filter_map(|key| {
                let entry = self.inner.get(&key).expect("read the store")?;
                Some((key, entry))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().expect("faults lock")
    }

    fn before_any(&self) -> Result<(), StorageError> {
        self.lock().any.pop_front().map_or(Ok(()), Err)
    }

    fn before_write(&self, key: &str) -> Result<(), StorageError> {
        self.before_any()?;
        let mut faults = self.lock();
        match faults.writes.iter().position(|(p, _)| key.starts_with(p)) {
            Some(i) => Err(faults.writes.remove(i).1),
            None => Ok(()),
        }
    }

    /// After a write took effect: `OutcomeUnknown` when its reply is to be
    /// lost.
    fn after_write(&self, key: &str) -> Result<(), StorageError> {
        let mut faults = self.lock();
        match faults.lost_outcomes.iter().position(|p| key.starts_with(p)) {
            Some(i) => {
                faults.lost_outcomes.remove(i);
                Err(StorageError::OutcomeUnknown("injected: reply lost".into()))
            }
            None => Ok(()),
        }
    }
}

impl Storage for Faulty {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.before_any()?;
        self.inner.get(key)
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        self.before_write(key)?;
        let version = self.inner.put(key, value, expected)?;
        self.after_write(key)?;
        Ok(version)
    }

    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        self.before_write(key)?;
        self.inner.delete(key, expected)?;
        self.after_write(key)
    }

    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.before_any()?;
        self.inner.keys(prefix, after, limit)
    }
}
