//! The storage model: keys per connection, JSON values, and
//! every write a compare-and-swap on the value's version.
//!
//! - `config/{id}`: the configuration; never wiped by re-authentication.
//! - `tokens/{id}`: access token, refresh token, expiry, granted scopes,
//!   written atomically as one value.
//! - `status/{id}`: state, reason, since, the pending authorisation.
//! - `flow/{hash}`: a pending authorisation, keyed by the SHA-256 of its
//!   `state` (the state value itself never becomes a key, which a storage
//!   backend might log). One-time: consumed by the callback.
//! - `lease/{id}`: the refresh lease (holder, until), for single-flight
//!   refresh across instances and processes.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::io::Io;
use crate::secret::StoredSecret;
use crate::types::StorageError;

/// How many times a read-modify-write retries after a conflict before
/// giving up with [`StoreError::Conflict`].
pub const CAS_ATTEMPTS: usize = 4;

pub fn config_key(connection: &str) -> String {
    format!("config/{connection}")
}

pub fn tokens_key(connection: &str) -> String {
    format!("tokens/{connection}")
}

pub fn status_key(connection: &str) -> String {
    format!("status/{connection}")
}

pub fn flow_key(state_hash: &str) -> String {
    format!("flow/{state_hash}")
}

pub fn lease_key(connection: &str) -> String {
    format!("lease/{connection}")
}

/// A storage failure as the exports report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreError {
    #[error("another writer kept changing the value; nothing was written")]
    Conflict,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("a stored value could not be read: {0}")]
    Corrupt(String),
}

impl From<StorageError> for StoreError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict => StoreError::Conflict,
            StorageError::Unavailable(why) => StoreError::Unavailable(why),
        }
    }
}

/// A value read from storage, with the version to write it back against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Reads and decodes a JSON record. The error names the key, never the value.
pub fn read<T: DeserializeOwned>(
    io: &mut dyn Io,
    key: &str,
) -> Result<Option<Versioned<T>>, StoreError> {
    let Some(entry) = io.get(key)? else {
        return Ok(None);
    };
    // Only the error's category and position: serde_json's message can
    // quote the stored value, which may be a token.
    let value = serde_json::from_slice(&entry.value).map_err(|e| {
        StoreError::Corrupt(format!(
            "{key}: {:?} error at column {}",
            e.classify(),
            e.column()
        ))
    })?;
    Ok(Some(Versioned {
        value,
        version: entry.version,
    }))
}

/// Encodes and writes a record when the key is at `expected`.
pub fn write<T: Serialize>(
    io: &mut dyn Io,
    key: &str,
    value: &T,
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| StoreError::Corrupt(format!("{key}: {:?} error", e.classify())))?;
    Ok(io.put(key, &bytes, expected)?)
}

/// The stored token set (`tokens/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TokensRecord {
    pub access_token: StoredSecret,
    pub refresh_token: Option<StoredSecret>,
    /// Unix ms; `None` when the server gave no `expires_in`.
    pub expires_at_ms: Option<u64>,
    pub scopes: Vec<String>,
    pub obtained_at_ms: u64,
    /// These tokens come from a refresh that an API 401 forced, and no API
    /// call has succeeded with them yet: another 401 means revoked
    /// (one refresh per 401 streak).
    #[serde(default)]
    pub after_unauthorized: bool,
    /// Found in storage after our refresh was rejected: the rejection may
    /// have made the server revoke the whole grant, so these tokens are
    /// never served until a refresh confirms the grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
}

impl TokensRecord {
    /// The access token can still be used at `now`: it has not expired. A
    /// token without a known lifetime is usable until the API refuses it.
    pub fn usable(&self, now_ms: u64) -> bool {
        !self.unconfirmed && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// The access token is within `margin_ms` of expiry: time to refresh.
    /// The margin is at most half the token's lifetime, so a token that
    /// lives shorter than the margin is not refreshed on every call.
    pub fn due(&self, now_ms: u64, margin_ms: u64) -> bool {
        self.unconfirmed
            || self.expires_at_ms.is_some_and(|at| {
                let lifetime = at.saturating_sub(self.obtained_at_ms);
                now_ms.saturating_add(margin_ms.min(lifetime / 2)) >= at
            })
    }
}

/// A pending authorisation (`flow/{hash}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FlowRecord {
    pub connection: String,
    /// The SHA-256 of the state, base64url: compared in constant time.
    pub state_hash: String,
    pub verifier: StoredSecret,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub return_to: Option<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Deletes `key` whatever its version, retrying a bounded number of times
/// on conflict. Absent is success.
pub fn remove(io: &mut dyn Io, key: &str) -> Result<(), StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(entry) = io.get(key)? else {
            return Ok(());
        };
        match io.delete(key, entry.version) {
            Ok(()) => return Ok(()),
            Err(StorageError::Conflict) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(StoreError::Conflict)
}

/// Writes `value` over whatever is stored at `key` (or creates it), in one
/// compare-and-swap, retrying a bounded number of times on conflict.
pub fn replace<T: Serialize + DeserializeOwned>(
    io: &mut dyn Io,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let expected = read::<T>(io, key)?.map(|v| v.version);
        match write(io, key, value, expected) {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StoreError::Conflict)
}
