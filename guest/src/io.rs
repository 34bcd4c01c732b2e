//! What the lifecycle logic needs from the outside world, as one small
//! synchronous trait. The component implements it with its imports; the
//! core's tests with in-memory fakes. The logic itself is written once over
//! [`crate::effects::Effects`]; [`crate::effects::drive`] performs each of
//! its effects through an `Io` as soon as it is asked for. A driver reads the clock once per call and passes
//! it in, so one call's decisions see one instant; the refresh reads it
//! again, as an input like any other, only where a pause would matter: right
//! before a request goes out and before its result is stored.

use crate::types::{Entry, Event, Request, Response, StorageError, TransportError};

pub trait Io {
    /// `storage.get`.
    fn get(&mut self, key: &str) -> Result<Option<Entry>, StorageError>;
    /// `storage.put`: writes when the key is at `expected` (absent for `None`).
    fn put(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError>;
    /// `storage.delete`: deletes when the key is at `expected`.
    fn delete(&mut self, key: &str, expected: u64) -> Result<(), StorageError>;
    /// `storage.keys`: at most `limit` keys starting with `prefix`, in byte
    /// order, after `after` when given.
    fn keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError>;
    /// `http.send`.
    fn send(&mut self, request: Request) -> Result<Response, TransportError>;
    /// `random.bytes`: fills `buf` from a CSPRNG.
    fn random(&mut self, buf: &mut [u8]);
    /// `log.emit`.
    fn emit(&mut self, event: Event);
    /// `clock.now-ms`: the time now, for the checks that must not trust the
    /// instant the call started at.
    fn now_ms(&mut self) -> u64;
    /// `clock.sleep-ms`: waits, to space out retries of a write that must
    /// not be lost.
    fn sleep_ms(&mut self, ms: u32);
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory `Io` for the core's own tests.

    use std::collections::{BTreeMap, VecDeque};

    use super::*;

    /// Runs when a request is sent, before the scripted answer: another
    /// worker acting on the shared store while this one waits on the network.
    pub type SendHook = Box<dyn FnMut(&mut BTreeMap<String, Entry>, &mut u64) + Send>;

    /// Another worker's operation on the shared store.
    pub type Operation = Box<dyn FnOnce(&mut FakeIo) + Send>;

    /// Runs `operation` as another worker on `store`: its own requests,
    /// events and random bytes (another state, another verifier).
    fn as_other_worker(
        store: &mut BTreeMap<String, Entry>,
        version: &mut u64,
        operation: Operation,
    ) {
        let mut other = FakeIo {
            store: std::mem::take(store),
            last_version: *version,
            counter: u64::MAX / 3,
            ..FakeIo::default()
        };
        operation(&mut other);
        *store = other.store;
        *version = other.last_version;
    }

    #[derive(Default)]
    pub struct FakeIo {
        pub store: BTreeMap<String, Entry>,
        pub last_version: u64,
        pub faults: VecDeque<StorageError>,
        /// Faults for writes (put or delete) to keys with this prefix.
        pub write_faults: Vec<(String, StorageError)>,
        pub on_send: Option<SendHook>,
        /// Runs after the first read of this key once a request was sent.
        pub after_read: Option<(String, Operation)>,
        /// A request was sent (since `after_read` was set).
        pub has_sent: bool,
        pub responses: VecDeque<Result<Response, TransportError>>,
        pub sent: Vec<Request>,
        pub events: Vec<Event>,
        pub counter: u64,
        /// The clock `now_ms` reads; `sleep_ms` advances it.
        pub clock: u64,
        /// Added to the clock at each `send`: a request that takes this long.
        pub send_ms: u64,
    }

    impl FakeIo {
        pub fn respond(&mut self, response: Result<Response, TransportError>) {
            self.responses.push_back(response);
        }

        /// At the next request, before its answer, runs `operation` as
        /// another worker on the shared store: a user acting while this
        /// worker waits on the network. Its requests and events are its own.
        pub fn meanwhile(&mut self, operation: impl FnOnce(&mut FakeIo) + Send + 'static) {
            let mut operation: Option<Operation> = Some(Box::new(operation));
            self.on_send = Some(Box::new(move |store, version| {
                if let Some(operation) = operation.take() {
                    as_other_worker(store, version, operation);
                }
            }));
        }

        /// Like [`Self::meanwhile`], but once this worker has sent its next
        /// request, right after it first reads `key`: between a read and
        /// the write that acts on it.
        pub fn meanwhile_after_reading(
            &mut self,
            key: &str,
            operation: impl FnOnce(&mut FakeIo) + Send + 'static,
        ) {
            self.has_sent = false;
            self.after_read = Some((key.to_owned(), Box::new(operation)));
        }

        pub fn kinds(&self) -> Vec<&str> {
            self.events.iter().map(|e| e.kind.as_str()).collect()
        }

        fn write_fault(&mut self, key: &str) -> Result<(), StorageError> {
            if let Some(fault) = self.faults.pop_front() {
                return Err(fault);
            }
            match self
                .write_faults
                .iter()
                .position(|(p, _)| key.starts_with(p))
            {
                Some(i) => Err(self.write_faults.remove(i).1),
                None => Ok(()),
            }
        }
    }

    impl Io for FakeIo {
        fn get(&mut self, key: &str) -> Result<Option<Entry>, StorageError> {
            if let Some(fault) = self.faults.pop_front() {
                return Err(fault);
            }
            let entry = self.store.get(key).cloned();
            if self.has_sent && self.after_read.as_ref().is_some_and(|(k, _)| k == key) {
                let (_, operation) = self.after_read.take().expect("checked");
                as_other_worker(&mut self.store, &mut self.last_version, operation);
            }
            Ok(entry)
        }

        fn put(
            &mut self,
            key: &str,
            value: &[u8],
            expected: Option<u64>,
        ) -> Result<u64, StorageError> {
            self.write_fault(key)?;
            if self.store.get(key).map(|e| e.version) != expected {
                return Err(StorageError::Conflict);
            }
            self.last_version += 1;
            self.store.insert(
                key.into(),
                Entry {
                    value: value.to_vec(),
                    version: self.last_version,
                },
            );
            Ok(self.last_version)
        }

        fn delete(&mut self, key: &str, expected: u64) -> Result<(), StorageError> {
            self.write_fault(key)?;
            if self.store.get(key).map(|e| e.version) != Some(expected) {
                return Err(StorageError::Conflict);
            }
            self.store.remove(key);
            Ok(())
        }

        fn keys(
            &mut self,
            prefix: &str,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<String>, StorageError> {
            use std::ops::Bound;
            let start = match after {
                Some(after) if after >= prefix => Bound::Excluded(after),
                _ => Bound::Included(prefix),
            };
            Ok(self
                .store
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(key, _)| key)
                .take_while(|key| key.starts_with(prefix))
                .take(limit as usize)
                .cloned()
                .collect())
        }

        fn send(&mut self, request: Request) -> Result<Response, TransportError> {
            self.sent.push(request);
            self.has_sent = true;
            self.clock += self.send_ms;
            if let Some(hook) = &mut self.on_send {
                hook(&mut self.store, &mut self.last_version);
            }
            self.responses
                .pop_front()
                .unwrap_or_else(|| Err(TransportError::Other("no scripted response".into())))
        }

        /// A counter, not randomness: distinct and predictable.
        fn random(&mut self, buf: &mut [u8]) {
            for byte in buf.iter_mut() {
                self.counter = self
                    .counter
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *byte = (self.counter >> 56) as u8;
            }
        }

        fn emit(&mut self, event: Event) {
            self.events.push(event);
        }

        fn now_ms(&mut self) -> u64 {
            self.clock
        }

        fn sleep_ms(&mut self, ms: u32) {
            self.clock += u64::from(ms);
        }
    }
}
