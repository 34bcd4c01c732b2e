//! The `log` import: structured events.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::HostState;
use crate::bindings::pleo::oauth::log as wit;

use pleo_oauth_core::events::Kind;
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
        let counter = match kind.parse() {
            Ok(Kind::RefreshSucceeded) => &self.refreshes,
            Ok(Kind::RefreshFailed) => &self.refresh_failures,
            Ok(Kind::ClientMisconfigured) => &self.client_errors,
            Ok(Kind::ReauthRequired) => &self.reauth_required,
            Ok(Kind::RotationRaceRecovered) => &self.race_recoveries,
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

/// How the real backend writes events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogStyle {
    /// Through `tracing`, fields as `key=value` in the message line.
    #[default]
    Text,
    /// One JSON object per line on stderr, the event's fields as keys of a
    /// `fields` object, so a log collector can index them.
    Json,
}

/// The real `log` backend: each event is counted, and written at its level
/// under the target `pleo_oauth::event` when the subscriber's filter lets
/// it through: as a `tracing` event, or as a JSON line of its own (tracing
/// cannot give an event field names known only at run time). A field that
/// holds an instant in Unix milliseconds (`...-at-ms`, `...-since-ms`,
/// `until-ms`) gets a companion without the `-ms` in RFC 3339, for people.
/// The guest's events carry no secret by construction.
#[derive(Debug, Default)]
pub struct TracingLog {
    pub counters: Counters,
    style: LogStyle,
}

impl TracingLog {
    pub fn new(style: LogStyle) -> Self {
        Self {
            counters: Counters::default(),
            style,
        }
    }
}

/// The event's fields, each instant followed by its RFC 3339 form.
pub fn with_times(fields: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(fields.len() * 2);
    for (key, value) in fields {
        out.push((key.clone(), value.clone()));
        let instant = key.ends_with("-at-ms") || key.ends_with("-since-ms") || key == "until-ms";
        if let (true, Some(time)) = (instant, rfc3339(value)) {
            out.push((key.trim_end_matches("-ms").to_owned(), time));
        }
    }
    out
}

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: &str) -> Option<String> {
    let ms: i64 = ms.parse().ok()?;
    let time = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(format!("{time:.3}"))
}

impl Log for TracingLog {
    fn emit(&self, event: Event) {
        self.counters.count(&event.kind);
        let fields = with_times(&event.fields);
        let connection = event.connection.as_deref().unwrap_or("-");
        macro_rules! emit {
            ($level:expr) => {{
                if !tracing::enabled!(target: "pleo_oauth::event", $level) {
                    return;
                }
                match self.style {
                    LogStyle::Text => {
                        let fields = fields
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ");
                        tracing::event!(
                            target: "pleo_oauth::event",
                            $level,
                            kind = %event.kind,
                            connection = %connection,
                            fields = %fields,
                            "{}",
                            event.message
                        )
                    }
                    LogStyle::Json => {
                        let now = jiff::Timestamp::now();
                        let line = serde_json::json!({
                            "timestamp": format!("{now:.6}"),
                            "level": $level.as_str(),
                            "target": "pleo_oauth::event",
                            "kind": event.kind,
                            "connection": event.connection,
                            "message": event.message,
                            "fields": fields
                                .into_iter()
                                .map(|(k, v)| (k, serde_json::Value::String(v)))
                                .collect::<serde_json::Map<_, _>>(),
                        });
                        // One write per line, so lines from threads do not interleave.
                        let _ = std::io::Write::write_all(
                            &mut std::io::stderr().lock(),
                            format!("{line}\n").as_bytes(),
                        );
                    }
                }
            }};
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
        let event = from_wit_event(event);
        self.timed(|backends| backends.log.emit(event));
    }
}

/// The event the guest emitted, as the backend takes it (shared with the
/// `steps` export's `emit` effect).
pub(crate) fn from_wit_event(event: wit::Event) -> Event {
    Event {
        at_ms: event.at_ms,
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
    }
}

#[cfg(test)]
mod style_tests {
    use super::*;

    #[test]
    fn instants_get_an_rfc3339_companion() {
        let fields = with_times(&[
            ("next-retry-at-ms".into(), "1700000000000".into()),
            ("attempt".into(), "3".into()),
        ]);
        assert_eq!(
            fields,
            [
                ("next-retry-at-ms".to_owned(), "1700000000000".to_owned()),
                (
                    "next-retry-at".to_owned(),
                    "2023-11-14T22:13:20.000Z".to_owned()
                ),
                ("attempt".to_owned(), "3".to_owned()),
            ]
        );
    }
}
