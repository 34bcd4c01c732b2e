//! What one call for a token works with and ends in, shared by the gate,
//! the refresh and the report: the connection as the call read it, why it
//! refreshes, and the answer: a bearer token (RFC 6750 §2.1) or a refusal
//! that says why not and what to do.

use crate::classify::ErrorCode;
use serde::{Deserialize, Serialize};

use super::config::ConnectionConfig;
use super::status::{Reason, State, Status};
use super::store::{StorageError, TokensRecord, Versioned};
use crate::secret::Secret;

/// The `client-problem.error` when the host holds no client secret.
pub const NO_CREDENTIALS: &str = "no-credentials";

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
            token: tokens.access_token.to_secret(),
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

/// What is wrong with the client (`client-fault` in the WIT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFault {
    /// The token endpoint refused the client with this code.
    Rejected(ErrorCode),
    /// The host holds no secret it may send for this confidential client:
    /// nothing was sent.
    NoCredentials,
}

impl ClientFault {
    /// The fault the status recorded (`client-error`: a code, or
    /// [`NO_CREDENTIALS`]).
    pub(crate) fn from_recorded(code: &str) -> Self {
        if code == NO_CREDENTIALS {
            Self::NoCredentials
        } else {
            Self::Rejected(ErrorCode::parse(code))
        }
    }
}

impl std::fmt::Display for ClientFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected(code) => f.write_str(code.as_str()),
            Self::NoCredentials => f.write_str(NO_CREDENTIALS),
        }
    }
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
    #[error("the token endpoint refuses the client ({fault}): an operator must act")]
    ClientMisconfigured {
        fault: ClientFault,
        /// When the next refresh will be tried.
        retry_at_ms: Option<u64>,
    },
    #[error("not connected ({0:?})")]
    NotConnected(NotConnected),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The refusal for a connection with no tokens.
pub(super) fn without_tokens(status: &Status) -> Refusal {
    match (status.reason, status.state) {
        (Some(reason), _) => Refusal::Reauthenticate(reason),
        (None, State::Disconnected) => Refusal::NotConnected(NotConnected::Disconnected),
        (None, _) => Refusal::NotConnected(NotConnected::NeverAuthorized),
    }
}

/// A connection that holds tokens, as one call read it: what the gate
/// hands the refresh.
pub(super) struct Loaded {
    pub config: ConnectionConfig,
    pub status: Status,
    pub tokens: Versioned<TokensRecord>,
}

/// What made the refresh necessary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The access token is within the refresh margin of expiry.
    Expiry,
    /// The API answered 401 to the current access token (RFC 6750 §3.1):
    /// it is dead, whatever its expiry says.
    Unauthorized,
}

impl Trigger {
    /// How the trigger appears in event fields.
    pub(super) fn name(self) -> &'static str {
        match self {
            Trigger::Expiry => "expiry",
            Trigger::Unauthorized => "api-401",
        }
    }
}
