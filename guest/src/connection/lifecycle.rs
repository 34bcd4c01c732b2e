//! Ending a connection: disconnect (the user's choice; tokens go, the
//! configuration stays) and forget (everything goes).

use serde::{Deserialize, Serialize};

use super::config::{self, ConnectionConfig};
use super::request;
use super::status::{self, State};
use super::store::{self, StorageError, TokensRecord};
use crate::classify::ErrorCode;
use crate::events::{self, Kind, kebab};
use crate::io::Io;
use crate::types::Level;

/// What happened to the grant at the server on disconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Revocation {
    /// Revocation was not asked for.
    NotRequested,
    /// No revocation endpoint is configured (Pleo documents none).
    NotConfigured,
    /// There were no tokens to revoke.
    NoToken,
    /// The server confirmed (RFC 7009 §2.2: also for an already-invalid token).
    Revoked,
    /// The server did not confirm: a status, an error code or a transport
    /// failure, for operators. The local tokens are wiped all the same.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectError {
    #[error("no connection with this id is configured")]
    UnknownConnection,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Disconnects: optionally revokes the grant (RFC 7009), wipes the tokens,
/// ends any pending authorisation, and keeps the configuration. The
/// connection is `disconnected` until the user authorises again.
pub fn disconnect(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    revoke: bool,
) -> Result<Revocation, DisconnectError> {
    config::validate_connection_id(connection).map_err(|_| DisconnectError::UnknownConnection)?;
    let config = store::read::<ConnectionConfig>(io, &store::config_key(connection))?
        .ok_or(DisconnectError::UnknownConnection)?
        .value;
    let tokens = store::read::<TokensRecord>(io, &store::tokens_key(connection))?;
    let revocation = match (&config.revocation_url, tokens) {
        _ if !revoke => Revocation::NotRequested,
        (None, _) => Revocation::NotConfigured,
        (Some(_), None) => Revocation::NoToken,
        (Some(url), Some(tokens)) => revoke_grant(io, &config, url, &tokens.value),
    };
    store::remove(io, &store::tokens_key(connection))?;
    let mut pending = None;
    status::update(io, connection, now_ms, |_, mut status| {
        pending = status.flow.take();
        status.reason = None;
        status.clear_failures();
        status.enter(State::Disconnected, now_ms);
        Ok::<_, StorageError>(status)
    })?;
    if let Some(hash) = pending {
        // Best effort: an orphaned flow expires, and its callback finds the
        // connection no longer waiting for it.
        let _ = store::remove(io, &store::flow_key(&hash));
    }
    events::emit(
        io,
        Level::Info,
        Kind::Disconnected,
        connection,
        &[("revocation", revocation_name(&revocation))],
        "disconnected by the user: tokens wiped, configuration kept",
    );
    Ok(revocation)
}

/// RFC 7009 §2.1: revoking the refresh token revokes the grant (the
/// server SHOULD then invalidate its access tokens too); without one, the
/// access token.
fn revoke_grant(
    io: &mut dyn Io,
    config: &ConnectionConfig,
    url: &str,
    tokens: &TokensRecord,
) -> Revocation {
    let (token, hint) = match &tokens.refresh_token {
        Some(refresh) => (refresh.to_secret(), "refresh_token"),
        None => (tokens.access_token.to_secret(), "access_token"),
    };
    let request = request::form_post(
        config,
        url.to_owned(),
        &[("token", token.expose()), ("token_type_hint", hint)],
    );
    match io.send(request) {
        Ok(response) if response.status == 200 => Revocation::Revoked,
        Ok(response) => {
            // RFC 7009 §2.2.1: an error response has an RFC 6749 §5.2 body.
            let code = serde_json::from_slice::<serde_json::Value>(&response.body)
                .ok()
                .and_then(|body| body.get("error")?.as_str().map(ErrorCode::parse));
            Revocation::Failed(match code {
                Some(code) => format!("status {}: {}", response.status, code.as_str()),
                None => format!("status {}", response.status),
            })
        }
        Err(error) => Revocation::Failed(error.summary().to_owned()),
    }
}

fn revocation_name(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Failed(_) => "failed".into(),
        other => kebab(other),
    }
}

/// Forgets a connection: tokens, pending authorisation, lease, status and,
/// last, the configuration, so that a failure part-way leaves a connection
/// that can still be forgotten. Forgetting an unknown connection succeeds.
/// It does not revoke: disconnect with revocation first for that.
pub fn forget(io: &mut dyn Io, connection: &str) -> Result<(), StorageError> {
    if config::validate_connection_id(connection).is_err() {
        return Ok(());
    }
    store::remove(io, &store::tokens_key(connection))?;
    if let Some(status) = store::read::<status::Status>(io, &store::status_key(connection))?
        && let Some(hash) = &status.value.flow
    {
        store::remove(io, &store::flow_key(hash))?;
    }
    store::remove(io, &store::lease_key(connection))?;
    store::remove(io, &store::status_key(connection))?;
    let existed = io.get(&store::config_key(connection))?.is_some();
    store::remove(io, &store::config_key(connection))?;
    if existed {
        events::emit(
            io,
            Level::Info,
            Kind::Forgotten,
            connection,
            &[],
            "the connection and everything stored for it were deleted",
        );
    }
    Ok(())
}
