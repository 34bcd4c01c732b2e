//! Verdicts in words, for the command line. Tokens are never printed.

use pleo_oauth::classify::{
    ApiOutcome, Challenge, ChallengeData, ChallengeError, GrantRejection, InvalidResponse,
    OAuthError, TokenOutcome, TransientCause,
};
use pleo_oauth::types::TransportError;

const REAUTHENTICATE: &str =
    "stop API calls, discard both tokens, keep the configuration, ask the user to connect again";

/// A verdict as a short name, details, and what the platform should do.
pub struct Described {
    pub verdict: &'static str,
    pub details: Vec<String>,
    pub action: &'static str,
}

pub fn token_outcome(outcome: &TokenOutcome, now_ms: u64) -> Described {
    match outcome {
        TokenOutcome::Success(tokens) => Described {
            verdict: "success",
            details: vec![
                format!(
                    "access token: [redacted] ({} characters)",
                    tokens.access_token.expose().len()
                ),
                match tokens.expires_in {
                    Some(seconds) => format!("expires in: {seconds} s"),
                    None => "expires in: not said".into(),
                },
                format!(
                    "refresh token: {}",
                    tokens.refresh_token.as_ref().map_or(
                        "none (keep the old one)".into(),
                        |t| format!("[redacted] ({} characters)", t.expose().len())
                    )
                ),
                format!(
                    "scope: {}",
                    tokens
                        .scope
                        .as_ref()
                        .map_or("as requested".into(), |s| s.join(" "))
                ),
            ],
            action: "store both tokens in one write, then use the new access token",
        },
        TokenOutcome::Reauthenticate(reauth) => Described {
            verdict: "re-authenticate",
            details: vec![
                match reauth.reason {
                    GrantRejection::RefreshTokenRejected => {
                        "reason: the refresh token expired, was revoked, or was already used".into()
                    }
                    GrantRejection::AuthorizationCodeRejected => {
                        "reason: the authorisation code expired, was used, or did not match".into()
                    }
                },
                oauth_error(&reauth.error),
            ],
            action: match reauth.reason {
                GrantRejection::RefreshTokenRejected => REAUTHENTICATE,
                GrantRejection::AuthorizationCodeRejected => {
                    "nothing was stored; start a new authorisation"
                }
            },
        },
        TokenOutcome::ClientMisconfigured(error) => Described {
            verdict: "client misconfigured",
            details: vec![oauth_error(error)],
            action: "keep the tokens; an operator must fix the client id or secret (re-authorising does not help)",
        },
        TokenOutcome::RequestInvalid(error) => Described {
            verdict: "request invalid",
            details: vec![oauth_error(error)],
            action: "keep the tokens; fix the request (scopes, parameters)",
        },
        TokenOutcome::Transient(transient) => Described {
            verdict: "transient",
            details: vec![
                format!("cause: {}", transient_cause(&transient.cause)),
                retry_at(transient.retry_at_ms, now_ms),
            ],
            action: "keep the tokens and retry later with backoff; never re-authenticate for this",
        },
        TokenOutcome::CredentialsMissing => Described {
            verdict: "client credentials missing",
            details: vec!["nothing was sent: the host holds no secret for this client".into()],
            action: "keep the tokens; an operator must give the host the client secret",
        },
    }
}

