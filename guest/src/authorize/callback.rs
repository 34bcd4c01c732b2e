//! Parsing the authorisation response at the redirect URI (RFC 6749
//! §4.1.2, §4.1.2.1; RFC 9207 `iss`).

use serde::{Deserialize, Serialize};

use crate::connection::config::{authority, is_scheme};
use crate::secret::Secret;

/// Longest callback accepted, in bytes.
pub const MAX_CALLBACK: usize = 8192;

/// Why a callback was rejected before any exchange. Each is a security
/// event: a forged, replayed or mixed-up response looks like one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectionReason {
    /// Not a URL or query string, or too long.
    Malformed,
    /// No `state`.
    MissingState,
    /// `state`, `code`, `iss` or `error` appears more than once.
    DuplicateParameter,
    /// No pending authorisation has this state: forged, already used, or
    /// superseded by a newer authorisation of the same connection.
    UnknownState,
    /// The pending authorisation expired.
    ExpiredState,
    /// The state belongs to another connection than the one expected.
    ConnectionMismatch,
    /// `iss` differs from the connection's issuer (RFC 9207 §2.4).
    IssuerMismatch,
    /// No `iss` although the server always sends one (RFC 9207 §2.4).
    IssuerMissing,
    /// Neither `code` nor `error`.
    MissingCode,
}

impl RejectionReason {
    /// The check that failed, in words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "the callback URL is malformed",
            Self::MissingState => "the callback has no state",
            Self::DuplicateParameter => "the callback repeats a parameter",
            Self::UnknownState => {
                "the callback's state matches no pending authorisation (already used, superseded by a newer one, or forged)"
            }
            Self::ExpiredState => "the authorisation took too long and expired",
            Self::ConnectionMismatch => "the callback belongs to another connection",
            Self::IssuerMismatch => "the callback comes from another authorisation server (iss)",
            Self::IssuerMissing => "the callback does not say which server sent it (iss)",
            Self::MissingCode => "the callback carries neither a code nor an error",
        }
    }
}

/// Authorisation error codes (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorizationErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    /// Any other code: RFC 6749 characters only, at most 64.
    Other(String),
}

impl AuthorizationErrorCode {
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "unauthorized_client" => Self::UnauthorizedClient,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "invalid_scope" => Self::InvalidScope,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Other(crate::classify::ErrorCode::parse(other).as_str().to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other(code) => code,
        }
    }
}

/// An error response at the redirect URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthorizationError {
    pub code: AuthorizationErrorCode,
    /// `error_description`: at most 256 characters, control characters removed.
    pub description: Option<String>,
}

/// What the callback said, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub state: Secret,
    pub iss: Option<String>,
    pub result: Result<Secret, AuthorizationError>,
}

/// A full URL begins with a scheme and `://` (RFC 3986 §3.1, §3.2). A query
/// string may hold `://` too, in a value (`iss`, `error_uri`, RFC 3986 §3.4
/// allows `:` and `/` there), but never in its first name.
fn is_full_url(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(scheme, _)| is_scheme(scheme))
}

