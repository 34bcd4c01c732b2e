//! Verdicts on token-endpoint responses (RFC 6749 §5.1, §5.2; Pleo's
//! refresh-token rules).

use super::members::{self, Member, Members};
use super::oauth_error::{ErrorCode, OAuthError};
use super::retry_after::retry_after_header;
use crate::secret::Secret;
use crate::types::{Response, TransportError};

/// Largest token-endpoint body that is parsed, in bytes. Token responses are
/// a few hundred bytes; anything this large is a broken or hostile server.
pub const MAX_TOKEN_BODY: usize = 65_536;
/// Longest `expires_in` accepted, in seconds (one year). Longer is absurd for
/// an access token that Pleo says is short-lived.
pub const MAX_EXPIRES_IN: u32 = 31_536_000;
/// Longest access or refresh token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The grant a token-endpoint request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantKind {
    /// RFC 6749 §4.1.3.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
}

/// A usable token set (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenSet {
    #[serde(deserialize_with = "secret")]
    pub access_token: Secret,
    /// Seconds, 1 to [`MAX_EXPIRES_IN`], when the server said.
    pub expires_in: Option<u32>,
    #[serde(default, deserialize_with = "optional_secret")]
    pub refresh_token: Option<Secret>,
    /// The granted scopes; `None` means "as requested" (RFC 6749 §5.1).
    pub scope: Option<Vec<String>>,
}

/// The conformance vectors spell an expected token set out in JSON. The
/// in-memory [`Secret`] has no `Deserialize` (nor `Serialize`) of its own,
/// so that no other type holding one can be decoded or encoded by accident.
fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    <String as serde::Deserialize>::deserialize(deserializer).map(Secret::new)
}

/// [`secret`], for the optional refresh token.
fn optional_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(deserializer)
        .map(|value| value.map(Secret::new))
}

/// Why the user must authorise again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantRejection {
    /// Refresh answered `invalid_grant` or `invalid_token` (RFC 6749 §5.2, §6).
    RefreshTokenRejected,
    /// Code exchange answered `invalid_grant` or `invalid_token` (RFC 6749 §4.1.3).
    AuthorizationCodeRejected,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Reauth {
    pub reason: GrantRejection,
    pub error: OAuthError,
}

/// Why a response with no OAuth error is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidResponse {
    NotJson,
    BodyTooLarge,
    InvalidErrorMember,
    MissingAccessToken,
    InvalidAccessToken,
    MissingTokenType,
    UnsupportedTokenType,
    InvalidExpiresIn,
    InvalidRefreshToken,
    InvalidScope,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransientCause {
    /// A status with no OAuth error in a JSON body.
    Status(u16),
    /// `server_error`, `temporarily_unavailable`, or an unknown code.
    #[serde(rename = "oauth")]
    OAuth(OAuthError),
    InvalidResponse(InvalidResponse),
    Transport(TransportError),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Transient {
    pub cause: TransientCause,
    /// Unix milliseconds from `Retry-After`, never before `now`.
    pub retry_at_ms: Option<u64>,
}

/// The verdict on a token-endpoint response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenOutcome {
    Success(TokenSet),
    Reauthenticate(Reauth),
    ClientMisconfigured(OAuthError),
    RequestInvalid(OAuthError),
    Transient(Transient),
    /// Not sent: the host holds no credentials for this confidential client.
    CredentialsMissing,
}

/// Classifies what a token-endpoint request produced.
///
/// A JSON `error` member decides the verdict whatever the status, because
/// some servers answer 200 or 401 with one (RFC 6749 §5.2 defines the member, not the status). Without one, a 2xx
/// must be a valid Bearer token response (RFC 6749 §5.1), and anything else
/// is transient: never a reason to discard tokens.
pub fn token_response(
    grant: GrantKind,
    response: Result<&Response, &TransportError>,
    now_ms: u64,
) -> TokenOutcome {
    let response = match response {
        Ok(response) => response,
        Err(TransportError::NoCredentials) => return TokenOutcome::CredentialsMissing,
        Err(error) => return transient(TransientCause::Transport(error.clone()), None),
    };
    let retry_at_ms = retry_after_header(&response.headers, now_ms);
    let success = (200..300).contains(&response.status);
    // A body that is not read, or not understood, holds no OAuth error: a
    // non-2xx is then judged by its status, like any other non-2xx without one.
    let unusable = |invalid| {
        let cause = if success {
            TransientCause::InvalidResponse(invalid)
        } else {
            TransientCause::Status(response.status)
        };
        transient(cause, retry_at_ms)
    };
    if response.body.len() > MAX_TOKEN_BODY {
        return unusable(InvalidResponse::BodyTooLarge);
    }
    let members = Members::parse(&response.body);
    // `"error": null` means no error, as `null` means "not given" for every member.
    if let Some(error) = members.as_ref().and_then(|m| m.error.present()) {
        let Some(code) = error.as_str() else {
            return transient(
                TransientCause::InvalidResponse(InvalidResponse::InvalidErrorMember),
                retry_at_ms,
            );
        };
        let description = members.as_ref().and_then(|m| m.error_description.as_str());
        let repeated = members.as_ref().is_some_and(|m| m.repeated_error);
        let error = OAuthError::from_members(code, description);
        return match judge_error(grant, error, retry_at_ms) {
            // Discarding tokens takes a body that is JSON in every part, not
            // only in the members read, with one `error`.
            TokenOutcome::Reauthenticate(_)
                if repeated || !members::well_formed(&response.body) =>
            {
                unusable(InvalidResponse::NotJson)
            }
            verdict => verdict,
        };
    }
    let (true, Some(members)) = (success, members) else {
        return unusable(InvalidResponse::NotJson);
    };
    match token_set(&members, grant) {
        Ok(tokens) => TokenOutcome::Success(tokens),
        Err(invalid) => transient(TransientCause::InvalidResponse(invalid), retry_at_ms),
    }
}

