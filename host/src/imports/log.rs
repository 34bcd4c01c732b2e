//! The `log` import: structured events.

use std::sync::Mutex;

use super::HostState;
use crate::bindings::pleo::oauth::log as wit;

pub use pleo_oauth_core::types::{Event, Level};

pub trait Log: Send + Sync {
    fn emit(&self, event: Event);
}

/// A test backend that keeps every event.
#[derive(Debug, Default)]
pub struct CollectingLog(Mutex<Vec<Event>>);

impl CollectingLog {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().expect("log lock").clone()
    }
}

impl Log for CollectingLog {
    fn emit(&self, event: Event) {
        self.0.lock().expect("log lock").push(event);
    }
}

impl wit::Host for HostState {
    fn emit(&mut self, event: wit::Event) {
        let event = Event {
            level: match event.level {
                wit::Level::Trace => Level::Trace,
                wit::Level::Debug => Level::Debug,
                wit::Level::Info => Level::Info,
                wit::Level::Warn => Level::Warn,
                wit::Level::Error => Level::Error,
            },
            kind: event.kind,
            connection: event.connection,
            fields: event.fields.into_iter().map(|f| (f.key, f.value)).collect(),
            message: event.message,
        };
        self.timed(|backends| backends.log.emit(event));
    }
}
