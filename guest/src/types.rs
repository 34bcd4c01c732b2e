//! HTTP shapes shared by the classification functions and, later, the
//! driver. They mirror the `types` and `http` interfaces of the WIT.

use std::fmt;

/// Header names whose values are credentials; their `Debug` is redacted.
const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// One HTTP header field line. Names compare case-insensitively (RFC 9110 §5.1).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether this field is named `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if SENSITIVE_HEADERS.iter().any(|s| self.is(s)) {
            &"[redacted]"
        } else {
            &self.value
        };
        f.debug_tuple("Header")
            .field(&self.name)
            .field(value)
            .finish()
    }
}

/// The values of every field line named `name`, in order.
pub fn header_values<'a>(
    headers: &'a [Header],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.is(name))
        .map(|h| h.value.as_str())
}

/// Why an HTTP exchange produced no response. Transient, except
/// `NoCredentials`, which needs an operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportError {
    Timeout,
    /// Not sent: no connection could be made.
    ConnectionRefused,
    Dns,
    Tls,
    BodyTooLarge,
    /// For operators; never holds a secret.
    Other(String),
    /// The connection broke after the request was written: the server may
    /// have acted on it.
    ConnectionLost,
    /// Not sent: the host holds no credentials for the client.
    NoCredentials,
}

impl TransportError {
    /// The failure in a few words, for events and status: never the
    /// free-text detail of `Other`.
    pub fn summary(&self) -> &'static str {
        match self {
            TransportError::Timeout => "timeout",
            TransportError::ConnectionRefused => "connection refused",
            TransportError::Dns => "dns",
            TransportError::Tls => "tls",
            TransportError::BodyTooLarge => "body too large",
            TransportError::Other(_) => "transport error",
            TransportError::ConnectionLost => "connection lost after sending",
            TransportError::NoCredentials => "no client credentials",
        }
    }

    /// Whether the request certainly never reached the server, so that it
    /// cannot have changed anything there.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            TransportError::ConnectionRefused
                | TransportError::Dns
                | TransportError::Tls
                | TransportError::NoCredentials
        )
    }
}

/// A complete HTTP response. `Debug` shows the body's length, not the body,
/// because a token response body holds tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// The HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One outbound request, for the `http` import. `Debug` shows the body's
/// length, not the body, because a token request body holds a refresh
/// token or a code.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
    /// The client whose credentials the host applies (RFC 6749 §2.3.1).
    pub client_auth: Option<String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("timeout_ms", &self.timeout_ms)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// The status and headers of a response, for classifying API responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<Header>,
}

/// A stored value and its version (the `storage` import). `Debug` hides
/// the value: stored tokens are secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub version: u64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("version", &self.version)
            .finish()
    }
}

/// Why a storage operation failed: the `storage-error` of `wit/types.wit`,
/// one type for what the storage import returns and what the exports
/// report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The version was not the expected one.
    #[error("the stored version was not the expected one")]
    Conflict,
    /// The store failed and nothing was written; the text never holds a
    /// stored value.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The operation was sent and its outcome is unknown: a write may or may
    /// not have taken effect. Re-read before acting again.
    #[error("storage outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A stored value could not be read: a newer record format, or
    /// damage. Found by the core (a store never inspects values); the text
    /// names the key and the format, never the value.
    #[error("a stored value could not be read: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// The case's name in the WIT, for events and logs (the text may be
    /// long; the kind is what operators count).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::Unavailable(_) => "unavailable",
            Self::OutcomeUnknown(_) => "outcome-unknown",
            Self::Corrupt(_) => "corrupt",
        }
    }
}

/// Severity of an event (the `log` import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One structured event. It never holds a token, a client secret, a code,
/// a verifier or a state value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened (Unix ms, by the `clock` import).
    pub at_ms: u64,
    pub level: Level,
    /// A stable kebab-case name, e.g. `reauth-completed`.
    pub kind: String,
    pub connection: Option<String>,
    pub fields: Vec<(String, String)>,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_credentials_and_bodies() {
        let response = Response {
            status: 200,
            headers: vec![
                Header::new("Set-Cookie", "sid=abc"),
                Header::new("Content-Type", "application/json"),
            ],
            body: b"{\"access_token\":\"tok\"}".to_vec(),
        };
        let printed = format!("{response:?}");
        assert!(
            !printed.contains("abc") && !printed.contains("tok"),
            "{printed}"
        );
        assert!(
            printed.contains("application/json") && printed.contains("<22 bytes>"),
            "{printed}"
        );
    }

    #[test]
    fn header_names_match_case_insensitively() {
        let headers = [
            Header::new("Retry-After", "1"),
            Header::new("retry-after", "2"),
            Header::new("x", "3"),
        ];
        assert_eq!(
            header_values(&headers, "RETRY-AFTER").collect::<Vec<_>>(),
            ["1", "2"]
        );
    }
}
