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

use crate::effects::Effects;
use crate::secret::StoredSecret;
use crate::types::Entry;
pub(crate) use crate::types::StorageError;

/// How many times a read-modify-write retries after a conflict before
/// giving up with [`StorageError::Conflict`].
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

/// A value read from storage, with the version to write it back against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// The format of the records this release writes, and the newest it
/// reads. Every stored value is `{"format":N,"record":{...}}`, `format`
/// first, so that a later release can change a record's shape and an
/// earlier one refuses it instead of misreading it. A value without the
/// envelope is a record of format 1 written before records carried one.
pub const RECORD_FORMAT: u32 = 1;

const ENVELOPE_START: &[u8] = b"{\"format\":";

#[derive(Serialize)]
struct Envelope<'a, T> {
    format: u32,
    record: &'a T,
}

#[derive(Deserialize)]
struct Opened<T> {
    format: u32,
    record: T,
}

/// Only the format, for a record whose body this release cannot parse.
#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

/// A record of a newer format than this release reads: refused, never
/// misread. The text names the key's kind and the formats, so that an
/// operator knows to upgrade every worker that shares the store.
fn newer_format(key: &str, format: u32) -> StorageError {
    StorageError::Corrupt(format!(
        "{key}: record format {format} was written by a newer release; this one reads format {RECORD_FORMAT} at most: upgrade every worker sharing the store"
    ))
}

/// Refuses a record of a newer format, whatever else is wrong with it;
/// anything else passes (decoding judges it).
pub(crate) fn check_format(key: &str, bytes: &[u8]) -> Result<(), StorageError> {
    match serde_json::from_slice::<FormatOnly>(bytes) {
        Ok(only) if only.format > RECORD_FORMAT => Err(newer_format(key, only.format)),
        _ => Ok(()),
    }
}

/// Encodes a record in the current format.
pub(crate) fn encode<T: Serialize>(key: &str, record: &T) -> Result<Vec<u8>, StorageError> {
    let envelope = Envelope {
        format: RECORD_FORMAT,
        record,
    };
    serde_json::to_vec(&envelope)
        .map_err(|e| StorageError::Corrupt(format!("{key}: {:?} error", e.classify())))
}

/// Decodes a stored value: a record of a format this release reads, or
/// `Corrupt` naming the key (never quoting the value: serde_json's
/// message can, and the value may be a token).
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StorageError> {
    let damaged = |e: serde_json::Error| {
        StorageError::Corrupt(format!(
            "{key}: {:?} error at column {}",
            e.classify(),
            e.column()
        ))
    };
    if !bytes.starts_with(ENVELOPE_START) {
        return serde_json::from_slice(bytes).map_err(damaged);
    }
    match serde_json::from_slice::<Opened<T>>(bytes) {
        Ok(opened) if opened.format <= RECORD_FORMAT => Ok(opened.record),
        Ok(opened) => Err(newer_format(key, opened.format)),
        Err(error) => {
            check_format(key, bytes)?;
            Err(damaged(error))
        }
    }
}

/// Reads and decodes a record.
pub async fn read<T: DeserializeOwned>(
    fx: &Effects,
    key: &str,
) -> Result<Option<Versioned<T>>, StorageError> {
    let Some(entry) = fx.get(key).await? else {
        return Ok(None);
    };
    Ok(Some(Versioned {
        value: decode(key, &entry.value)?,
        version: entry.version,
    }))
}

/// What is at a key, for the calls that must get past a damaged record
/// (disconnect, forget): it is then removed or replaced, never misread.
pub enum Found<T> {
    Absent,
    Record(Versioned<T>),
    /// Not a record this release can read, and not of a newer format
    /// (which is refused instead: a newer release's record is not damaged);
    /// its version.
    Damaged(u64),
}

/// Reads a record, telling a damaged one apart from an error.
pub async fn read_or_damaged<T: DeserializeOwned>(
    fx: &Effects,
    key: &str,
) -> Result<Found<T>, StorageError> {
    let Some(entry) = fx.get(key).await? else {
        return Ok(Found::Absent);
    };
    match decode(key, &entry.value) {
        Ok(value) => Ok(Found::Record(Versioned {
            value,
            version: entry.version,
        })),
        Err(_) => {
            check_format(key, &entry.value)?;
            Ok(Found::Damaged(entry.version))
        }
    }
}

