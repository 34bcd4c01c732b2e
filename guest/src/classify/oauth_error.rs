//! OAuth error responses (RFC 6749 §5.2).

/// Longest error code kept, in characters.
const MAX_CODE_CHARS: usize = 64;
/// Longest description kept, in characters.
const MAX_DESCRIPTION_CHARS: usize = 256;

/// An OAuth error code (RFC 6749 §5.2), with Pleo's `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// Pleo answers `invalid_token` to a dead refresh token (RFC 6750 §3.1 name).
    InvalidToken,
    ServerError,
    TemporarilyUnavailable,
    /// Any other code: only RFC 6749 §5.2 characters, at most 64.
    Other(String),
}

impl ErrorCode {
    /// Reads a code as a server sent it. Codes are case-sensitive (RFC 6749 §5.2).
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_token" => Self::InvalidToken,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Other(
                other
                    .chars()
                    .filter(|&c| is_error_char(c))
                    .take(MAX_CODE_CHARS)
                    .collect(),
            ),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidToken => "invalid_token",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other(code) => code,
        }
    }
}

/// `%x20-21 / %x23-5B / %x5D-7E`: the characters of `error` (RFC 6749 §5.2).
fn is_error_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

/// An OAuth error: the code and the server's description.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OAuthError {
    pub code: ErrorCode,
    /// `error_description`: at most 256 characters, control characters
    /// removed; `None` when absent, not a string, or empty once cleaned.
    pub description: Option<String>,
}

impl ErrorCode {
    /// The `error` member of an RFC 6749 §5.2 body (as RFC 7009 §2.2.1
    /// error responses carry), when the body is a JSON object with a
    /// string there.
    pub(crate) fn of_body(body: &[u8]) -> Option<Self> {
        let members = super::members::Members::parse(body)?;
        members.error.as_str().map(Self::parse)
    }
}

impl OAuthError {
    /// Reads an error from the `error` member and the `error_description`
    /// member when it is a string.
    pub(crate) fn from_members(code: &str, description: Option<&str>) -> Self {
        let description = description
            .map(|text| {
                text.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_DESCRIPTION_CHARS)
                    .collect::<String>()
            })
            .filter(|text| !text.is_empty());
        Self {
            code: ErrorCode::parse(code),
            description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_5_2_codes_round_trip() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_token",
            "server_error",
            "temporarily_unavailable",
        ] {
            let parsed = ErrorCode::parse(code);
            assert!(!matches!(parsed, ErrorCode::Other(_)), "{code}");
            assert_eq!(parsed.as_str(), code);
        }
    }

    #[test]
    fn rfc6749_5_2_unknown_codes_keep_only_allowed_characters() {
        assert_eq!(
            ErrorCode::parse("INVALID_GRANT"),
            ErrorCode::Other("INVALID_GRANT".into())
        );
        assert_eq!(
            ErrorCode::parse("a\"b\\c\u{7}d\u{e9}"),
            ErrorCode::Other("abcd".into())
        );
        assert_eq!(
            ErrorCode::parse(&"x".repeat(500)).as_str().len(),
            MAX_CODE_CHARS
        );
    }

    #[test]
    fn descriptions_are_cleaned_and_bounded() {
        let long = format!("line\nbreak{}", "y".repeat(1000));
        let error = OAuthError::from_members("invalid_grant", Some(&long));
        let description = error.description.unwrap();
        assert!(description.starts_with("linebreak"));
        assert_eq!(description.chars().count(), MAX_DESCRIPTION_CHARS);
        let empty = OAuthError::from_members("x", Some("\n"));
        assert_eq!(empty.description, None);
    }
}
