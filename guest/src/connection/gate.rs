//! The API gate (Pleo's how-to for expired or revoked refresh tokens, steps
//! 1 and 2): a usable bearer
//! token, or exactly why not and what to do. It never returns a token known
//! to be dead.

use super::config::{self, ConnectionConfig};
use super::outcome::{Bearer, Loaded, NotConnected, Refusal, Trigger, without_tokens};
use super::refresh;
use super::status;
use super::store::{self, TokensRecord};
use crate::effects::Effects;

/// Reads what the gate needs, refusing when there are no tokens to use.
/// A connection whose grant died refuses even if wiping its tokens failed.
pub(super) async fn load(fx: &Effects, now_ms: u64, connection: &str) -> Result<Loaded, Refusal> {
    let unknown = Refusal::NotConnected(NotConnected::UnknownConnection);
    config::validate_connection_id(connection).map_err(|_| unknown.clone())?;
    let config = store::read::<ConnectionConfig>(fx, &store::config_key(connection))
        .await?
        .ok_or(unknown)?
        .value;
    let (status, _) = status::read(fx, connection, now_ms).await?;
    if let Some(reason) = status.reason {
        return Err(Refusal::Reauthenticate(reason));
    }
    // Whatever is stored: tokens a code exchange or a refresh wrote while
    // the user disconnected are never served (and never refreshed).
    if status.state == status::State::Disconnected {
        return Err(without_tokens(&status));
    }
    let Some(tokens) = store::read::<TokensRecord>(fx, &store::tokens_key(connection)).await?
    else {
        if status.claim_abandoned(false, now_ms) {
            settle_abandoned_claim(fx, now_ms, connection, &status).await;
        }
        return Err(without_tokens(&status));
    };
    Ok(Loaded {
        config,
        status,
        tokens,
    })
}

/// Settles a claim whose tokens never came ([`status::Status::claim_abandoned`])
/// as new, so that listings stop showing a connection that cannot serve
/// as connected. Only that claim: a newer `begin`, claim or `disconnect`
/// stands. Best effort.
async fn settle_abandoned_claim(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    seen: &status::Status,
) {
    let _ = status::update(fx, connection, now_ms, async |mut status| {
        if status.grant != seen.grant
            || status.claimed_ms != seen.claimed_ms
            || !status.claim_abandoned(status::has_tokens(fx, connection).await?, now_ms)
        {
            return Err(status::Declined::Moved);
        }
        status.settle_abandoned_claim();
        Ok(status)
    })
    .await;
}

/// The API gate. The hot path (a token not yet due for refresh) reads
/// three keys and writes nothing. A token within the refresh margin of
/// expiry is refreshed first, single-flight; while that is impossible the
/// still-valid token is served, and an expired one never is.
pub async fn access_token(fx: &Effects, now_ms: u64, connection: &str) -> Result<Bearer, Refusal> {
    let loaded = load(fx, now_ms, connection).await?;
    if !loaded
        .tokens
        .value
        .due(now_ms, loaded.config.refresh_margin_ms())
    {
        return Ok(Bearer::from(&loaded.tokens.value));
    }
    refresh::refresh(fx, now_ms, connection, loaded, Trigger::Expiry).await
}
