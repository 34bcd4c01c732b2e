//! The core run natively with the same backends as a component instance:
//! the comparison the conformance tests and benchmarks make.

use pleo_oauth_core::io::Io;
use pleo_oauth_core::types::{Entry, Event, Request, Response, StorageError, TransportError};

use crate::Backends;

/// [`Backends`] as the core's `Io`.
pub struct NativeIo<'a>(pub &'a Backends);

impl Io for NativeIo<'_> {
    fn get(&mut self, key: &str) -> Result<Option<Entry>, StorageError> {
        self.0.storage.get(key)
    }

    fn put(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        self.0.storage.put(key, value, expected)
    }

    fn delete(&mut self, key: &str, expected: u64) -> Result<(), StorageError> {
        self.0.storage.delete(key, expected)
    }

    fn keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.0.storage.keys(prefix, after, limit)
    }

    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        self.0.http.send(request)
    }

    fn random(&mut self, buf: &mut [u8]) {
        self.0.random.fill(buf);
    }

    fn emit(&mut self, event: Event) {
        self.0.log.emit(event);
    }

    fn now_ms(&mut self) -> u64 {
        self.0.clock.now_ms()
    }

    fn sleep_ms(&mut self, ms: u32) {
        self.0
            .clock
            .sleep_ms(ms.min(crate::imports::clock::MAX_SLEEP_MS));
    }
}
