//! A connection's status (`status/{id}`) and its state machine's shared
//! transitions.

use serde::{Deserialize, Serialize};

use super::store::{self, CAS_ATTEMPTS, StorageError, Versioned};
use crate::effects::Effects;

/// Where a connection is in its lifecycle (the state diagram in
/// `wit/connections.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Configured, never authorised.
    New,
    /// An authorisation is pending: the user was sent to Pleo.
    Authorizing,
    /// Tokens are stored and usable.
    Connected,
    /// Refreshes are failing for a transient reason (outage, rate limit,
    /// network): backing off, the access token served until it expires.
    Degraded,
    /// Transient failures have lasted longer than the configured horizon
    /// without a break (Pleo: do not retry indefinitely): an operator should
    /// look. Tokens kept; a slow probe refresh heals it.
    Stalled,
    /// The token endpoint refused the client itself (`invalid_client` and
    /// kin): an operator must act. Tokens are kept; a later successful
    /// refresh clears it.
    ClientError,
    /// The grant is dead: tokens wiped, API blocked, configuration kept.
    ReauthRequired,
    /// The user disconnected: tokens wiped, configuration kept.
    Disconnected,
}

impl State {
    /// The states of a connection that holds tokens.
    pub fn holds_tokens(self) -> bool {
        matches!(
            self,
            State::Connected | State::Degraded | State::Stalled | State::ClientError
        )
    }
}

/// Why a connection needs re-authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The token endpoint rejected the refresh token (`invalid_grant` /
    /// `invalid_token`) with no sign of a race or a lost response: expired,
    /// revoked by the user, or a credential or policy change. (Statuses
    /// stored by 0.1 releases as `access-revoked` read as this.)
    #[serde(alias = "access-revoked")]
    RefreshTokenRejected,
    /// The access token is no longer usable and the server issued no
    /// refresh token to renew it.
    NoRefreshToken,
    /// An earlier refresh of this refresh token had no known outcome, and
    /// now the token is rejected: the server rotated it, and the new tokens
    /// never reached storage.
    RotationLost,
    /// The refresh token was rejected while storage held newer tokens, and
    /// those were rejected too: a rotated-away token was reused and the
    /// server revoked the grant.
    RefreshTokenReused,
}

/// A refresh request that went out and whose outcome is not (yet) known:
/// the write-ahead record that lets a later worker tell a lost rotation
/// from a revocation (RFC 6749 §6 rotation; Pleo's reuse detection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InFlight {
    /// `BASE64URL(SHA256(refresh token))`: never the token.
    pub token_hash: String,
    /// When the first request with this refresh token went out (Unix ms).
    pub since_ms: u64,
    /// What that request ended in, when it ended without a verdict (a
    /// timeout, a lost connection, a 504); `None` while in flight, or when
    /// its worker stopped before it could say.
    #[serde(default)]
    pub cause: Option<String>,
}

/// The stored status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    pub state: State,
    /// When the connection entered `state` (Unix ms).
    pub since_ms: u64,
    /// Why re-authentication is needed; kept while `authorizing` until the
    /// authorisation completes.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// The state hash of the pending authorisation, while `authorizing`.
    #[serde(default)]
    pub flow: Option<String>,
    /// Scopes an API asked for (`insufficient_scope`), requested by the next
    /// authorisation.
    #[serde(default)]
    pub missing_scopes: Vec<String>,
    /// Consecutive failed refreshes (transient or client errors).
    #[serde(default)]
    pub failures: u32,
    /// No refresh before this time (Unix ms): the back-off.
    #[serde(default)]
    pub next_retry_ms: Option<u64>,
    /// The last successful refresh (Unix ms).
    #[serde(default)]
    pub last_refresh_ms: Option<u64>,
    /// What the last failed refresh saw, for operators: an OAuth error
    /// code, a status or a transport failure; never a secret.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Set while the token endpoint refuses the client: its error code.
    #[serde(default)]
    pub client_error: Option<String>,
    // The members below are left out while at their defaults: the gate
    // parses the status on every call, so the common record stays short.
    /// Since when refreshes have failed without a break (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<u64>,
    /// Transient failures have lasted past the horizon: `stalled`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// The refresh request in flight, or whose outcome was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// API 401s to an access token a refresh had just issued, since the
    /// last authorisation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fresh_rejections: u32,
    /// The authorisation the connection belongs to (the hash of its flow's
    /// state, as in the tokens record's `grant`): set when a code
    /// exchange claims its flow, before its tokens are written; cleared by
    /// `disconnect` and `forget`. A write on behalf of another grant (a
    /// refresh of the one before, an exchange whose claim was overtaken)
    /// then stands down. `None` in records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// When the claim that set `grant` was made (Unix ms, the claiming
    /// worker's clock): a claim binds other grants' writes for
    /// [`CLAIM_BINDS_MS`] only, so that one whose tokens never came (its
    /// worker stopped, storage failed twice) does not silence the grant
    /// still stored.
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub claimed_ms: u64,
    /// Set by a `disconnect` that asked for revocation (RFC 7009), until
    /// an authorisation claims the connection: the state hashes of the
    /// pending flow and of the claimed grant that disconnect ended (and
    /// those of revoking disconnects before it since the last claim). A
    /// refresh, or a code exchange of one of these, that the disconnect
    /// overtook then revokes the tokens it brought back, which nobody else
    /// holds, rather than leave them alive at the server. Named rather than
    /// timed: workers' clocks differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_asked: Option<Vec<String>>,
}

