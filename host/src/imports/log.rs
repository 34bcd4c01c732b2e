//! The `log` import: structured events.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Counters an operator alerts on, kept from the events as they pass.
#[derive(Debug, Default)]
pub struct Counters {
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
    pub client_errors: AtomicU64,
    pub reauth_required: AtomicU64,
    pub race_recoveries: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CounterValues {
    pub refreshes: u64,
    pub refresh_failures: u64,
    pub client_errors: u64,
    pub reauth_required: u64,
    pub race_recoveries: u64,
}

impl Counters {
    fn count(&self, kind: &str) {
        let counter = match kind {
            "refresh-succeeded" => &self.refreshes,
            "refresh-failed" => &self.refresh_failures,
            "client-misconfigured" => &self.client_errors,
            "reauth-required" => &self.reauth_required,
            "rotation-race-recovered" => &self.race_recoveries,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn values(&self) -> CounterValues {
        CounterValues {
            refreshes: self.refreshes.load(Ordering::Relaxed),
            refresh_failures: self.refresh_failures.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            reauth_required: self.reauth_required.load(Ordering::Relaxed),
            race_recoveries: self.race_recoveries.load(Ordering::Relaxed),
        }
    }
}

/// The real `log` backend: each event becomes a `tracing` event (target
/// `pleo_oauth::event`) with `kind`, `connection` and the event's fields,
/// and is counted. The guest's events carry no secret by construction; the
/// subscriber (text or JSON lines) is the application's choice.
#[derive(Debug, Default)]
pub struct TracingLog {
    pub counters: Counters,
}

impl Log for TracingLog {
    fn emit(&self, event: Event) {
        self.counters.count(&event.kind);
        let fields = event
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let connection = event.connection.as_deref().unwrap_or("-");
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "pleo_oauth::event",
                    $level,
                    kind = %event.kind,
                    connection = %connection,
                    fields = %fields,
                    "{}",
                    event.message
                )
            };
        }
        match event.level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
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
