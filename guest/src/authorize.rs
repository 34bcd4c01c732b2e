//! Authorisation: begin (the PKCE authorisation URL) and complete (the
//! callback and the code exchange): Pleo's re-authentication flow; RFC 6749 §4.1,
//! RFC 7636, RFC 9207, RFC 9700 §2.1.

pub mod callback;
mod pkce;
pub mod url;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use callback::Callback;
pub use callback::{AuthorizationError, AuthorizationErrorCode, RejectionReason};
pub use pkce::{Verifier, VerifierError};
pub use url::{ParamError, UrlError, UrlParams, UrlTemplate};

use crate::classify::{self, GrantKind, OAuthError, Reauth, TokenOutcome, TokenSet, Transient};
use crate::connection::config::{self, ConnectionConfig, InvalidConfig};
use crate::connection::request;
use crate::connection::revocation;
use crate::connection::status::{self, Declined, State, Status};
use crate::connection::store::{self, FlowRecord, FlowServer, StorageError, TokensRecord};
use crate::effects::{Effects, drive};
use crate::events::{self, Kind, kebab};
use crate::io::Io;
use crate::secret::Secret;
use crate::types::{Entry, Level, Request};

/// How long a pending authorisation lives by default: 10 minutes.
pub const DEFAULT_FLOW_TTL_SECONDS: u32 = 600;
/// Bounds on a configured lifetime: 1 minute to 1 hour.
pub const FLOW_TTL_RANGE: std::ops::RangeInclusive<u32> = 60..=3600;
/// Longest `return-to`.
pub const MAX_RETURN_TO: usize = 2048;
/// Random bytes in a `state`: 32 (256 bits; RFC 9700 asks for at least 128).
pub const STATE_BYTES: usize = 32;

/// Options of [`begin`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BeginOptions {
    /// Scopes to request besides the configured ones.
    pub extra_scopes: Vec<String>,
    /// Returned by `complete`, to bring the user back where they were.
    pub return_to: Option<String>,
    /// Allow-listed extra query parameters ([`url::ALLOWED_EXTRA_PARAMS`]).
    pub extra_params: Vec<(String, String)>,
    /// Lifetime of the pending authorisation; default 10 minutes.
    pub ttl_seconds: Option<u32>,
}

/// Where to send the user. `url` carries the one-time `state`: treat it as
/// a secret (do not log it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub url: Secret,
    pub expires_at_ms: u64,
    /// The scopes requested.
    pub scopes: Vec<String>,
}

