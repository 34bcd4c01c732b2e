//! Connections: configuration, stored state and status, and the
//! operations on them: configure, status, the API gate (`access_token`),
//! reporting an API outcome, retry-now, disconnect and forget.
//!
//! The modules below depend on one another in one direction only: the
//! configuration and the storage model (`config`, `store`) at the bottom,
//! then the status, the lease, the back-off and the requests; then the
//! vocabulary of a call for a token (`outcome`); then the refresh, the gate
//! on top of it, and the report on top of both. Revocation at the server
//! (`revocation`) sits with the requests: the refresh, a code exchange
//! and `disconnect` use it. Disconnect and forget (`lifecycle`) use only
//! the lower layers. Only the operations and their types are public,
//! re-exported here.

mod backoff;
pub(crate) mod config;
mod gate;
mod lease;
mod lifecycle;
mod outcome;
mod refresh;
mod report;
pub(crate) mod request;
pub(crate) mod revocation;
pub(crate) mod status;
pub(crate) mod store;

pub use crate::types::StorageError;
pub use config::{
    ClientType, ConnectionConfig, CustomEndpoints, Environment, InvalidConfig, PRODUCTION_AS,
    STAGING_AS, secure_url, validate_connection_id,
};
pub use gate::access_token as access_token_async;
pub use lease::{LEASE_MS, MAX_CLOCK_SKEW_MS};
pub use lifecycle::DisconnectError;
pub use lifecycle::{disconnect as disconnect_async, forget as forget_async};
pub use outcome::{Bearer, ClientFault, NO_CREDENTIALS, NotConnected, Refusal, WaitReason};
pub use report::{ApiAction, report as report_async};
pub use revocation::Revocation;
pub use status::{Reason, State};
// The stored records (`status/{id}`, `flow/{hash}`, `tokens/{id}`): their
// JSON is the storage format, which the fuzz targets decode; their fields
// are the core's business.
pub use status::Status;
pub use store::{FlowRecord, TokensRecord};

use crate::effects::{Effects, drive};
use crate::events::{self, Kind};
use crate::io::Io;
use crate::types::Level;
use crate::types::ResponseHead;
use store::Versioned;

/// Saves a connection's configuration (creating the connection). Tokens
/// and status are untouched.
pub async fn configure_async(
    fx: &Effects,
    connection: &str,
    config: &ConnectionConfig,
) -> Result<(), ConfigureError> {
    config::validate_connection_id(connection)?;
    config.validate()?;
    store::replace(fx, &store::config_key(connection), config).await?;
    Ok(())
}

