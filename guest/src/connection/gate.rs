//! The API gate (Pleo's how-to for expired or revoked refresh tokens, steps
//! 1 and 2): a usable bearer
//! token, or exactly why not and what to do. It never returns a token known
//! to be dead.

use serde::{Deserialize, Serialize};

use super::config::{self, ConnectionConfig};
use super::refresh::{self, Trigger};
use super::status::{self, Reason, State, Status};
use super::store::{self, StoreError, TokensRecord, Versioned};
use crate::io::Io;
use crate::secret::Secret;

/// A token to send as `Authorization: Bearer` (RFC 6750 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    pub token: Secret,
    /// When it expires (Unix ms), when the server said.
    pub expires_at_ms: Option<u64>,
    /// The scopes granted to it.
    pub scopes: Vec<String>,
}

impl From<&TokensRecord> for Bearer {
    fn from(tokens: &TokensRecord) -> Self {
        Self {
            token: tokens.access_token.clone(),
            expires_at_ms: tokens.expires_at_ms,
            scopes: tokens.scopes.clone(),
        }
    }
}

/// Why a caller must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitReason {
    /// Another worker holds the refresh lease; the rotated tokens follow.
    RefreshInProgress,
    /// Refreshes are failing for a transient reason; backing off.
    BackingOff,
    /// Refreshes have failed for longer than the stall horizon; the wait
    /// runs to the next slow probe.
    Stalled,
}

/// Why there is no connection to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotConnected {
    /// No connection with this id is configured.
    UnknownConnection,
    /// Configured, but never authorised (or the authorisation is pending).
    NeverAuthorized,
    /// The user disconnected it.
    Disconnected,
}

/// Why the gate gives no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "re-authentication required ({0:?}): stop calling the API and ask the user to reconnect"
    )]
    Reauthenticate(Reason),
    #[error("no token until {until_ms} ({why:?})")]
    Wait { until_ms: u64, why: WaitReason },
    #[error("the token endpoint refuses the client ({error}): an operator must act")]
    ClientMisconfigured {
        /// The OAuth error code.
        error: String,
        /// When the next refresh will be tried.
        retry_at_ms: Option<u64>,
    },
    #[error("not connected ({0:?})")]
    NotConnected(NotConnected),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// A connection that holds tokens, as one call read it.
pub(super) struct Loaded {
    pub config: ConnectionConfig,
    pub status: Status,
    pub tokens: Versioned<TokensRecord>,
}

/// Reads what the gate needs, refusing when there are no tokens to use.
/// A connection whose grant died refuses even if wiping its tokens failed.
pub(super) fn load(io: &mut dyn Io, now_ms: u64, connection: &str) -> Result<Loaded, Refusal> {
    let unknown = Refusal::NotConnected(NotConnected::UnknownConnection);
    config::validate_connection_id(connection).map_err(|_| unknown.clone())?;
    let config = store::read::<ConnectionConfig>(io, &store::config_key(connection))?
        .ok_or(unknown)?
        .value;
    let (status, _) = status::read(io, connection, now_ms)?;
    if let Some(reason) = status.reason {
        return Err(Refusal::Reauthenticate(reason));
    }
    let Some(tokens) = store::read::<TokensRecord>(io, &store::tokens_key(connection))? else {
        return Err(without_tokens(&status));
    };
    Ok(Loaded {
        config,
        status,
        tokens,
    })
}

/// The refusal for a connection with no tokens.
pub(super) fn without_tokens(status: &Status) -> Refusal {
    match (status.reason, status.state) {
        (Some(reason), _) => Refusal::Reauthenticate(reason),
        (None, State::Disconnected) => Refusal::NotConnected(NotConnected::Disconnected),
        (None, _) => Refusal::NotConnected(NotConnected::NeverAuthorized),
    }
}

/// The API gate. The hot path (a token not yet due for refresh) reads
/// three keys and writes nothing. A token within the refresh margin of
/// expiry is refreshed first, single-flight; while that is impossible the
/// still-valid token is served, and an expired one never is.
pub fn access_token(io: &mut dyn Io, now_ms: u64, connection: &str) -> Result<Bearer, Refusal> {
    let loaded = load(io, now_ms, connection)?;
    if !loaded
        .tokens
        .value
        .due(now_ms, loaded.config.refresh_margin_ms())
    {
        return Ok(Bearer::from(&loaded.tokens.value));
    }
    refresh::refresh(io, now_ms, connection, loaded, Trigger::Expiry)
}