/// Parses the full redirect URL or just its query string (with or without
/// the leading `?`). Unknown parameters are ignored (RFC 6749 §3.1).
pub fn parse(callback: &str) -> Result<Callback, RejectionReason> {
    if callback.len() > MAX_CALLBACK {
        return Err(RejectionReason::Malformed);
    }
    let query = if is_full_url(callback) {
        // Only the query is read (RFC 3986 §3.4: after the first `?`, up to
        // a `#`); the rest must still look like a URL that reached an HTTP
        // server: printable ASCII (browsers percent-encode, host names
        // arrive in punycode) and an authority. No URL parser is involved,
        // so no host name is ever mapped.
        if !callback.bytes().all(|b| b.is_ascii_graphic()) || authority(callback).is_none() {
            return Err(RejectionReason::Malformed);
        }
        let url = callback.split_once('#').map_or(callback, |(url, _)| url);
        url.split_once('?').map_or("", |(_, query)| query)
    } else {
        // A query string ends at a `#` too (RFC 3986 §3.4): what follows is
        // a fragment some servers append (`#_=_`), not part of a value.
        let query = callback.strip_prefix('?').unwrap_or(callback);
        query.split_once('#').map_or(query, |(query, _)| query)
    };
    let (mut state, mut code, mut iss, mut error, mut description) = (None, None, None, None, None);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "state" => &mut state,
            "code" => &mut code,
            "iss" => &mut iss,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(RejectionReason::DuplicateParameter);
        }
    }
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or(RejectionReason::MissingState)?;
    // An empty `error` is no error code (RFC 6749 §4.1.2.1, Appendix A.7:
    // one character at least), as an empty `code` is no code.
    let error = error.filter(|e| !e.is_empty());
    let result = match (error, code) {
        (Some(error), _) => Err(AuthorizationError {
            code: AuthorizationErrorCode::parse(&error),
            description: description
                .map(|d| {
                    d.chars()
                        .filter(|c| !c.is_control())
                        .take(256)
                        .collect::<String>()
                })
                .filter(|d| !d.is_empty()),
        }),
        (None, Some(code)) if !code.is_empty() => Ok(Secret::new(code)),
        (None, _) => return Err(RejectionReason::MissingCode),
    };
    Ok(Callback {
        state: Secret::new(state),
        iss,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_4_1_2_success_as_url_or_query() {
        for text in [
            "https://app.example/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&iss=https%3A%2F%2Fauth.example",
            "?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&iss=https%3A%2F%2Fauth.example",
            "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&iss=https%3A%2F%2Fauth.example&unknown=1",
            // RFC 3986 §3.4: `:` and `/` may stand unencoded in a query.
            "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&iss=https://auth.example",
            "?code=SplxlOBeZQQYbYS6WxSbIA&iss=https://auth.example&state=xyz",
            "HTTPS://app.example/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&iss=https://auth.example",
            // RFC 3986 §3.4: a query string ends at `#`, as a full URL's does.
            "?iss=https://auth.example&code=SplxlOBeZQQYbYS6WxSbIA&state=xyz#_=_",
            "state=xyz&iss=https://auth.example&code=SplxlOBeZQQYbYS6WxSbIA#code=other",
        ] {
            let callback = parse(text).unwrap();
            assert_eq!(callback.state.expose(), "xyz");
            assert_eq!(callback.iss.as_deref(), Some("https://auth.example"));
            assert_eq!(callback.result.unwrap().expose(), "SplxlOBeZQQYbYS6WxSbIA");
        }
    }

    /// RFC 6749 §4.1.2.1 and Appendix A.7: `error` has one character at
    /// least. An empty one is no error, as an empty `code` is no code.
    #[test]
    fn rfc6749_a_7_an_empty_error_is_no_error() {
        let callback = parse("?error=&code=abc&state=xyz").unwrap();
        assert_eq!(callback.result.unwrap().expose(), "abc");
        assert_eq!(
            parse("?error=&state=xyz").err(),
            Some(RejectionReason::MissingCode)
        );
    }

    #[test]
    fn rfc6749_4_1_2_1_error_response() {
        let callback =
            parse("?error=access_denied&error_description=User%20said%20no&state=xyz").unwrap();
        let error = callback.result.unwrap_err();
        assert_eq!(error.code, AuthorizationErrorCode::AccessDenied);
        assert_eq!(error.description.as_deref(), Some("User said no"));
        // An unencoded `error_uri` is a query value, not a URL to parse.
        let callback =
            parse("?error=access_denied&error_uri=https://auth.example/why&state=xyz").unwrap();
        assert_eq!(callback.state.expose(), "xyz");
        assert!(callback.result.is_err());
    }

    #[test]
    fn rejections() {
        assert_eq!(parse("?code=a"), Err(RejectionReason::MissingState));
        assert_eq!(parse("?code=a&state="), Err(RejectionReason::MissingState));
        assert_eq!(parse("?state=a"), Err(RejectionReason::MissingCode));
        assert_eq!(
            parse("?code=a&state=b&state=c"),
            Err(RejectionReason::DuplicateParameter)
        );
        assert_eq!(
            parse("?code=a&code=a&state=b"),
            Err(RejectionReason::DuplicateParameter)
        );
        assert_eq!(
            parse("?code=a&state=b&iss=x&iss=x"),
            Err(RejectionReason::DuplicateParameter)
        );
        assert_eq!(
            parse("https://[bad/cb?code=a&state=b"),
            Err(RejectionReason::Malformed)
        );
        assert_eq!(
            parse(&"a".repeat(MAX_CALLBACK + 1)),
            Err(RejectionReason::Malformed)
        );
        // Found by fuzzing: a host name of upper-case ASCII and another
        // character reached an assertion in `idna_adapter` (debug builds).
        assert_eq!(
            parse("http://OA\u{FFFD}!?code=a&state=b"),
            Err(RejectionReason::Malformed)
        );
        // A percent-encoded host byte is a valid authority (RFC 3986
        // §3.2.2); no host name is mapped, so nothing to trip on.
        assert!(parse("https://A%d2/cb?code=a&state=b").is_ok());
        let upper = parse("HTTPS://App.Example/cb?code=a&state=B#x").unwrap();
        assert_eq!(upper.state.expose(), "B", "the query keeps its case");
        // Found by fuzzing too: WHATWG parsers skip extra slashes, which
        // took upper-case letters to the IDNA mapping by another way.
        assert_eq!(
            parse("https:////E-0gio.X\u{e9}/cb?code=a&state=b"),
            Err(RejectionReason::Malformed)
        );
        assert_eq!(
            parse("https:////example/cb?code=a&state=b"),
            Err(RejectionReason::Malformed)
        );
        assert_eq!(
            parse("https://app.example/c b?code=a&state=b"),
            Err(RejectionReason::Malformed)
        );
    }
}
