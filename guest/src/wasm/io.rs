//! The core's `Io`, carried out through the component's imports.

use super::bindings::pleo::oauth::{clock, http, log, random, storage, types as wt};
use crate::io::Io;
use crate::types::{Entry, Event, Level, Method, Request, Response, StorageError, TransportError};

/// The imports, as the core's `Io`.
pub(super) struct Imports;

impl From<wt::StorageError> for StorageError {
    fn from(error: wt::StorageError) -> Self {
        match error {
            wt::StorageError::Conflict => Self::Conflict,
            wt::StorageError::Unavailable(why) => Self::Unavailable(why),
            wt::StorageError::OutcomeUnknown(why) => Self::OutcomeUnknown(why),
            wt::StorageError::Corrupt(why) => Self::Corrupt(why),
        }
    }
}

impl From<StorageError> for wt::StorageError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict => Self::Conflict,
            StorageError::Unavailable(why) => Self::Unavailable(why),
            StorageError::OutcomeUnknown(why) => Self::OutcomeUnknown(why),
            StorageError::Corrupt(why) => Self::Corrupt(why),
        }
    }
}

impl Io for Imports {
    fn get(&mut self, key: &str) -> Result<Option<Entry>, StorageError> {
        Ok(storage::get(key)?.map(from_entry))
    }

    fn put(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        Ok(storage::put(key, value, expected)?)
    }

    fn delete(&mut self, key: &str, expected: u64) -> Result<(), StorageError> {
        Ok(storage::delete(key, expected)?)
    }

    fn keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        Ok(storage::keys(prefix, after, limit)?)
    }

    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        http::send(&to_request(request))
            .map(from_response)
            .map_err(TransportError::from)
    }

    fn random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(1024) {
            let bytes = random::bytes(chunk.len() as u32);
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn emit(&mut self, event: Event) {
        log::emit(&to_event(event));
    }

    fn now_ms(&mut self) -> u64 {
        clock::now_ms()
    }

    fn sleep_ms(&mut self, ms: u32) {
        clock::sleep_ms(ms);
    }
}

// The conversions of the imports' types, shared with the `steps` export,
// whose effects carry the same values.

pub(super) fn from_entry(entry: storage::Entry) -> Entry {
    Entry {
        value: entry.value,
        version: entry.version,
    }
}

pub(super) fn to_request(request: Request) -> http::Request {
    http::Request {
        method: match request.method {
            Method::Get => http::Method::Get,
            Method::Post => http::Method::Post,
        },
        url: request.url,
        headers: request
            .headers
            .into_iter()
            .map(|h| wt::Header {
                name: h.name,
                value: h.value,
            })
            .collect(),
        body: request.body,
        timeout_ms: request.timeout_ms,
        client_auth: request
            .client_auth
            .map(|client_id| http::ClientAuth { client_id }),
    }
}

pub(super) fn from_response(response: http::Response) -> Response {
    Response {
        status: response.status,
        headers: super::classify::headers(response.headers),
        body: response.body,
    }
}

pub(super) fn to_event(event: Event) -> log::Event {
    log::Event {
        at_ms: event.at_ms,
        level: match event.level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        },
        kind: event.kind,
        connection: event.connection,
        fields: event
            .fields
            .into_iter()
            .map(|(key, value)| log::Field { key, value })
            .collect(),
        message: event.message,
    }
}