fn is_zero_ms(ms: &u64) -> bool {
    *ms == 0
}

/// The most flows and grants a revoking `disconnect` remembers
/// ([`Status::revocation_asked`]).
const MAX_ENDED: usize = 8;

/// How long after its claim an exchange may still write its tokens, by its
/// own clock.
pub const CLAIM_WRITES_MS: u64 = 60_000;
/// How long a claim binds other grants' writes, by their clocks: the
/// write window, plus the pause a worker may take after its last check
/// (30 s) and the clock skew between workers (30 s), the bounds the
/// refresh lease assumes too.
pub const CLAIM_BINDS_MS: u64 = CLAIM_WRITES_MS + 60_000;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Status {
    pub fn new(now_ms: u64) -> Self {
        Self {
            state: State::New,
            since_ms: now_ms,
            reason: None,
            flow: None,
            missing_scopes: Vec::new(),
            failures: 0,
            next_retry_ms: None,
            last_refresh_ms: None,
            last_error: None,
            client_error: None,
            failing_since_ms: None,
            stalled: false,
            in_flight: None,
            fresh_rejections: 0,
            grant: None,
            claimed_ms: 0,
            revocation_asked: None,
        }
    }

    /// Whether, at `now_ms`, a write on behalf of `grant` (the grant of
    /// the tokens it acts on) no longer applies: the user disconnected, or
    /// another grant's claim binds (one made within [`CLAIM_BINDS_MS`];
    /// never for records from before statuses named their grant).
    pub fn moved_on_from(&self, grant: Option<&str>, now_ms: u64) -> bool {
        self.state == State::Disconnected
            || self.grant.is_some()
                && self.grant.as_deref() != grant
                && now_ms < self.claimed_ms.saturating_add(CLAIM_BINDS_MS)
    }

    /// Whether this status is a claim whose tokens never came: a code
    /// exchange claimed the connection (connected, naming its grant), no
    /// tokens are stored, and the claim no longer binds, so none will be
    /// written (its worker stopped, or storage failed both the write and
    /// the way back). The connection is then as new: nothing to serve.
    pub fn claim_abandoned(&self, has_tokens: bool, now_ms: u64) -> bool {
        !has_tokens
            && self.grant.is_some()
            && self.state.holds_tokens()
            && now_ms >= self.claimed_ms.saturating_add(CLAIM_BINDS_MS)
    }

    /// Settles an abandoned claim ([`Self::claim_abandoned`]) as new, from
    /// the moment it stopped binding: the same whoever settles it (the
    /// status view, or the gate in storage).
    pub fn settle_abandoned_claim(&mut self) {
        self.settle(false, self.claimed_ms.saturating_add(CLAIM_BINDS_MS));
    }

    /// Ends the connection by the user's choice (`disconnect`, `forget`):
    /// disconnected, no grant, no reason, no failure history, and whether
    /// the user asked for the grant's revocation. Returns the state hash of
    /// the pending flow it ended, if any.
    pub fn end_by_user(&mut self, now_ms: u64, revoke: bool) -> Option<String> {
        self.revocation_asked = revoke.then(|| {
            let mut ended = self.revocation_asked.take().unwrap_or_default();
            ended.extend(self.flow.iter().chain(&self.grant).cloned());
            // A user disconnecting again and again without completing an
            // authorisation: the latest are the ones still in flight.
            let excess = ended.len().saturating_sub(MAX_ENDED);
            ended.drain(..excess);
            ended
        });
        self.grant = None;
        self.reason = None;
        self.clear_failures();
        self.enter(State::Disconnected, now_ms);
        self.flow.take()
    }

    /// Whether tokens brought back for this connection and not kept are to
    /// be revoked: the user disconnected asking for revocation, no
    /// authorisation has claimed the connection since (a `begin` alone
    /// does not change whose grants are in flight), and, for a code
    /// exchange (`flow`, its state hash), that disconnect ended its flow or
    /// its claim. A flow begun after the disconnect is not the user's ended
    /// grant: a newer `begin` superseding it revokes nothing. A refresh's
    /// tokens (`None`) are always of a grant from before the disconnect.
    pub fn revocation_asked(&self, flow: Option<&str>) -> bool {
        self.grant.is_none()
            && self
                .revocation_asked
                .as_ref()
                .is_some_and(|ended| flow.is_none_or(|flow| ended.iter().any(|e| e == flow)))
    }

    /// Moves to `state`, stamping `since` only when the state changes.
    pub fn enter(&mut self, state: State, now_ms: u64) {
        if self.state != state {
            self.state = state;
            self.since_ms = now_ms;
        }
    }

    /// The state to return to when a pending authorisation ends without
    /// new tokens: re-authentication still required with its reason; or,
    /// when tokens remain (a scope upgrade the user declined), the state
    /// their refresh history says; or new.
    pub fn settle(&mut self, has_tokens: bool, now_ms: u64) {
        self.flow = None;
        let state = match (self.reason, has_tokens) {
            (Some(_), _) => State::ReauthRequired,
            (None, true) => self.token_state(),
            (None, false) => State::New,
        };
        self.enter(state, now_ms);
    }

    /// The state of a connection holding tokens, from its refresh history.
    pub fn token_state(&self) -> State {
        if self.client_error.is_some() {
            State::ClientError
        } else if self.stalled {
            State::Stalled
        } else if self.failures > 0 {
            State::Degraded
        } else {
            State::Connected
        }
    }

    /// Enters the state its refresh history says, unless an authorisation
    /// is pending (which keeps `authorizing` until it ends).
    pub fn enter_token_state(&mut self, now_ms: u64) {
        if self.state != State::Authorizing {
            self.enter(self.token_state(), now_ms);
        }
    }

    /// Forgets the refresh history: after a success, or when the tokens go.
    pub fn clear_failures(&mut self) {
        self.failures = 0;
        self.next_retry_ms = None;
        self.last_error = None;
        self.client_error = None;
        self.failing_since_ms = None;
        self.stalled = false;
    }
}

