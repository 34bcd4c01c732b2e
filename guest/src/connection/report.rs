//! Reporting an API outcome (DESIGN §1 classification policy; RFC 6750
//! §3.1): what the caller should do next, and what the connection learns.

use subtle::ConstantTimeEq;

use super::gate::{self, Bearer, Refusal};
use super::refresh::{self, Trigger};
use super::status::{self, Reason};
use super::store::{self, StoreError};
use crate::classify::{self, ApiAttempt, ApiOutcome};
use crate::events;
use crate::io::Io;
use crate::types::{Level, ResponseHead};

/// What to do after an API response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAction {
    /// Not an authorisation event: carry on.
    Proceed,
    /// The token was stale: retry the request once with this token.
    Retry(Bearer),
    /// 403 `insufficient_scope`: the connection stays connected, the scopes
    /// are recorded and the next authorisation requests them.
    InsufficientScope(Vec<String>),
    /// 403 for another reason: this user may not do this.
    Forbidden,
    /// 429: retry after this time (Unix ms), when the server said.
    RateLimited(Option<u64>),
    /// 5xx or 408: retry after this time, when the server said.
    Transient(Option<u64>),
}

/// Learns from an API response to a request made with `used_token`.
///
/// A 401 refreshes once (single-flight) and says retry with the new token;
/// a 401 to a token that a 401 just refreshed means the grant was revoked
/// (one refresh per 401 streak), so the tokens are wiped and the refusal
/// says re-authenticate. A 401 to a token that is no longer the stored one
/// (another worker refreshed already) just says retry with the stored one.
pub fn report(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    used_token: &str,
    response: &ResponseHead,
) -> Result<ApiAction, Refusal> {
    let loaded = gate::load(io, now_ms, connection)?;
    let tokens = &loaded.tokens.value;
    let current = bool::from(
        tokens
            .access_token
            .expose()
            .as_bytes()
            .ct_eq(used_token.as_bytes()),
    );
    let attempt = if current && tokens.after_unauthorized {
        ApiAttempt::AfterRefresh
    } else {
        ApiAttempt::First
    };
    match classify::api_response(Ok(response), attempt, now_ms) {
        ApiOutcome::Ok => {
            if current && tokens.after_unauthorized {
                end_streak(io, connection, &loaded.tokens);
            }
            Ok(ApiAction::Proceed)
        }
        ApiOutcome::RefreshAndRetry if !current => {
            gate::access_token(io, now_ms, connection).map(ApiAction::Retry)
        }
        ApiOutcome::RefreshAndRetry => {
            events::emit(
                io,
                Level::Info,
                "api-unauthorized",
                connection,
                &[("status", response.status.to_string())],
                "the API refused the access token; refreshing once",
            );
            refresh::refresh(io, now_ms, connection, loaded, Trigger::Unauthorized)
                .map(ApiAction::Retry)
        }
        ApiOutcome::Reauthenticate => Err(refresh::grant_dead(
            io,
            now_ms,
            connection,
            Reason::AccessRevoked,
            &[("trigger", "api-401-after-refresh".into())],
        )?),
        ApiOutcome::InsufficientScope(scopes) => {
            // RFC 6750 §3: the challenge may list every scope the
            // resource needs; only those not granted are missing.
            let missing: Vec<String> = scopes
                .iter()
                .filter(|s| !tokens.scopes.contains(s))
                .cloned()
                .collect();
            status::update(io, connection, now_ms, |_, mut status| {
                for scope in &missing {
                    if !status.missing_scopes.contains(scope) {
                        status.missing_scopes.push(scope.clone());
                    }
                }
                Ok::<_, StoreError>(status)
            })?;
            events::emit(
                io,
                Level::Info,
                "scope-upgrade-needed",
                connection,
                &[("scopes", missing.join(" "))],
                "the API needs scopes the grant lacks; the next authorisation requests them",
            );
            Ok(ApiAction::InsufficientScope(scopes))
        }
        ApiOutcome::Forbidden => Ok(ApiAction::Forbidden),
        ApiOutcome::RateLimited(at) => Ok(ApiAction::RateLimited(at)),
        ApiOutcome::Transient(at) => Ok(ApiAction::Transient(at)),
    }
}

/// The token a 401 refreshed was accepted: the streak is over. Best
/// effort: a conflict means the tokens were replaced (the new record has
/// its own flag); if the store fails, a later 401 to this same token is
/// taken as a revocation, the conservative reading.
fn end_streak(io: &mut dyn Io, connection: &str, tokens: &store::Versioned<store::TokensRecord>) {
    let mut record = tokens.value.clone();
    record.after_unauthorized = false;
    let _ = store::write(
        io,
        &store::tokens_key(connection),
        &record,
        Some(tokens.version),
    );
}
