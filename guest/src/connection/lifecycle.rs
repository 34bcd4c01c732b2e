//! Ending a connection: disconnect (the user's choice; tokens go, the
//! configuration stays) and forget (everything goes).

use super::config::{self, ConnectionConfig};
use super::revocation::{Revocation, revocation_name, revoke_grant};
use super::status;
use super::store::{self, Found, StorageError, TokensRecord};
use crate::effects::Effects;
use crate::events::{self, Kind};
use crate::types::Level;

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
pub async fn disconnect(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    revoke: bool,
) -> Result<Revocation, DisconnectError> {
    config::validate_connection_id(connection).map_err(|_| DisconnectError::UnknownConnection)?;
    let config = store::read::<ConnectionConfig>(fx, &store::config_key(connection))
        .await?
        .ok_or(DisconnectError::UnknownConnection)?
        .value;
    // The status first: from this write on the gate refuses, and a code
    // exchange or a refresh in flight, which check the status after their
    // own writes, keep nothing. A damaged status is what the user gets away
    // from: start afresh (the pending flow it may name expires, and its
    // callback is refused).
    discard_damaged_status(fx, connection).await?;
    let mut pending = None;
    status::update(fx, connection, now_ms, async |mut status| {
        pending = status.end_by_user(now_ms, revoke);
        Ok::<_, StorageError>(status)
    })
    .await?;
    let tokens = store::read_or_damaged::<TokensRecord>(fx, &store::tokens_key(connection)).await?;
    let revocation = match (&config.revocation_url, tokens) {
        _ if !revoke => Revocation::NotRequested,
        (None, _) => Revocation::NotConfigured,
        (Some(_), Found::Absent) => Revocation::NoToken,
        (Some(_), Found::Damaged(_)) => Revocation::Failed("the stored tokens are damaged".into()),
        (Some(url), Found::Record(tokens)) => revoke_grant(fx, &config, url, &tokens.value).await,
    };
    store::remove(fx, &store::tokens_key(connection)).await?;
    if let Some(hash) = pending {
        // Best effort: an orphaned flow expires, and its callback finds the
        // connection no longer waiting for it.
        let _ = store::remove(fx, &store::flow_key(&hash)).await;
    }
    events::emit(
        fx,
        Level::Info,
        Kind::Disconnected,
        connection,
        &[("revocation", revocation_name(&revocation))],
        "disconnected by the user: tokens wiped, configuration kept",
    )
    .await;
    Ok(revocation)
}

/// Removes the status record if it is damaged.
async fn discard_damaged_status(fx: &Effects, connection: &str) -> Result<(), StorageError> {
    let key = store::status_key(connection);
    if let Found::Damaged(version) = store::read_or_damaged::<status::Status>(fx, &key).await? {
        // That version only: a record written since is not damaged.
        match fx.delete(&key, version).await {
            Ok(()) | Err(StorageError::Conflict) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Forgets a connection: tokens, pending authorisation, lease, status and,
/// last, the configuration, so that a failure part-way leaves a connection
/// that can still be forgotten. Forgetting an unknown connection succeeds.
/// It does not revoke: disconnect with revocation first for that.
pub async fn forget(fx: &Effects, connection: &str) -> Result<(), StorageError> {
    if config::validate_connection_id(connection).is_err() {
        return Ok(());
    }
    // Ended in the status first, as `disconnect` does, so that a code
    // exchange or a refresh in flight keeps nothing; then deleted. A damaged
    // status names no flow this release can read: that flow expires, and
    // its callback is refused (no status names it).
    let status_key = store::status_key(connection);
    let mut pending = None;
    if let Found::Record(_) = store::read_or_damaged::<status::Status>(fx, &status_key).await? {
        status::update(fx, connection, 0, async |mut status| {
            pending = status.end_by_user(status.since_ms, false);
            Ok::<_, StorageError>(status)
        })
        .await?;
    }
    store::remove(fx, &store::tokens_key(connection)).await?;
    if let Some(hash) = &pending {
        store::remove(fx, &store::flow_key(hash)).await?;
    }
    store::remove(fx, &store::lease_key(connection)).await?;
    store::remove(fx, &status_key).await?;
    let existed = fx.get(&store::config_key(connection)).await?.is_some();
    store::remove(fx, &store::config_key(connection)).await?;
    if existed {
        events::emit(
            fx,
            Level::Info,
            Kind::Forgotten,
            connection,
            &[],
            "the connection and everything stored for it were deleted",
        )
        .await;
    }
    Ok(())
}
