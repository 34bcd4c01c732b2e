//! Structured events (the `log` import in `wit/imports.wit`). Every constructor takes only values that
//! are safe to log: kinds, connection ids, reasons, error codes, counts and
//! times. No token, secret, code, verifier or state can be passed in.

use crate::io::Io;
use crate::types::{Event, Level};

/// Builds and emits one event.
pub(crate) fn emit(
    io: &mut dyn Io,
    level: Level,
    kind: &str,
    connection: &str,
    fields: &[(&str, String)],
    message: &str,
) {
    io.emit(Event {
        level,
        kind: kind.to_owned(),
        connection: Some(connection.to_owned()),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        message: message.to_owned(),
    });
}

/// The kebab-case name serde gives a unit variant: how reasons and states
/// appear in event fields.
pub fn kebab<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