/// Reads a connection's configuration.
pub async fn get_config_async(
    fx: &Effects,
    connection: &str,
) -> Result<Option<ConnectionConfig>, StorageError> {
    Ok(store::read(fx, &store::config_key(connection))
        .await?
        .map(|v: Versioned<ConnectionConfig>| v.value))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigureError {
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One connection in a listing (`connections.list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    pub connection: String,
    pub state: State,
    pub reason: Option<Reason>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPage {
    /// In ascending (bytewise) order of id.
    pub connections: Vec<ConnectionSummary>,
    /// The `after` of the next page; `None` on the last one.
    pub next_after: Option<String>,
}

/// The most connections one page of [`list`] holds.
pub const MAX_PAGE: u32 = 1000;

/// Lists the configured connections after the id `after`, at most `limit`
/// (clamped to 1 to [`MAX_PAGE`]) per page, each with the state and reason
/// [`status_view`] gives (from the status alone, without the reads only a
/// full view needs): the listing a host shows without reading storage
/// itself. A connection forgotten while the page is read is left out.
pub async fn list_async(
    fx: &Effects,
    now_ms: u64,
    after: Option<&str>,
    limit: u32,
) -> Result<ConnectionPage, StorageError> {
    const PREFIX: &str = "config/";
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    let after = after.map(store::config_key);
    // One more than a page, to know whether another follows.
    let keys = fx.keys(PREFIX, after.as_deref(), limit as u32 + 1).await?;
    let more = keys.len() > limit;
    let mut connections = Vec::with_capacity(limit.min(keys.len()));
    for id in keys
        .iter()
        .take(limit)
        .filter_map(|k| k.strip_prefix(PREFIX))
    {
        // Two reads a connection (three while authorizing), not a whole
        // status view: a worker may list every round.
        if fx.get(&store::config_key(id)).await?.is_none() {
            continue;
        }
        let (status, ..) = current_status(fx, now_ms, id).await?;
        connections.push(ConnectionSummary {
            connection: id.to_owned(),
            state: status.state,
            reason: status.reason,
        });
    }
    let next_after = more
        .then(|| keys.get(limit - 1).and_then(|k| k.strip_prefix(PREFIX)))
        .flatten()
        .map(str::to_owned);
    Ok(ConnectionPage {
        connections,
        next_after,
    })
}

/// A connection's status as the `connections.status` export reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    pub state: State,
    pub since_ms: u64,
    pub reason: Option<Reason>,
    pub access_expires_at_ms: Option<u64>,
    pub scopes: Vec<String>,
    pub missing_scopes: Vec<String>,
    pub authorization_expires_at_ms: Option<u64>,
    /// Consecutive failed refreshes.
    pub failures: u32,
    /// No refresh before this time (Unix ms), while backing off.
    pub next_retry_at_ms: Option<u64>,
    /// The last successful refresh (Unix ms).
    pub last_refresh_at_ms: Option<u64>,
    /// What the last failed refresh saw (never a secret).
    pub last_error: Option<String>,
    /// Until when another worker holds the refresh lease (Unix ms).
    pub refreshing_until_ms: Option<u64>,
    /// Since when refreshes have failed without a break (Unix ms).
    pub failing_since_ms: Option<u64>,
    /// When a refresh whose outcome never arrived went out (Unix ms).
    pub refresh_outcome_unknown_since_ms: Option<u64>,
    /// API 401s to freshly refreshed tokens since the last authorisation.
    pub fresh_token_rejections: u32,
    pub next_action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("no connection with this id is configured")]
    UnknownConnection,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Reads everything a user interface shows about a connection.
/// The stored status as it stands at `now`, with the pending authorisation
/// while one is still running. An authorisation that expired, or whose
/// record is gone (abandoned: the browser tab closed, the command
/// interrupted), is no longer in progress: the status shows the state it
/// left the connection in (`true` then), as the stored status settles at
/// the next `begin` or callback. Reads the flow, and whether tokens exist,
/// only while authorizing.
async fn current_status(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
) -> Result<(status::Status, Option<store::FlowRecord>, bool), StorageError> {
    let (mut status, _) = status::read(fx, connection, now_ms).await?;
    let flow = match &status.flow {
        Some(hash) => store::read::<store::FlowRecord>(fx, &store::flow_key(hash))
            .await?
            .map(|v| v.value),
        None => None,
    };
    let abandoned = status.state == State::Authorizing
        && flow.as_ref().is_none_or(|f| f.expires_at_ms <= now_ms);
    if !abandoned {
        return Ok((status, flow, false));
    }
    let has_tokens = fx.get(&store::tokens_key(connection)).await?.is_some();
    let since = flow.as_ref().map_or(status.since_ms, |f| f.expires_at_ms);
    status.settle(has_tokens, since);
    Ok((status, None, true))
}

pub async fn status_view_async(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
) -> Result<StatusView, StatusError> {
    if config::validate_connection_id(connection).is_err()
        || get_config_async(fx, connection).await?.is_none()
    {
        return Err(StatusError::UnknownConnection);
    }
    let (mut status, flow, mut abandoned) = current_status(fx, now_ms, connection).await?;
    let tokens = store::read::<store::TokensRecord>(fx, &store::tokens_key(connection))
        .await?
        .map(|v| v.value);
    if status.claim_abandoned(tokens.is_some(), now_ms) {
        status.settle_abandoned_claim();
        abandoned = true;
    }
    let refreshing_until_ms = lease::held_until(fx, connection, now_ms).await?;
    let next_action = match (status.state, status.reason) {
        (State::New, _) if abandoned => {
            "The authorisation that was started expired or was abandoned. Connect to Pleo to start again."
        }
        (State::New, _) => "Connect to Pleo to start.",
        (State::Authorizing, Some(_)) => {
            "Finish reconnecting to Pleo in the browser window that opened."
        }
        (State::Authorizing, None) => {
            "Finish connecting to Pleo in the browser window that opened."
        }
        (State::Connected, _) if !status.missing_scopes.is_empty() => {
            "Connected. Reconnect to Pleo to grant the extra access a feature needs."
        }
        (State::Connected, _) => "Connected. Nothing to do.",
        (State::Degraded, _) => {
            "Pleo is not answering refreshes right now; retrying automatically. Nothing to do unless it lasts."
        }
        (State::Stalled, _) => {
            "Refreshing has failed for a long time without a break; retrying slowly. An administrator should check the network path to Pleo; your settings and tokens are kept."
        }
        (State::ClientError, _) if status.client_error.as_deref() == Some(NO_CREDENTIALS) => {
            "This integration's client secret is not configured. An administrator must provide it; your settings are kept."
        }
        (State::ClientError, _) => {
            "Pleo refuses this integration's client credentials. An administrator must check the client id and secret; your settings are kept."
        }
        (State::Disconnected, _) => {
            "Disconnected. Connect to Pleo again to resume; your settings are kept."
        }
        (State::ReauthRequired, Some(Reason::RotationLost)) => {
            "The connection to Pleo was lost through a technical fault, not by anything you did. Reconnect to Pleo; your settings are kept."
        }
        (State::ReauthRequired, Some(Reason::RefreshTokenReused)) => {
            "Pleo ended the connection after a technical fault in this integration, not by anything you did. Reconnect to Pleo; your settings are kept."
        }
        (State::ReauthRequired, Some(Reason::NoRefreshToken)) => {
            "The Pleo session ended. Reconnect to Pleo; your settings are kept."
        }
        (State::ReauthRequired, _) => {
            "Pleo no longer accepts this connection (it expired, or access was revoked). Reconnect to Pleo; your settings are kept."
        }
    };
    Ok(StatusView {
        state: status.state,
        since_ms: status.since_ms,
        reason: status.reason,
        access_expires_at_ms: tokens.as_ref().and_then(|t| t.expires_at_ms),
        scopes: tokens.map(|t| t.scopes).unwrap_or_default(),
        missing_scopes: status.missing_scopes,
        authorization_expires_at_ms: flow.map(|f| f.expires_at_ms),
        failures: status.failures,
        next_retry_at_ms: status.next_retry_ms,
        last_refresh_at_ms: status.last_refresh_ms,
        last_error: status.last_error,
        refreshing_until_ms,
        failing_since_ms: status.failing_since_ms,
        refresh_outcome_unknown_since_ms: status
            .in_flight
            .filter(|record| record.cause.is_some())
            .map(|record| record.since_ms),
        fresh_token_rejections: status.fresh_rejections,
        next_action: next_action.to_owned(),
    })
}

/// Clears the back-off so that the next gate call refreshes at once: for
/// an operator who has just fixed the client secret or the network. The
/// failure history stays until a refresh succeeds.
pub async fn retry_now_async(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
) -> Result<(), StatusError> {
    if config::validate_connection_id(connection).is_err()
        || get_config_async(fx, connection).await?.is_none()
    {
        return Err(StatusError::UnknownConnection);
    }
    let mut cleared = None;
    status::update(fx, connection, now_ms, async |mut status| {
        cleared = status.next_retry_ms.take();
        Ok::<_, StorageError>(status)
    })
    .await?;
    events::emit(
        fx,
        Level::Info,
        Kind::RetryNow,
        connection,
        &[(
            "cleared-retry-at-ms",
            cleared.map_or_else(|| "none".to_owned(), |at| at.to_string()),
        )],
        "an operator cleared the back-off; the next call refreshes at once",
    )
    .await;
    Ok(())
}

// The synchronous operations, for the import-based exports and the tests:
// each runs its `_async` twin (the only implementation) with every effect
// performed through `io` at once.

/// Saves a connection's configuration (see [`configure_async`]).
pub fn configure(
    io: &mut dyn Io,
    connection: &str,
    config: &ConnectionConfig,
) -> Result<(), ConfigureError> {
    drive(io, async |fx| configure_async(fx, connection, config).await)
}

/// Reads a connection's configuration (see [`get_config_async`]).
pub fn get_config(
    io: &mut dyn Io,
    connection: &str,
) -> Result<Option<ConnectionConfig>, StorageError> {
    drive(io, async |fx| get_config_async(fx, connection).await)
}

/// Lists the configured connections (see [`list_async`]).
pub fn list(
    io: &mut dyn Io,
    now_ms: u64,
    after: Option<&str>,
    limit: u32,
) -> Result<ConnectionPage, StorageError> {
    drive(io, async |fx| list_async(fx, now_ms, after, limit).await)
}

/// A connection's status (see [`status_view_async`]).
pub fn status_view(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
) -> Result<StatusView, StatusError> {
    drive(io, async |fx| {
        status_view_async(fx, now_ms, connection).await
    })
}

/// Clears the back-off (see [`retry_now_async`]).
pub fn retry_now(io: &mut dyn Io, now_ms: u64, connection: &str) -> Result<(), StatusError> {
    drive(io, async |fx| retry_now_async(fx, now_ms, connection).await)
}

/// The API gate (see [`access_token_async`]).
pub fn access_token(io: &mut dyn Io, now_ms: u64, connection: &str) -> Result<Bearer, Refusal> {
    drive(io, async |fx| {
        access_token_async(fx, now_ms, connection).await
    })
}

/// Reports an API call's outcome (see [`report_async`]).
pub fn report(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    access_token: &str,
    response: &ResponseHead,
) -> Result<ApiAction, Refusal> {
    drive(io, async |fx| {
        report_async(fx, now_ms, connection, access_token, response).await
    })
}

/// Disconnects (see [`disconnect_async`]).
pub fn disconnect(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    revoke: bool,
) -> Result<Revocation, DisconnectError> {
    drive(io, async |fx| {
        disconnect_async(fx, now_ms, connection, revoke).await
    })
}

/// Deletes everything stored for a connection (see [`forget_async`]).
pub fn forget(io: &mut dyn Io, connection: &str) -> Result<(), StorageError> {
    drive(io, async |fx| forget_async(fx, connection).await)
}

#[cfg(test)]
mod interleave_tests;
#[cfg(test)]
mod tests;