/// Reads the status and its version; a configured connection with no
/// status record is `new` (and `None`: absent).
pub async fn read(
    fx: &Effects,
    connection: &str,
    now_ms: u64,
) -> Result<(Status, Option<u64>), StorageError> {
    Ok(
        match store::read::<Status>(fx, &store::status_key(connection)).await? {
            Some(Versioned { value, version }) => (value, Some(version)),
            None => (Status::new(now_ms), None),
        },
    )
}

/// Read-modify-write of the status with a bounded compare-and-swap retry.
/// `change` sees the current status each attempt and returns the new one
/// (or an error that stops the update).
pub async fn update<E: From<StorageError>>(
    fx: &Effects,
    connection: &str,
    now_ms: u64,
    mut change: impl AsyncFnMut(Status) -> Result<Status, E>,
) -> Result<Status, E> {
    let key = store::status_key(connection);
    for _ in 0..CAS_ATTEMPTS {
        let (current, expected) = read(fx, connection, now_ms).await?;
        let next = change(current).await?;
        match store::write(fx, &key, &next, expected).await {
            Ok(_) => return Ok(next),
            Err(StorageError::Conflict) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(StorageError::Conflict.into())
}

/// Why a conditional [`update`] wrote nothing.
pub enum Declined {
    /// The change saw a status it does not apply to (the connection moved
    /// on meanwhile: disconnected, or a flow ended).
    Moved,
    Storage(StorageError),
}

impl From<StorageError> for Declined {
    fn from(error: StorageError) -> Self {
        Declined::Storage(error)
    }
}

/// Whether tokens are stored for the connection (a damaged record counts:
/// it is there, to be replaced).
pub async fn has_tokens(fx: &Effects, connection: &str) -> Result<bool, StorageError> {
    Ok(fx.get(&store::tokens_key(connection)).await?.is_some())
}
