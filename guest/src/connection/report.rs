//! Reporting an API outcome (RFC 6750 §3.1; RFC 6749 §6): what the caller
//! should do next, and what the connection learns.

use super::config;
use super::gate;
use super::outcome::{Bearer, Refusal, Trigger};
use super::refresh;
use super::status;
use super::store::{self, StorageError};
use crate::classify::{self, ApiAttempt, ApiOutcome};
use crate::effects::Effects;
use crate::events::{self, Kind};
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
    /// 401 to an access token that a 401-forced refresh had just issued:
    /// the tokens are kept (the authorisation server just proved the grant
    /// alive); do not retry, alert.
    RejectedAfterRefresh,
}

/// Learns from an API response to a request made with `used_token`.
///
/// A 401 refreshes once (single-flight) and says retry with the new token;
/// a refresh that is rejected ends in re-authentication, as any rejected
/// refresh does. A 401 to a token that a 401 just refreshed is not taken as
/// a revocation: the authorisation server has just shown the grant alive,
/// and it is the authority on the grant, so the tokens are kept and the
/// answer is `RejectedAfterRefresh` (one refresh per 401 streak, no loop).
/// A 401 to a token that is no longer the stored one (another worker
/// refreshed already) just says retry with the stored one.
pub async fn report(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    used_token: &str,
    response: &ResponseHead,
) -> Result<ApiAction, Refusal> {
    let loaded = gate::load(fx, now_ms, connection).await?;
    let tokens = &loaded.tokens.value;
    let current = tokens.access_token.matches(used_token);
    let attempt = if current && tokens.after_unauthorized {
        ApiAttempt::AfterRefresh
    } else {
        ApiAttempt::First
    };
    let outcome = classify::api_response(Ok(response), attempt, now_ms);
    // A response that shows the token authenticated (anything but a 401, a
    // 429, a 5xx or a 408; a 403 refuses the user, not the token) ends a
    // 401 streak.
    let authenticated = matches!(
        outcome,
        ApiOutcome::Ok | ApiOutcome::Forbidden | ApiOutcome::InsufficientScope(_)
    );
    if authenticated && current && tokens.after_unauthorized {
        end_streak(fx, connection, &loaded.tokens).await;
    }
    match outcome {
        ApiOutcome::Ok => Ok(ApiAction::Proceed),
        ApiOutcome::RefreshAndRetry if !current => gate::access_token(fx, now_ms, connection)
            .await
            .map(ApiAction::Retry),
        ApiOutcome::RefreshAndRetry => {
            events::emit(
                fx,
                Level::Info,
                Kind::ApiUnauthorized,
                connection,
                &[("status", response.status.to_string())],
                "the API refused the access token; refreshing once",
            )
            .await;
            let refused = loaded.tokens.clone();
            let refreshed =
                refresh::refresh(fx, now_ms, connection, loaded, Trigger::Unauthorized).await;
            if let Err(Refusal::Wait { .. } | Refusal::ClientMisconfigured { .. }) = &refreshed {
                // The tokens stay, but this access token is dead: never
                // serve it again.
                mark(fx, connection, &refused, |record| record.refused = true).await;
            }
            refreshed.map(ApiAction::Retry)
        }
        ApiOutcome::RejectedAfterRefresh => {
            let status = status::update(fx, connection, now_ms, async |mut status| {
                status.fresh_rejections = status.fresh_rejections.saturating_add(1);
                Ok::<_, StorageError>(status)
            })
            .await?;
            events::emit(
                fx,
                Level::Error,
                Kind::ApiRejectedFreshToken,
                connection,
                &[
                    ("status", response.status.to_string()),
                    ("count", status.fresh_rejections.to_string()),
                ],
                "the API refused an access token the authorisation server had just issued; tokens kept, not retrying",
            ).await;
            Ok(ApiAction::RejectedAfterRefresh)
        }
        ApiOutcome::InsufficientScope(scopes) => {
            // RFC 6750 §3: the challenge may list every scope the
            // resource needs; only those not granted are missing, and only
            // Pleo's `resource:permission` ones can be asked for (another
            // would make every authorisation fail).
            let missing: Vec<String> = scopes
                .iter()
                .filter(|s| !tokens.scopes.contains(s) && config::is_pleo_scope(s))
                .cloned()
                .collect();
            status::update(fx, connection, now_ms, async |mut status| {
                for scope in &missing {
                    if !status.missing_scopes.contains(scope) {
                        status.missing_scopes.push(scope.clone());
                    }
                }
                Ok::<_, StorageError>(status)
            })
            .await?;
            events::emit(
                fx,
                Level::Info,
                Kind::ScopeUpgradeNeeded,
                connection,
                &[("scopes", missing.join(" "))],
                "the API needs scopes the grant lacks; the next authorisation requests them",
            )
            .await;
            Ok(ApiAction::InsufficientScope(scopes))
        }
        ApiOutcome::Forbidden => Ok(ApiAction::Forbidden),
        ApiOutcome::RateLimited(at) => Ok(ApiAction::RateLimited(at)),
        ApiOutcome::Transient(at) => Ok(ApiAction::Transient(at)),
    }
}

/// The token a 401 refreshed was accepted: the streak is over. If the
/// store fails, a later 401 to this same token answers
/// `RejectedAfterRefresh`: the tokens are kept either way.
async fn end_streak(
    fx: &Effects,
    connection: &str,
    tokens: &store::Versioned<store::TokensRecord>,
) {
    mark(fx, connection, tokens, |record| {
        record.after_unauthorized = false
    })
    .await;
}

/// Changes a flag of the tokens as read, if they are still stored as read.
/// Best effort: a conflict means they were replaced, and the new record has
/// its own flags.
async fn mark(
    fx: &Effects,
    connection: &str,
    tokens: &store::Versioned<store::TokensRecord>,
    change: impl FnOnce(&mut store::TokensRecord),
) {
    let mut record = tokens.value.clone();
    change(&mut record);
    let _ = store::write(
        fx,
        &store::tokens_key(connection),
        &record,
        Some(tokens.version),
    )
    .await;
}