fn transient(cause: TransientCause, retry_at_ms: Option<u64>) -> TokenOutcome {
    TokenOutcome::Transient(Transient { cause, retry_at_ms })
}

/// The classification policy for OAuth error codes (RFC 6749 §5.2), with
/// Pleo's rule that a rejected refresh token is terminal.
fn judge_error(grant: GrantKind, error: OAuthError, retry_at_ms: Option<u64>) -> TokenOutcome {
    match error.code {
        // Pleo: a rejected refresh token is terminal; do not retry.
        ErrorCode::InvalidGrant | ErrorCode::InvalidToken => TokenOutcome::Reauthenticate(Reauth {
            reason: match grant {
                GrantKind::RefreshToken => GrantRejection::RefreshTokenRejected,
                GrantKind::AuthorizationCode => GrantRejection::AuthorizationCodeRejected,
            },
            error,
        }),
        ErrorCode::InvalidClient
        | ErrorCode::UnauthorizedClient
        | ErrorCode::UnsupportedGrantType => TokenOutcome::ClientMisconfigured(error),
        ErrorCode::InvalidRequest | ErrorCode::InvalidScope => TokenOutcome::RequestInvalid(error),
        // Unknown codes are never a reason to discard tokens.
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable | ErrorCode::Other(_) => {
            transient(TransientCause::OAuth(error), retry_at_ms)
        }
    }
}

/// Validates a success body (RFC 6749 §5.1).
///
/// The members that make the tokens usable are always checked: the access
/// token, a refresh token, and a token type other than Bearer. What only
/// describes the tokens is forgiven on a refresh: an invalid `expires_in`
/// or `scope` is dropped as if the server had not sent it, and a missing
/// `token_type` is taken as Bearer, the type the code exchange checked for
/// this grant. The server has already rotated the refresh token (Pleo does
/// on every refresh), so refusing the response would lose the new one, and
/// the next refresh would present the old one, which Pleo's reuse detection
/// answers by revoking the grant. A code exchange stays strict: refusing it
/// loses no grant the user had, and shows a broken server at once.
fn token_set(members: &Members<'_>, grant: GrantKind) -> Result<TokenSet, InvalidResponse> {
    let access_token = match members.access_token.present() {
        None => return Err(InvalidResponse::MissingAccessToken),
        Some(value) => token_value(value).ok_or(InvalidResponse::InvalidAccessToken)?,
    };
    match members.token_type.present() {
        None if grant == GrantKind::RefreshToken => {}
        None => return Err(InvalidResponse::MissingTokenType),
        // RFC 6749 §7.1 / RFC 6750: the type name is case-insensitive.
        Some(Member::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(InvalidResponse::UnsupportedTokenType),
    }
    let refresh_token = match members.refresh_token.present() {
        None => None,
        Some(value) => Some(token_value(value).ok_or(InvalidResponse::InvalidRefreshToken)?),
    };
    let expires_in = match members.expires_in.present() {
        None => None,
        Some(value) => match expires_in(value) {
            Some(seconds) => Some(seconds),
            None => dropped_on_refresh(grant, InvalidResponse::InvalidExpiresIn)?,
        },
    };
    let scope = match members.scope.present() {
        None => None,
        Some(value) => match scope(value) {
            Some(scopes) => Some(scopes),
            None => dropped_on_refresh(grant, InvalidResponse::InvalidScope)?,
        },
    };
    Ok(TokenSet {
        access_token,
        expires_in,
        refresh_token,
        scope,
    })
}

/// An invalid describing member: absent on a refresh, refused on a code
/// exchange ([`token_set`]).
fn dropped_on_refresh<T>(
    grant: GrantKind,
    invalid: InvalidResponse,
) -> Result<Option<T>, InvalidResponse> {
    match grant {
        GrantKind::AuthorizationCode => Err(invalid),
        GrantKind::RefreshToken => Ok(None),
    }
}

/// A token: 1 to [`MAX_TOKEN_LEN`] characters of `%x21-7E` (RFC 6749
/// Appendix A.12 and A.17 allow VSCHAR; a space could not be sent in an
/// `Authorization` header, and a control character would be header injection).
fn token_value(value: &Member<'_>) -> Option<Secret> {
    let text = value.as_str()?;
    let valid = !text.is_empty()
        && text.len() <= MAX_TOKEN_LEN
        && text.bytes().all(|b| (0x21..=0x7e).contains(&b));
    valid.then(|| Secret::new(text))
}

/// `expires_in`: a whole number of seconds, 1 to [`MAX_EXPIRES_IN`]
/// (`3600.0` is the number 3600, RFC 8259 §6). A string of digits is
/// accepted too, because some servers send one.
fn expires_in(value: &Member<'_>) -> Option<u32> {
    let seconds = match value {
        Member::Unsigned(seconds) => *seconds,
        Member::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            // Leading zeros are still digits; too many digits is out of range.
            text.parse().ok()?
        }
        _ => return None,
    };
    u32::try_from(seconds)
        .ok()
        .filter(|s| (1..=MAX_EXPIRES_IN).contains(s))
}

/// `scope`: scope-tokens separated by spaces (RFC 6749 §3.3). Repeated
/// spaces are tolerated.
fn scope(value: &Member<'_>) -> Option<Vec<String>> {
    let text = value.as_str()?;
    let tokens: Vec<String> = text
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    tokens.iter().all(|t| is_scope_token(t)).then_some(tokens)
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )` (RFC 6749 §3.3).
pub(crate) fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}