impl Authorization {
    /// The `state` the URL carries: what a callback must bring back.
    pub fn state(&self) -> Option<Secret> {
        ::url::Url::parse(self.url.expose())
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| Secret::new(v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeginError {
    #[error("no connection with this id is configured")]
    UnknownConnection,
    #[error("the configuration is invalid: {0}")]
    InvalidConfig(#[from] InvalidConfig),
    #[error("invalid option: {0}")]
    InvalidOption(#[from] OptionError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptionError {
    #[error("scope {0:?} is not of the form resource:permission")]
    InvalidScope(String),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("return-to is longer than 2048 characters")]
    ReturnToTooLong,
    #[error("the lifetime must be 60 to 3600 seconds")]
    InvalidTtl,
}

/// A successful authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub connection: String,
    pub return_to: Option<String>,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The connection needed re-authentication and has recovered.
    pub recovered: bool,
}

/// A callback rejected before any exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectionReason,
    /// The connection, when the state identified one.
    pub connection: Option<String>,
}

/// Why a code exchange failed: a token verdict other than success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeFailure {
    Reauthenticate(Reauth),
    ClientMisconfigured(OAuthError),
    RequestInvalid(OAuthError),
    Transient(Transient),
    /// Not sent: the host holds no credentials for the client.
    CredentialsMissing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    #[error("the callback was rejected: {}", .0.reason.describe())]
    Rejected(Rejection),
    #[error("the authorisation was refused: {}", .error.code.as_str())]
    Denied {
        connection: String,
        error: AuthorizationError,
    },
    #[error("the code exchange failed")]
    ExchangeFailed {
        connection: String,
        failure: ExchangeFailure,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Starts an authorisation for a configured connection: a fresh verifier
/// and state from the random import, a one-time pending-flow record, and
/// the URL. A newer authorisation supersedes an older pending one.
pub async fn begin_async(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    options: &BeginOptions,
) -> Result<Authorization, BeginError> {
    config::validate_connection_id(connection)?;
    let config = store::read::<ConnectionConfig>(fx, &store::config_key(connection))
        .await?
        .ok_or(BeginError::UnknownConnection)?
        .value;
    config.validate()?;
    check_options(options)?;
    let ttl = options.ttl_seconds.unwrap_or(DEFAULT_FLOW_TTL_SECONDS);

    let (current, _) = status::read(fx, connection, now_ms).await?;
    let mut scopes = config.scopes.clone();
    // Missing scopes come from an API's challenge: only well-formed ones
    // are asked for (records from before `report` checked them may hold
    // others).
    let missing = current
        .missing_scopes
        .iter()
        .filter(|s| config::is_pleo_scope(s));
    for scope in missing.chain(&options.extra_scopes) {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }

    let mut random = [0u8; pkce::VERIFIER_BYTES + STATE_BYTES];
    fx.random(&mut random).await;
    let (verifier_bytes, state_bytes) = random.split_at(pkce::VERIFIER_BYTES);
    let verifier = Verifier::from_random(
        verifier_bytes
            .try_into()
            .expect("split at the verifier length"),
    );
    let state = Secret::new(URL_SAFE_NO_PAD.encode(state_bytes));
    let state_hash = hash_state(&state);

    // The configuration and the options are validated above, and the state
    // and challenge are well formed by construction.
    let endpoint =
        config::endpoint_url(&config.authorize_url()).ok_or(InvalidConfig::InvalidEndpoint)?;
    let url = url::assemble(
        endpoint,
        &UrlParams {
            authorize_url: config.authorize_url(),
            client_id: config.client_id.clone(),
            redirect_uri: config.redirect_uri.clone(),
            scopes: scopes.clone(),
            state,
            code_challenge: verifier.s256_challenge(),
            extra_params: options.extra_params.clone(),
        },
    )
    .map_err(OptionError::from)?;

    let expires_at_ms = now_ms.saturating_add(u64::from(ttl) * 1000);
    let flow = FlowRecord {
        connection: connection.to_owned(),
        state_hash: state_hash.clone(),
        verifier: verifier.secret().clone().into(),
        scopes: scopes.clone(),
        redirect_uri: config.redirect_uri.clone(),
        return_to: options.return_to.clone(),
        created_at_ms: now_ms,
        expires_at_ms,
        server: Some(FlowServer::of(&config)),
    };
    store::write(fx, &store::flow_key(&state_hash), &flow, None).await?;

    let mut superseded = None;
    let mut ended = None;
    let updated = status::update(fx, connection, now_ms, async |mut status| {
        if status.state == State::Disconnected {
            clear_ended_grant(fx, now_ms, connection, &mut ended).await?;
        }
        superseded = status.flow.replace(state_hash.clone());
        status.enter(State::Authorizing, now_ms);
        Ok::<_, StorageError>(status)
    })
    .await;
    // Whether or not the status was written: what was removed is gone.
    if let Some(tokens) = ended {
        revocation::revoke_late_grant(fx, &config, connection, &tokens, "begin", None).await;
    }
    let status = updated?;
    if let Some(old) = superseded.filter(|old| *old != state_hash) {
        discard_flow(fx, &old).await;
    }

    let (kind, message) = match status.reason {
        Some(_) => (
            Kind::ReauthStarted,
            "re-authentication started: the user was sent to authorise again",
        ),
        None => (
            Kind::AuthorizationStarted,
            "authorisation started: the user was sent to authorise",
        ),
    };
    let mut fields = vec![
        ("scopes", scopes.join(" ")),
        ("expires-at-ms", expires_at_ms.to_string()),
    ];
    if let Some(reason) = status.reason {
        fields.push(("reason", kebab(&reason)));
    }
    events::emit(fx, Level::Info, kind, connection, &fields, message).await;
    Ok(Authorization {
        url,
        expires_at_ms,
        scopes,
    })
}

/// Removes tokens a fault left on a disconnected connection (a wipe or a
/// take-back that storage refused), as `begin` moves it on: they are the
/// grant the user ended, and the gate would serve them while the new
/// authorisation is pending, or a refused one would settle back onto them.
/// Done in the status update that leaves `disconnected`, so that a `begin`
/// which read the status before a disconnect still clears them. Only while
/// the connection is still disconnected once the tokens are read: an
/// authorisation completed meanwhile claimed the status before it wrote,
/// and its tokens stay. When the disconnect asked for revocation, what was
/// removed is kept in `ended` to be revoked: that disconnect may still be
/// running, and reads the tokens after ending the status.
async fn clear_ended_grant(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    ended: &mut Option<TokensRecord>,
) -> Result<(), StorageError> {
    let key = store::tokens_key(connection);
    store::remove_while(fx, &key, async |entry| {
        let (status, _) = status::read(fx, connection, now_ms).await?;
        let disconnected = status.state == State::Disconnected;
        if disconnected && status.revocation_asked(None) {
            *ended = store::decode::<TokensRecord>(&key, &entry.value).ok();
        }
        Ok(disconnected)
    })
    .await
}

fn check_options(options: &BeginOptions) -> Result<(), OptionError> {
    if let Some(scope) = options
        .extra_scopes
        .iter()
        .find(|s| !config::is_pleo_scope(s))
    {
        return Err(OptionError::InvalidScope(scope.clone()));
    }
    url::check_extra_params(&options.extra_params)?;
    if options
        .return_to
        .as_ref()
        .is_some_and(|r| r.len() > MAX_RETURN_TO)
    {
        return Err(OptionError::ReturnToTooLong);
    }
    if options
        .ttl_seconds
        .is_some_and(|t| !FLOW_TTL_RANGE.contains(&t))
    {
        return Err(OptionError::InvalidTtl);
    }
    Ok(())
}

/// Completes an authorisation from the callback: validates it, consumes
/// the pending flow (a state and a code are single-use), exchanges the code
/// and stores the tokens. With `expected` set, a state of another
/// connection is rejected.
pub async fn complete_async(
    fx: &Effects,
    now_ms: u64,
    callback_text: &str,
    expected: Option<&str>,
) -> Result<Completed, CompleteError> {
    let accepted = validate_callback(fx, now_ms, callback_text, expected).await?;
    let tokens = exchange_code(fx, now_ms, &accepted).await?;
    store_grant(fx, now_ms, accepted, tokens).await
}

/// A callback that passed validation, with the pending flow it consumed.
struct Accepted {
    flow: FlowRecord,
    state_hash: String,
    config: ConnectionConfig,
    /// The authorisation code (RFC 6749 §4.1.2).
    code: Secret,
}

/// Validates the authorisation response (RFC 6749 §4.1.2): the `state` must
/// name a pending flow, which is consumed whatever follows (§10.12: a state
/// is single-use), of the expected connection, not expired; the issuer is
/// checked before anything else in the response (RFC 9207 §2.4); an error
/// response (§4.1.2.1) ends the flow. A rejected callback ends the pending
/// flow too, except when the state names none.
async fn validate_callback(
    fx: &Effects,
    now_ms: u64,
    callback_text: &str,
    expected: Option<&str>,
) -> Result<Accepted, CompleteError> {
    let (callback, flow, state_hash) = consume_flow(fx, callback_text).await?;
    let connection = flow.connection.clone();
    // The lookup matched the hash already; compare again in constant time
    // so that no code path compares state material in variable time.
    if !bool::from(flow.state_hash.as_bytes().ct_eq(state_hash.as_bytes())) {
        return Err(reject(fx, RejectionReason::UnknownState, Some(&connection)).await);
    }
    // The record alone is not enough: a newer `begin`, a disconnect or a
    // forget ends the pending flow in the status first, and deletes the
    // record only on a best-effort basis.
    if !still_pending(&status::read(fx, &connection, now_ms).await?.0, &state_hash) {
        return Err(reject(fx, RejectionReason::UnknownState, Some(&connection)).await);
    }
    if expected.is_some_and(|expected| expected != connection) {
        let reason = RejectionReason::ConnectionMismatch;
        return Err(settle_and_reject(fx, &connection, &state_hash, now_ms, reason).await);
    }
    if now_ms >= flow.expires_at_ms {
        let reason = RejectionReason::ExpiredState;
        return Err(settle_and_reject(fx, &connection, &state_hash, now_ms, reason).await);
    }
    let Some(config) = store::read::<ConnectionConfig>(fx, &store::config_key(&connection)).await?
    else {
        return Err(reject(fx, RejectionReason::UnknownState, Some(&connection)).await);
    };
    let config = config.value;
    if flow
        .server
        .as_ref()
        .is_some_and(|server| *server != FlowServer::of(&config))
    {
        let message = "the connection's authorisation server or client changed after this authorisation began: no code was exchanged";
        let reason = RejectionReason::UnknownState;
        return Err(
            settle_and_reject_with(fx, &connection, &state_hash, now_ms, reason, message).await,
        );
    }
    if let Err(reason) = check_issuer(&config, callback.iss.as_deref()) {
        return Err(settle_and_reject(fx, &connection, &state_hash, now_ms, reason).await);
    }
    let code = match callback.result {
        Ok(code) => code,
        Err(error) => {
            settle(fx, &connection, &state_hash, now_ms).await?;
            events::emit(
                fx,
                Level::Warn,
                Kind::AuthorizationFailed,
                &connection,
                &[("error", error.code.as_str().to_owned())],
                "the authorisation server refused the authorisation",
            )
            .await;
            return Err(CompleteError::Denied { connection, error });
        }
    };
    Ok(Accepted {
        flow,
        state_hash,
        config,
        code,
    })
}

/// Parses the callback and looks up and consumes the pending flow its
/// `state` names (RFC 6749 §4.1.2, §10.12): deleted first, so that whatever
/// happens next the state is spent, and of two callbacks with one state
/// only one goes on. Returns the callback, the flow and the state's hash.
async fn consume_flow(
    fx: &Effects,
    callback_text: &str,
) -> Result<(Callback, FlowRecord, String), CompleteError> {
    let callback = match callback::parse(callback_text) {
        Ok(callback) => callback,
        Err(reason) => return Err(reject(fx, reason, None).await),
    };
    let state_hash = hash_state(&callback.state);
    let Some(flow) = store::read::<FlowRecord>(fx, &store::flow_key(&state_hash)).await? else {
        return Err(reject(fx, RejectionReason::UnknownState, None).await);
    };
    match fx.delete(&store::flow_key(&state_hash), flow.version).await {
        Ok(()) => Ok((callback, flow.value, state_hash)),
        // Another callback with the same state won the race: a replay.
        Err(crate::types::StorageError::Conflict) => {
            Err(reject(fx, RejectionReason::UnknownState, None).await)
        }
        Err(error) => Err(error.into()),
    }
}

/// RFC 9207 §2.4: with an issuer configured, a callback's `iss` must be
/// that issuer, and (when the configuration requires it) present.
fn check_issuer(config: &ConnectionConfig, iss: Option<&str>) -> Result<(), RejectionReason> {
    let Some(issuer) = &config.issuer else {
        return Ok(());
    };
    match iss {
        Some(iss) if iss != issuer => Err(RejectionReason::IssuerMismatch),
        None if config.require_iss => Err(RejectionReason::IssuerMissing),
        _ => Ok(()),
    }
}

/// Exchanges the authorisation code for tokens at the token endpoint
/// (RFC 6749 §4.1.3, with the PKCE verifier, RFC 7636 §4.5) and takes the
/// verdict on the response (§5.1, §5.2). A failed exchange ends the
/// pending flow without new tokens.
async fn exchange_code(
    fx: &Effects,
    now_ms: u64,
    accepted: &Accepted,
) -> Result<TokenSet, CompleteError> {
    let response = fx
        .send(exchange_request(
            &accepted.config,
            &accepted.flow,
            &accepted.code,
        ))
        .await;
    let failure =
        match classify::token_response(GrantKind::AuthorizationCode, response.as_ref(), now_ms) {
            TokenOutcome::Success(tokens) => return Ok(tokens),
            TokenOutcome::Reauthenticate(reauth) => ExchangeFailure::Reauthenticate(reauth),
            TokenOutcome::ClientMisconfigured(error) => ExchangeFailure::ClientMisconfigured(error),
            TokenOutcome::RequestInvalid(error) => ExchangeFailure::RequestInvalid(error),
            TokenOutcome::Transient(transient) => ExchangeFailure::Transient(transient),
            TokenOutcome::CredentialsMissing => ExchangeFailure::CredentialsMissing,
        };
    let connection = accepted.flow.connection.clone();
    settle(fx, &connection, &accepted.state_hash, now_ms).await?;
    events::emit(
        fx,
        Level::Warn,
        Kind::AuthorizationFailed,
        &connection,
        &[
            ("stage", "code-exchange".into()),
            ("verdict", exchange_verdict(&failure).into()),
        ],
        "the authorisation code could not be exchanged for tokens",
    )
    .await;
    Err(CompleteError::ExchangeFailed {
        connection,
        failure,
    })
}

/// Writes a claimed grant's tokens over whatever is stored (the grant
/// before, perhaps just rotated: the new grant replaces it), while the
/// status still names the grant and the claim is fresh
/// ([`status::CLAIM_WRITES_MS`]). `None` when the claim was overtaken or
/// went stale: nothing written. Tokens of this grant already stored are
/// this write, landed (an outcome that was unknown), perhaps rotated since
/// by a refresh: never written over.
async fn write_claimed(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    state_hash: &str,
    record: &TokensRecord,
) -> Result<Option<u64>, StorageError> {
    let key = store::tokens_key(connection);
    let ours = |entry: &Entry| {
        store::decode::<TokensRecord>(&key, &entry.value)
            .is_ok_and(|t| t.grant.as_deref() == Some(state_hash))
    };
    let claim_stands = async || {
        let (status, _) = status::read(fx, connection, now_ms).await?;
        let fresh = fx.now_ms().await < status.claimed_ms.saturating_add(status::CLAIM_WRITES_MS);
        Ok(status.grant.as_deref() == Some(state_hash) && fresh)
    };
    store::replace_while(fx, &key, record, ours, claim_stands).await
}

/// The tokens of a claimed flow could not be stored: the status goes back
/// to what it was before the claim, with the flow ended, as after a failed
/// exchange, while the claim stands. Best effort.
async fn unclaim(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    state_hash: &str,
    before: Status,
    had_tokens: bool,
) {
    let mut restored = before;
    restored.settle(had_tokens, now_ms);
    let _ = status::update(fx, connection, now_ms, async |status| {
        if status.grant.as_deref() == Some(state_hash) && status.flow.is_none() {
            Ok(restored.clone())
        } else {
            Err(Declined::Moved)
        }
    })
    .await;
}

/// Whether the connection is still waiting for the flow with this state.
fn still_pending(status: &Status, state_hash: &str) -> bool {
    status.flow.as_deref() == Some(state_hash)
}

/// Stores the access token response (RFC 6749 §5.1) as the connection's
/// tokens, replacing any earlier grant (an omitted `scope` means the
/// scopes requested, §5.1), and the status: connected, the pending flow,
/// the missing scopes it asked for and any earlier failure history cleared.
///
/// The code exchange takes a round trip, in which the flow may end: a
/// disconnect, a forget or a newer `begin`. So the flow is claimed in the
/// status first, and the tokens written only while that claim stands
/// (see below); otherwise the callback is rejected as `unknown-state`: a
/// disconnected or forgotten connection never gets tokens, and a
/// superseded flow never replaces the grant.
async fn store_grant(
    fx: &Effects,
    now_ms: u64,
    accepted: Accepted,
    tokens: TokenSet,
) -> Result<Completed, CompleteError> {
    let Accepted {
        flow,
        state_hash,
        config,
        ..
    } = accepted;
    let connection = flow.connection;
    let scopes = tokens.scope.unwrap_or(flow.scopes);
    let record = TokensRecord {
        access_token: tokens.access_token.into(),
        refresh_token: tokens.refresh_token.map(Into::into),
        expires_at_ms: tokens
            .expires_in
            .map(|s| now_ms.saturating_add(u64::from(s) * 1000)),
        scopes: scopes.clone(),
        obtained_at_ms: now_ms,
        after_unauthorized: false,
        unconfirmed: false,
        grant: Some(state_hash.clone()),
        refused: false,
    };
    // Claim the flow first: the status moves to connected, naming this
    // grant, only while the flow is still pending; only then are the
    // tokens written, and only while the claim stands. A flow that ended
    // writes no tokens, and nothing is ever restored (which could undo
    // another worker's rotation). Whether tokens are stored is read first,
    // for the way back.
    let had_tokens = status::has_tokens(fx, &connection).await?;
    let claimed_ms = fx.now_ms().await.max(now_ms);
    let mut before = None;
    let claimed = status::update(fx, &connection, now_ms, async |mut status| {
        if !still_pending(&status, &state_hash) {
            return Err(Declined::Moved);
        }
        before = Some(status.clone());
        status.grant = Some(state_hash.clone());
        status.claimed_ms = claimed_ms;
        status.revocation_asked = None;
        status.reason = None;
        status.flow = None;
        status.missing_scopes.retain(|s| !scopes.contains(s));
        status.clear_failures();
        status.in_flight = None;
        status.fresh_rejections = 0;
        status.enter(State::Connected, now_ms);
        Ok(status)
    })
    .await;
    let before = match (claimed, before) {
        (Ok(_), Some(before)) => before,
        (Err(Declined::Storage(error)), _) => return Err(error.into()),
        // The flow ended during the code exchange.
        _ => return Err(not_kept(fx, &config, &connection, &record, &state_hash).await),
    };
    let tokens_key = store::tokens_key(&connection);
    let version = match write_claimed(fx, now_ms, &connection, &state_hash, &record).await {
        Ok(Some(version)) => version,
        // A disconnect, a forget or a newer authorisation overtook the claim
        // (then it stays as they left it), or it went stale.
        Ok(None) => {
            unclaim(fx, now_ms, &connection, &state_hash, before, had_tokens).await;
            return Err(not_kept(fx, &config, &connection, &record, &state_hash).await);
        }
        Err(error) => {
            unclaim(fx, now_ms, &connection, &state_hash, before, had_tokens).await;
            return Err(error.into());
        }
    };
    // The claim may have been overtaken between the last check and the
    // write: take the tokens back (only this version: a later write stands).
    let (now, _) = status::read(fx, &connection, now_ms).await?;
    if now.grant.as_deref() != Some(state_hash.as_str()) {
        let _ = fx.delete(&tokens_key, version).await;
        return Err(not_kept(fx, &config, &connection, &record, &state_hash).await);
    }
    let reason = before.reason;
    let recovered = reason.is_some();
    let mut fields = vec![("scopes", scopes.join(" "))];
    match reason {
        Some(reason) => {
            fields.push(("reason", kebab(&reason)));
            events::emit(
                fx,
                Level::Info,
                Kind::ReauthCompleted,
                &connection,
                &fields,
                "re-authentication completed: recovered",
            )
            .await;
        }
        None => {
            events::emit(
                fx,
                Level::Info,
                Kind::Connected,
                &connection,
                &fields,
                "connected: tokens stored",
            )
            .await
        }
    }
    Ok(Completed {
        connection,
        return_to: flow.return_to,
        scopes,
        recovered,
    })
}

/// The grant this exchange obtained is not kept: the flow ended during the
/// exchange (a disconnect, a forget, a newer authorisation), so the
/// callback is rejected as `unknown-state`, after the grant is revoked if
/// the user disconnected asking for that.
async fn not_kept(
    fx: &Effects,
    config: &ConnectionConfig,
    connection: &str,
    tokens: &TokensRecord,
    state_hash: &str,
) -> CompleteError {
    let by = "code-exchange";
    revocation::revoke_late_grant(fx, config, connection, tokens, by, Some(state_hash)).await;
    let message = "the authorisation ended while its code was exchanged: the tokens were not kept";
    reject_with(fx, RejectionReason::UnknownState, Some(connection), message).await
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
fn exchange_request(config: &ConnectionConfig, flow: &FlowRecord, code: &Secret) -> Request {
    let verifier = flow.verifier.to_secret();
    request::form_post(
        config,
        config.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", &flow.redirect_uri),
            ("code_verifier", verifier.expose()),
        ],
    )
}

/// Ends the pending authorisation without new tokens: the connection
/// returns to where it was (still needing re-authentication, with its
/// reason; or connected; or new). Only when this flow is still the
/// pending one.
async fn settle(
    fx: &Effects,
    connection: &str,
    state_hash: &str,
    now_ms: u64,
) -> Result<(), StorageError> {
    let has_tokens = status::has_tokens(fx, connection).await?;
    status::update(fx, connection, now_ms, async |mut status| {
        if status.flow.as_deref() == Some(state_hash) {
            status.settle(has_tokens, now_ms);
        }
        Ok::<_, StorageError>(status)
    })
    .await?;
    Ok(())
}

/// Ends the pending authorisation (see [`settle`]) and rejects the
/// callback; a storage failure while settling is the error instead.
async fn settle_and_reject(
    fx: &Effects,
    connection: &str,
    state_hash: &str,
    now_ms: u64,
    reason: RejectionReason,
) -> CompleteError {
    let message = REJECTED_BEFORE_EXCHANGE;
    settle_and_reject_with(fx, connection, state_hash, now_ms, reason, message).await
}

/// [`settle_and_reject`], with another message on the event.
async fn settle_and_reject_with(
    fx: &Effects,
    connection: &str,
    state_hash: &str,
    now_ms: u64,
    reason: RejectionReason,
    message: &str,
) -> CompleteError {
    match settle(fx, connection, state_hash, now_ms).await {
        Ok(()) => reject_with(fx, reason, Some(connection), message).await,
        Err(error) => error.into(),
    }
}

/// Deletes a superseded pending flow; best effort (it expires anyway).
async fn discard_flow(fx: &Effects, state_hash: &str) {
    let key = store::flow_key(state_hash);
    if let Ok(Some(entry)) = fx.get(&key).await {
        let _ = fx.delete(&key, entry.version).await;
    }
}

/// Records a rejected callback as a security event and builds the error.
async fn reject(fx: &Effects, reason: RejectionReason, connection: Option<&str>) -> CompleteError {
    reject_with(fx, reason, connection, REJECTED_BEFORE_EXCHANGE).await
}

/// The event message of a callback rejected before any exchange.
const REJECTED_BEFORE_EXCHANGE: &str =
    "an authorisation callback was rejected before any code exchange";

/// [`reject`], with another message on the event.
async fn reject_with(
    fx: &Effects,
    reason: RejectionReason,
    connection: Option<&str>,
    message: &str,
) -> CompleteError {
    events::emit_for(
        fx,
        Level::Warn,
        Kind::StateMismatch,
        connection,
        &[("reason", kebab(&reason))],
        message,
    )
    .await;
    CompleteError::Rejected(Rejection {
        reason,
        connection: connection.map(str::to_owned),
    })
}

fn exchange_verdict(failure: &ExchangeFailure) -> &'static str {
    match failure {
        ExchangeFailure::Reauthenticate(_) => "code-rejected",
        ExchangeFailure::ClientMisconfigured(_) => "client-misconfigured",
        ExchangeFailure::RequestInvalid(_) => "request-invalid",
        ExchangeFailure::Transient(_) => "transient",
        ExchangeFailure::CredentialsMissing => "credentials-missing",
    }
}

/// `BASE64URL(SHA256(state))`: the key of a pending flow.
pub(crate) fn hash_state(state: &Secret) -> String {
    state.fingerprint()
}

/// Starts an authorisation (see [`begin_async`]), performing every effect
/// through `io`.
pub fn begin(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    options: &BeginOptions,
) -> Result<Authorization, BeginError> {
    drive(io, async |fx| {
        begin_async(fx, now_ms, connection, options).await
    })
}

/// Completes an authorisation (see [`complete_async`]), performing every
/// effect through `io`.
pub fn complete(
    io: &mut dyn Io,
    now_ms: u64,
    callback_text: &str,
    expected: Option<&str>,
) -> Result<Completed, CompleteError> {
    drive(io, async |fx| {
        complete_async(fx, now_ms, callback_text, expected).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::config::tests::config;
    use crate::io::fake::FakeIo;
    use crate::types::Response;

    const NOW: u64 = 1_700_000_000_000;

    fn state_of(url: &Secret) -> String {
        let url = ::url::Url::parse(url.expose()).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned()
    }

    /// RFC 6749 §4.1: begin, callback, exchange, tokens stored; the state is
    /// single-use (§10.12) and time is only ever an argument.
    #[test]
    fn rfc6749_4_1_flow_and_single_use_state() {
        let mut io = FakeIo::default();
        crate::connection::configure(&mut io, "c1", &config()).unwrap();
        let authorization = begin(&mut io, NOW, "c1", &BeginOptions::default()).unwrap();
        assert_eq!(authorization.expires_at_ms, NOW + 600_000);
        let body =
            br#"{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt"}"#;
        io.respond(Ok(Response {
            status: 200,
            headers: vec![],
            body: body.to_vec(),
        }));
        let callback = format!("code=c&state={}", state_of(&authorization.url));
        let done = complete(&mut io, NOW + 1, &callback, Some("c1")).unwrap();
        assert_eq!(done.scopes, config().scopes);
        assert!(io.store.contains_key("tokens/c1"));
        assert!(
            !io.store.keys().any(|k| k.starts_with("flow/")),
            "the flow is consumed"
        );
        let again = complete(&mut io, NOW + 2, &callback, None).unwrap_err();
        assert!(matches!(
            again,
            CompleteError::Rejected(Rejection {
                reason: RejectionReason::UnknownState,
                ..
            })
        ));
        assert_eq!(io.sent.len(), 1);
        assert_eq!(
            io.kinds(),
            ["authorization-started", "connected", "state-mismatch"]
        );
    }

    /// RFC 9207 §2.4 and RFC 9700 §4.4 (mix-up): a code is redeemed, and
    /// `iss` compared, only at the authorisation server the request went
    /// to. A `configure` that names another server or client while an
    /// authorisation is pending ends it: its callback is refused before any
    /// request, whichever server's `iss` it carries. A change that leaves
    /// the server and client alone (the scopes) does not.
    #[test]
    fn rfc9207_2_4_a_code_is_redeemed_only_at_the_server_the_request_went_to() {
        use crate::connection::config::{CustomEndpoints, Environment};
        let server = |host: &str| ConnectionConfig {
            environment: Environment::Custom(CustomEndpoints {
                authorize_url: format!("https://{host}/authorize"),
                token_url: format!("https://{host}/token"),
            }),
            issuer: Some(format!("https://{host}")),
            require_iss: true,
            ..config()
        };
        for iss in ["as-b.example", "as-a.example"] {
            let mut io = FakeIo::default();
            crate::connection::configure(&mut io, "c1", &server("as-a.example")).unwrap();
            let pending = begin(&mut io, NOW, "c1", &BeginOptions::default()).unwrap();
            crate::connection::configure(&mut io, "c1", &server("as-b.example")).unwrap();
            io.respond(tokens_answer("at"));
            let callback = format!(
                "code=c&state={}&iss=https%3A%2F%2F{iss}",
                state_of(&pending.url)
            );
            let refused = complete(&mut io, NOW + 1, &callback, Some("c1")).unwrap_err();
            assert!(
                matches!(
                    refused,
                    CompleteError::Rejected(Rejection {
                        reason: RejectionReason::UnknownState,
                        ..
                    })
                ),
                "{iss}: {refused:?}"
            );
            assert!(io.sent.is_empty(), "{iss}: no code was sent anywhere");
            assert!(!io.store.contains_key("tokens/c1"));
            let view = crate::connection::status_view(&mut io, NOW + 2, "c1").unwrap();
            assert_ne!(view.state, State::Authorizing, "{iss}: the flow is ended");
        }

        let mut io = FakeIo::default();
        crate::connection::configure(&mut io, "c1", &server("as-a.example")).unwrap();
        let pending = begin(&mut io, NOW, "c1", &BeginOptions::default()).unwrap();
        let rescoped = ConnectionConfig {
            scopes: vec!["users:read".into()],
            ..server("as-a.example")
        };
        crate::connection::configure(&mut io, "c1", &rescoped).unwrap();
        io.respond(tokens_answer("at"));
        let callback = format!(
            "code=c&state={}&iss=https%3A%2F%2Fas-a.example",
            state_of(&pending.url)
        );
        complete(&mut io, NOW + 1, &callback, Some("c1")).unwrap();
        assert_eq!(io.sent.len(), 1);
        assert_eq!(io.sent[0].url, "https://as-a.example/token");
    }

    fn tokens_answer(access: &str) -> Result<Response, crate::types::TransportError> {
        let body = format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{access}"}}"#
        );
        Ok(Response {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        })
    }

    fn unknown_state(result: Result<Completed, CompleteError>) -> bool {
        matches!(
            result,
            Err(CompleteError::Rejected(Rejection {
                reason: RejectionReason::UnknownState,
                ..
            }))
        )
    }

    /// Completes `callback` for `c1`: whether it is rejected as
    /// `unknown-state`.
    fn completes_as_unknown_state(io: &mut FakeIo, callback: &str) -> bool {
        unknown_state(complete(io, NOW + 3, callback, Some("c1")))
    }

    fn stored_access_token(io: &FakeIo) -> Option<String> {
        let entry = io.store.get("tokens/c1")?;
        let record: TokensRecord = store::decode("tokens/c1", &entry.value).unwrap();
        Some(record.access_token.to_secret().into_exposed())
    }

    /// A configured, connected `c1` (AT-1), and a pending authorisation of
    /// it (say, for more scopes) whose callback is returned.
    fn connected_and_authorizing() -> (FakeIo, String) {
        let mut io = FakeIo::default();
        crate::connection::configure(&mut io, "c1", &config()).unwrap();
        let first = begin(&mut io, NOW, "c1", &BeginOptions::default()).unwrap();
        io.respond(tokens_answer("AT-1"));
        let callback = format!("code=c&state={}", state_of(&first.url));
        complete(&mut io, NOW, &callback, Some("c1")).unwrap();
        let second = begin(&mut io, NOW + 1, "c1", &BeginOptions::default()).unwrap();
        (io, format!("code=c&state={}", state_of(&second.url)))
    }

    /// `connections.disconnect` wipes the tokens and any pending
    /// authorisation: a code exchange in flight at the time must not write
    /// them back when its answer arrives.
    #[test]
    fn a_disconnect_during_the_code_exchange_stands() {
        let (mut io, callback) = connected_and_authorizing();
        io.meanwhile(|other| {
            crate::connection::disconnect(other, NOW + 2, "c1", false).unwrap();
        });
        io.respond(tokens_answer("AT-2"));
        assert!(completes_as_unknown_state(&mut io, &callback));
        assert_eq!(stored_access_token(&io), None);
        let view = crate::connection::status_view(&mut io, NOW + 4, "c1").unwrap();
        assert_eq!(view.state, State::Disconnected);
    }

    /// `connections.forget` deletes everything stored: nothing of the
    /// connection may come back, or a connection configured later under the
    /// same id would be served the old grant.
    #[test]
    fn a_forget_during_the_code_exchange_stands() {
        let (mut io, callback) = connected_and_authorizing();
        io.meanwhile(|other| crate::connection::forget(other, "c1").unwrap());
        io.respond(tokens_answer("AT-2"));
        assert!(completes_as_unknown_state(&mut io, &callback));
        let left: Vec<&String> = io.store.keys().collect();
        assert!(left.is_empty(), "left after forget: {left:?}");
    }

    /// A newer `begin` supersedes a pending flow (`authorize.begin`): a
    /// superseded flow whose exchange was in flight does not replace the
    /// grant, which stays as it was.
    #[test]
    fn a_flow_superseded_during_the_code_exchange_leaves_the_grant() {
        let (mut io, callback) = connected_and_authorizing();
        io.meanwhile(|other| {
            begin(other, NOW + 2, "c1", &BeginOptions::default()).unwrap();
        });
        io.respond(tokens_answer("AT-2"));
        assert!(completes_as_unknown_state(&mut io, &callback));
        assert_eq!(stored_access_token(&io).as_deref(), Some("AT-1"));
        let view = crate::connection::status_view(&mut io, NOW + 4, "c1").unwrap();
        assert_eq!(view.state, State::Authorizing);
    }

    /// The status decides whether a flow is pending, not the flow record,
    /// whose deletion is best effort: when it fails, after a disconnect or
    /// a newer `begin`, the old callback is still `unknown-state`, and no
    /// code is exchanged.
    #[test]
    fn an_ended_flow_whose_record_survived_is_unknown() {
        let (mut io, callback) = connected_and_authorizing();
        let unavailable = || StorageError::Unavailable("down".into());
        io.write_faults.push(("flow/".into(), unavailable()));
        crate::connection::disconnect(&mut io, NOW + 2, "c1", false).unwrap();
        assert!(io.store.keys().any(|k| k.starts_with("flow/")));
        assert!(completes_as_unknown_state(&mut io, &callback));

        // A newer `begin` whose deletion of the superseded record failed.
        let (mut io, callback) = connected_and_authorizing();
        let superseded: Vec<(String, crate::types::Entry)> = io
            .store
            .iter()
            .filter(|(k, _)| k.starts_with("flow/"))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        begin(&mut io, NOW + 2, "c1", &BeginOptions::default()).unwrap();
        io.store.extend(superseded);
        assert!(completes_as_unknown_state(&mut io, &callback));
        assert_eq!(stored_access_token(&io).as_deref(), Some("AT-1"));
        assert_eq!(io.sent.len(), 1, "no second code exchange");
    }

    /// The storage conflict budget is bounded: a store that always conflicts
    /// gives a typed error, never a loop.
    #[test]
    fn endless_conflicts_are_a_typed_error() {
        let mut io = FakeIo::default();
        crate::connection::configure(&mut io, "c1", &config()).unwrap();
        for _ in 0..64 {
            io.faults.push_back(crate::types::StorageError::Conflict);
        }
        assert_eq!(
            begin(&mut io, NOW, "c1", &BeginOptions::default()),
            Err(BeginError::Storage(StorageError::Conflict))
        );
    }
}