pub fn api_outcome(outcome: &ApiOutcome, now_ms: u64) -> Described {
    let (verdict, details, action) = match outcome {
        ApiOutcome::Ok => (
            "ok",
            vec![],
            "not an authorisation event: handle the response as usual",
        ),
        ApiOutcome::RefreshAndRetry => (
            "refresh and retry",
            vec![],
            "refresh the access token once, then retry once",
        ),
        ApiOutcome::RejectedAfterRefresh => (
            "rejected after refresh",
            vec!["reason: the API refused an access token the server had just issued".into()],
            "keep the tokens (the authorisation server just accepted the grant); do not refresh or retry again; alert an operator",
        ),
        ApiOutcome::InsufficientScope(scopes) => (
            "insufficient scope",
            vec![format!(
                "scopes needed: {}",
                if scopes.is_empty() {
                    "not said".into()
                } else {
                    scopes.join(" ")
                }
            )],
            "keep the connection; authorise again with these scopes when the user wants this feature",
        ),
        ApiOutcome::Forbidden => (
            "forbidden",
            vec![],
            "this user may not do this; not a token problem",
        ),
        ApiOutcome::RateLimited(at) => (
            "rate limited",
            vec![retry_at(*at, now_ms)],
            "slow down and retry later",
        ),
        ApiOutcome::Transient(at) => (
            "transient",
            vec![retry_at(*at, now_ms)],
            "retry later with backoff",
        ),
    };
    Described {
        verdict,
        details,
        action,
    }
}

pub fn challenges(parsed: &Result<Vec<Challenge>, ChallengeError>) -> Vec<String> {
    match parsed {
        Ok(challenges) if challenges.is_empty() => vec!["no challenges".into()],
        Ok(challenges) => challenges
            .iter()
            .map(|c| match &c.data {
                ChallengeData::Token68(token) => format!("{} token68={token}", c.scheme),
                ChallengeData::Params(params) => {
                    let params: Vec<String> = params
                        .iter()
                        .map(|p| format!("{}={:?}", p.name, p.value))
                        .collect();
                    format!("{} {}", c.scheme, params.join(" "))
                }
            })
            .collect(),
        Err(e) => vec![format!(
            "invalid: {:?} in value {} at byte {}",
            e.kind, e.value_index, e.offset
        )],
    }
}

fn oauth_error(error: &OAuthError) -> String {
    match &error.description {
        Some(description) => format!("error: {} ({description:?})", error.code.as_str()),
        None => format!("error: {}", error.code.as_str()),
    }
}

fn transient_cause(cause: &TransientCause) -> String {
    match cause {
        TransientCause::Status(status) => format!("HTTP {status} without an OAuth error"),
        TransientCause::OAuth(error) => oauth_error(error),
        TransientCause::InvalidResponse(invalid) => {
            format!("unusable response: {}", invalid_response(*invalid))
        }
        TransientCause::Transport(error) => format!("no response: {}", transport_error(error)),
    }
}

fn invalid_response(invalid: InvalidResponse) -> &'static str {
    match invalid {
        InvalidResponse::NotJson => "the body is not a JSON object",
        InvalidResponse::BodyTooLarge => "the body is over 64 KiB",
        InvalidResponse::InvalidErrorMember => "`error` is not a string",
        InvalidResponse::MissingAccessToken => "no access_token",
        InvalidResponse::InvalidAccessToken => "access_token is not a valid token",
        InvalidResponse::MissingTokenType => "no token_type",
        InvalidResponse::UnsupportedTokenType => "token_type is not Bearer",
        InvalidResponse::InvalidExpiresIn => "expires_in is not a sensible number of seconds",
        InvalidResponse::InvalidRefreshToken => "refresh_token is not a valid token",
        InvalidResponse::InvalidScope => "scope is not a list of scope tokens",
    }
}

fn transport_error(error: &TransportError) -> String {
    match error {
        TransportError::Timeout => "timeout".into(),
        TransportError::ConnectionRefused => "connection refused".into(),
        TransportError::Dns => "DNS lookup failed".into(),
        TransportError::Tls => "TLS handshake failed".into(),
        TransportError::BodyTooLarge => "body too large".into(),
        TransportError::Other(why) => why.clone(),
        TransportError::ConnectionLost => "connection lost after the request was sent".into(),
        TransportError::NoCredentials => "no client credentials (nothing sent)".into(),
    }
}

fn retry_at(at: Option<u64>, now_ms: u64) -> String {
    match at {
        Some(at) => format!(
            "retry after: {} s (server's Retry-After)",
            at.saturating_sub(now_ms).div_ceil(1000)
        ),
        None => "retry after: not said (use your own backoff)".into(),
    }
}
