//! Verdicts on API responses (RFC 6750 §3.1; Pleo's API statuses: 401 expired or
//! invalid token, 403 missing access or scope, 5xx retry later).

use super::retry_after::retry_after_header;
use super::token_response::is_scope_token;
use super::www_authenticate::{Challenge, ChallengeData, www_authenticate};
use crate::types::{Header, ResponseHead, TransportError, header_values};

/// Whether the request used a token refreshed because of a 401 in the same streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiAttempt {
    First,
    AfterRefresh,
}

/// The verdict on an API response. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiOutcome {
    /// Not an authorisation event.
    Ok,
    /// 401 on a first attempt: refresh once, retry once.
    RefreshAndRetry,
    /// 401 right after a refresh: the API refuses a token the authorisation
    /// server has just issued. Keep the tokens (the server just proved the
    /// grant alive), do not refresh or retry again; alert.
    RejectedAfterRefresh,
    /// 403 `insufficient_scope`, with the scopes the challenge names.
    InsufficientScope(Vec<String>),
    /// 403 for any other reason.
    Forbidden,
    /// 429.
    RateLimited(Option<u64>),
    /// 5xx, 408, or no response.
    Transient(Option<u64>),
}

/// Classifies an API response, or the transport error instead of one.
pub fn api_response(
    response: Result<&ResponseHead, &TransportError>,
    attempt: ApiAttempt,
    now_ms: u64,
) -> ApiOutcome {
    let Ok(response) = response else {
        return ApiOutcome::Transient(None);
    };
    match response.status {
        // RFC 6750 §3.1 `invalid_token` (or no error: the token was not
        // accepted). One refresh per 401 streak. A second 401 is not proof
        // of revocation: the authorisation server has just issued the token,
        // and it is the authority on the grant (RFC 6749 §6).
        401 => match attempt {
            ApiAttempt::First => ApiOutcome::RefreshAndRetry,
            ApiAttempt::AfterRefresh => ApiOutcome::RejectedAfterRefresh,
        },
        403 => match bearer_challenge(&response.headers) {
            Some(challenge) if challenge.param("error") == Some("insufficient_scope") => {
                ApiOutcome::InsufficientScope(scopes(challenge.param("scope").unwrap_or("")))
            }
            _ => ApiOutcome::Forbidden,
        },
        429 => ApiOutcome::RateLimited(retry_after_header(&response.headers, now_ms)),
        408 | 500..=599 => ApiOutcome::Transient(retry_after_header(&response.headers, now_ms)),
        _ => ApiOutcome::Ok,
    }
}

/// The first `Bearer` challenge with parameters. A malformed
/// `WWW-Authenticate` field tells nothing, so it gives `None`.
fn bearer_challenge(headers: &[Header]) -> Option<Challenge> {
    let values: Vec<&str> = header_values(headers, "www-authenticate").collect();
    www_authenticate(&values)
        .ok()?
        .into_iter()
        .find(|c| c.scheme == "bearer" && matches!(c.data, ChallengeData::Params(_)))
}

/// The space-delimited scope list of RFC 6750 §3; invalid tokens are dropped.
fn scopes(value: &str) -> Vec<String> {
    value
        .split(' ')
        .filter(|token| is_scope_token(token))
        .map(str::to_owned)
        .collect()
}