/// Encodes and writes a record when the key is at `expected`.
pub async fn write<T: Serialize>(
    fx: &Effects,
    key: &str,
    value: &T,
    expected: Option<u64>,
) -> Result<u64, StorageError> {
    let bytes = encode(key, value)?;
    fx.put(key, bytes, expected).await
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
    /// The authorisation these tokens descend from (the hash of its flow's
    /// state), kept by every refresh: tokens of another grant are a new
    /// authorisation, not a rotation. `None` in records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The API refused this access token (a 401), and no refresh could
    /// replace it (backing off, or the client refused): it is never served
    /// again, and the next call refreshes when it may.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl TokensRecord {
    /// The access token can still be used at `now`: it has not expired. A
    /// token without a known lifetime is usable until the API refuses it.
    pub fn usable(&self, now_ms: u64) -> bool {
        !self.unconfirmed && !self.refused && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// The access token is within `margin_ms` of expiry: time to refresh.
    /// The margin is at most half the token's lifetime, so a token that
    /// lives shorter than the margin is not refreshed on every call.
    pub fn due(&self, now_ms: u64, margin_ms: u64) -> bool {
        self.unconfirmed
            || self.refused
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
    /// The authorisation server and client the request was made for. A
    /// code is redeemed only while the configuration still names them: a
    /// code is only good at the server that issued it, and `iss` is
    /// compared with the issuer the request went to (RFC 9207 §2.4; RFC
    /// 9700 §4.4, mix-up). Absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<FlowServer>,
}

/// What a pending authorisation was begun against: [`FlowRecord::server`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FlowServer {
    pub authorize_url: String,
    pub token_url: String,
    pub issuer: Option<String>,
    pub client_id: String,
}

impl FlowServer {
    pub fn of(config: &crate::connection::config::ConnectionConfig) -> Self {
        Self {
            authorize_url: config.authorize_url(),
            token_url: config.token_url(),
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
        }
    }
}

/// Deletes `key` whatever its version, retrying a bounded number of times
/// on conflict. Absent is success.
pub async fn remove(fx: &Effects, key: &str) -> Result<(), StorageError> {
    remove_while(fx, key, async |_| Ok(true)).await
}

/// [`remove`], while `may_remove` (shown each entry read, and asked after
/// the read, so that a write it should spare changes the version the
/// delete expects) says yes; otherwise the entry stays.
pub async fn remove_while(
    fx: &Effects,
    key: &str,
    mut may_remove: impl AsyncFnMut(&Entry) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(entry) = fx.get(key).await? else {
            return Ok(());
        };
        if !may_remove(&entry).await? {
            return Ok(());
        }
        match fx.delete(key, entry.version).await {
            Ok(()) => return Ok(()),
            // Re-read: gone now is success, whoever deleted it.
            Err(StorageError::Conflict | StorageError::OutcomeUnknown(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StorageError::Conflict)
}

/// Writes `value` over whatever is stored at `key` (or creates it), in one
/// compare-and-swap, retrying a bounded number of times on conflict. A
/// damaged record is replaced (the value is whole); one of a newer format
/// is refused.
pub async fn replace<T: Serialize>(fx: &Effects, key: &str, value: &T) -> Result<(), StorageError> {
    replace_while(fx, key, value, |_| false, async || Ok(true))
        .await
        .map(drop)
}

/// [`replace`], on conditions. `landed` tells an entry that is this write
/// already made, besides one of the same bytes (an earlier attempt whose
/// outcome was unknown); `may_write` is asked before every attempt. The
/// version of this write, or `None` when `may_write` said no.
pub async fn replace_while<T: Serialize>(
    fx: &Effects,
    key: &str,
    value: &T,
    landed: impl Fn(&Entry) -> bool,
    mut may_write: impl AsyncFnMut() -> Result<bool, StorageError>,
) -> Result<Option<u64>, StorageError> {
    let bytes = encode(key, value)?;
    for _ in 0..CAS_ATTEMPTS {
        let current = fx.get(key).await?;
        if let Some(entry) = current.as_ref() {
            if entry.value == bytes || landed(entry) {
                return Ok(Some(entry.version));
            }
            // Never overwrite a newer release's record.
            check_format(key, &entry.value)?;
        }
        if !may_write().await? {
            return Ok(None);
        }
        match fx.put(key, bytes.clone(), current.map(|e| e.version)).await {
            Ok(version) => return Ok(Some(version)),
            Err(StorageError::Conflict | StorageError::OutcomeUnknown(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StorageError::Conflict)
}

#[cfg(test)]
mod format_tests {
    use super::*;

    fn tokens() -> TokensRecord {
        TokensRecord {
            access_token: crate::secret::Secret::new("AT-1").into(),
            refresh_token: None,
            expires_at_ms: Some(2),
            scopes: vec!["users:read".into()],
            obtained_at_ms: 1,
            after_unauthorized: false,
            unconfirmed: false,
            grant: None,
            refused: false,
        }
    }

    #[test]
    fn records_are_written_in_an_envelope_that_names_their_format_first() {
        let bytes = encode("tokens/c1", &tokens()).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"format":1,"record":{"access-token":"AT-1""#),
            "{text}"
        );
        assert_eq!(
            decode::<TokensRecord>("tokens/c1", &bytes).unwrap(),
            tokens()
        );
    }

    #[test]
    fn a_record_from_before_the_envelope_reads_as_format_1() {
        let bare = serde_json::to_vec(&tokens()).unwrap();
        assert_eq!(
            decode::<TokensRecord>("tokens/c1", &bare).unwrap(),
            tokens()
        );
    }

    #[test]
    fn a_record_of_a_newer_format_is_refused_never_misread() {
        let current = String::from_utf8(encode("tokens/c1", &tokens()).unwrap()).unwrap();
        // Same shape, newer format: it would parse, and must not be used.
        let same_shape = current.replacen(r#""format":1"#, r#""format":2"#, 1);
        // A shape this release cannot parse at all.
        let new_shape = r#"{"format":7,"record":{"tokens":[{"kind":"access"}]}}"#;
        for (bytes, format) in [(same_shape.as_bytes(), 2), (new_shape.as_bytes(), 7)] {
            let Err(StorageError::Corrupt(why)) = decode::<TokensRecord>("tokens/c1", bytes) else {
                panic!("a format {format} record was read");
            };
            assert!(why.contains(&format!("format {format}")) && why.contains("tokens/c1"));
            assert!(!why.contains("AT-1"), "the error quotes no value: {why}");
        }
    }

    #[test]
    fn a_damaged_record_is_corrupt_and_its_value_is_not_quoted() {
        let damaged = br#"{"format":1,"record":{"access-token":"AT-secret""#;
        let Err(StorageError::Corrupt(why)) = decode::<TokensRecord>("tokens/c1", damaged) else {
            panic!("a damaged record was read");
        };
        assert!(!why.contains("AT-secret"), "{why}");
    }
}
