//! Encryption at rest: a `storage` backend that seals the values that hold
//! secrets (tokens, and pending authorisations with their PKCE verifier)
//! before they reach the backend below, so every backend gets it.
//!
//! Pleo asks server-side integrations to encrypt tokens at rest and to
//! rotate the keys. Each value is sealed with XChaCha20-Poly1305 (an AEAD:
//! tampering is detected) under a 256-bit key, with a fresh random 192-bit
//! nonce (large enough that random nonces never collide), and with the
//! storage key as associated data, so a sealed value cannot be moved to
//! another connection's key. A sealed value names the id of its key, so
//! keys can rotate: [`SealedStorage::reseal_all`] re-seals every record
//! under the current key.
//!
//! What it protects against: a copy of the database (a backup, a stolen
//! disk image, another user reading the file) is useless without the key.
//! What it does not: anyone who can read the key file, or run code as the
//! host's user, can decrypt. Keep the key apart from the database (the
//! command line's default key file lives outside the database's folder).
//!
//! A value written before encryption was on (no seal header) is read as
//! is and sealed on its next write. A value sealed with a key this host
//! does not hold, or that fails authentication, is an `unavailable` error
//! that names the key id: nothing is decrypted wrongly and nothing is
//! destroyed.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::{Entry, Storage, StorageError};

/// The first bytes of a sealed value: `PSL` and the format version.
const MAGIC: &[u8; 4] = b"PSL1";
const NONCE_LEN: usize = 24;
/// The key prefixes whose values hold secrets.
pub const SEALED_PREFIXES: [&str; 2] = ["tokens/", "flow/"];

/// A 256-bit sealing key and its id (the first 8 hex digits of its
/// SHA-256: names the key in records and messages, reveals nothing).
#[derive(Clone)]
pub struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey").field("id", &self.id).finish()
    }
}

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sealing key is 32 bytes, written as base64 (44 characters)")]
pub struct InvalidKey;

impl SealingKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            id: digest[..4].iter().map(|b| format!("{b:02x}")).collect(),
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// A key from its base64 text (standard alphabet, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, InvalidKey> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim().trim_end_matches('='))
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text.trim().trim_end_matches('='))
            })
            .map_err(|_| InvalidKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| InvalidKey)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A new random key, and its base64 text to store.
    pub fn generate() -> (Self, String) {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        (
            Self::from_bytes(&bytes),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys a host holds: the current one seals; all of them unseal.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl KeyRing {
    pub fn new(current: SealingKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Also unseals with `key` (one being rotated away from).
    pub fn with_previous(mut self, key: SealingKey) -> Self {
        self.previous.push(key);
        self
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    fn find(&self, id: &str) -> Option<&SealingKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

/// Whether values at `key` are sealed.
pub fn is_sealed_key(key: &str) -> bool {
    SEALED_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Seals `value` for storage at `key`.
pub fn seal(ring: &KeyRing, key: &str, value: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the operating system's random source");
    let ciphertext = ring
        .current
        .cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: value,
                aad: key.as_bytes(),
            },
        )
        .expect("sealing cannot fail for in-memory values");
    let id = ring.current.id.as_bytes();
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + id.len() + NONCE_LEN + ciphertext.len());
    out.extend_from_slice(MAGIC);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens a value read from `key`: sealed values are decrypted, others
/// (written before encryption was on) returned as they are.
pub fn unseal(ring: &KeyRing, key: &str, stored: &[u8]) -> Result<Vec<u8>, StorageError> {
    let Some(rest) = stored.strip_prefix(MAGIC) else {
        return Ok(stored.to_vec());
    };
    let broken = || {
        StorageError::Unavailable(format!(
            "{key}: the sealed value is damaged (cannot be decrypted); nothing was changed"
        ))
    };
    let (&id_len, rest) = rest.split_first().ok_or_else(broken)?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN {
        return Err(broken());
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let id = std::str::from_utf8(id).map_err(|_| broken())?;
    let sealing = ring.find(id).ok_or_else(|| {
        StorageError::Unavailable(format!(
            "{key} is sealed with key {id}, which this host does not hold (its key is {}): check PLEO_OAUTH_KEY or the key file; nothing was changed",
            ring.current.id
        ))
    })?;
    sealing
        .cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: key.as_bytes(),
            },
        )
        .map_err(|_| broken())
}

/// A storage backend whose secret-holding values are sealed.
pub struct SealedStorage {
    inner: Arc<dyn Storage>,
    ring: KeyRing,
}

impl SealedStorage {
    pub fn new(inner: Arc<dyn Storage>, ring: KeyRing) -> Self {
        Self { inner, ring }
    }

    /// Re-seals every value at `keys` under the current key (the others in
    /// the ring may unseal): key rotation. Each record is rewritten by
    /// compare-and-swap, so a concurrent writer is never overwritten (its
    /// record is sealed with the current key already). Returns how many
    /// records were re-sealed.
    pub fn reseal_all(&self, keys: &[String]) -> Result<usize, StorageError> {
        let mut count = 0;
        for key in keys.iter().filter(|k| is_sealed_key(k)) {
            let Some(entry) = self.inner.get(key)? else {
                continue;
            };
            let value = unseal(&self.ring, key, &entry.value)?;
            match self
                .inner
                .put(key, &seal(&self.ring, key, &value), Some(entry.version))
            {
                Ok(_) => count += 1,
                Err(StorageError::Conflict) => count += 1,
                Err(error) => return Err(error),
            }
        }
        Ok(count)
    }
}

impl Storage for SealedStorage {
    fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        let Some(entry) = self.inner.get(key)? else {
            return Ok(None);
        };
        if !is_sealed_key(key) {
            return Ok(Some(entry));
        }
        Ok(Some(Entry {
            value: unseal(&self.ring, key, &entry.value)?,
            version: entry.version,
        }))
    }

    fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, StorageError> {
        if is_sealed_key(key) {
            self.inner.put(key, &seal(&self.ring, key, value), expected)
        } else {
            self.inner.put(key, value, expected)
        }
    }

    fn delete(&self, key: &str, expected: u64) -> Result<(), StorageError> {
        self.inner.delete(key, expected)
    }

    /// Keys are not sealed (they name a connection or a hash, never a
    /// secret), so listing passes through.
    fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.inner.keys(prefix, after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imports::storage::MemoryStorage;

    fn ring() -> KeyRing {
        KeyRing::new(SealingKey::generate().0)
    }

    #[test]
    fn the_storage_contract_holds_through_the_seal() {
        let store = SealedStorage::new(Arc::new(MemoryStorage::default()), ring());
        crate::imports::storage::contract::check(&store);
    }

    #[test]
    fn secret_values_are_sealed_and_bound_to_their_key() {
        let inner = Arc::new(MemoryStorage::default());
        let ring = ring();
        let store = SealedStorage::new(inner.clone(), ring.clone());
        let token = b"{\"access-token\":\"AT-secret-value\"}";
        store.put("tokens/c1", token, None).unwrap();
        store.put("config/c1", b"{\"plain\":1}", None).unwrap();
        let raw = inner.get("tokens/c1").unwrap().unwrap().value;
        assert!(raw.starts_with(MAGIC));
        assert!(!raw.windows(15).any(|w| w == b"AT-secret-value"));
        assert_eq!(
            inner.get("config/c1").unwrap().unwrap().value,
            b"{\"plain\":1}"
        );
        assert_eq!(store.get("tokens/c1").unwrap().unwrap().value, token);
        // Moved to another connection's key, it does not open.
        inner.put("tokens/c2", &raw, None).unwrap();
        assert!(matches!(
            store.get("tokens/c2"),
            Err(StorageError::Unavailable(why)) if why.contains("damaged")
        ));
    }

    /// The wrong key is a clear error that names the key, and destroys
    /// nothing: with the right key the record reads again.
    #[test]
    fn the_wrong_key_loses_nothing() {
        let inner = Arc::new(MemoryStorage::default());
        let right = ring();
        SealedStorage::new(inner.clone(), right.clone())
            .put("tokens/c1", b"secret", None)
            .unwrap();
        let wrong = SealedStorage::new(inner.clone(), ring());
        let Err(StorageError::Unavailable(why)) = wrong.get("tokens/c1") else {
            panic!("the wrong key must not read");
        };
        assert!(why.contains(right.current_id()), "{why}");
        assert!(!why.contains("secret"));
        assert_eq!(
            SealedStorage::new(inner, right)
                .get("tokens/c1")
                .unwrap()
                .unwrap()
                .value,
            b"secret"
        );
    }

    /// Rotation: re-sealed under the new key, readable with it alone.
    #[test]
    fn reseal_all_moves_every_record_to_the_new_key() {
        let inner = Arc::new(MemoryStorage::default());
        let old = SealingKey::generate().0;
        let new = SealingKey::generate().0;
        let before = SealedStorage::new(inner.clone(), KeyRing::new(old.clone()));
        before.put("tokens/c1", b"one", None).unwrap();
        before.put("flow/abc", b"two", None).unwrap();
        inner.put("tokens/legacy", b"plain", None).unwrap();
        let keys: Vec<String> = ["tokens/c1", "flow/abc", "tokens/legacy", "config/c1"]
            .map(String::from)
            .to_vec();
        let rotating =
            SealedStorage::new(inner.clone(), KeyRing::new(new.clone()).with_previous(old));
        assert_eq!(rotating.reseal_all(&keys).unwrap(), 3);
        let after = SealedStorage::new(inner.clone(), KeyRing::new(new));
        assert_eq!(after.get("tokens/c1").unwrap().unwrap().value, b"one");
        assert_eq!(after.get("flow/abc").unwrap().unwrap().value, b"two");
        assert_eq!(after.get("tokens/legacy").unwrap().unwrap().value, b"plain");
        assert!(
            inner
                .get("tokens/legacy")
                .unwrap()
                .unwrap()
                .value
                .starts_with(MAGIC)
        );
    }

    #[test]
    fn keys_parse_from_base64_and_debug_shows_only_the_id() {
        let (key, text) = SealingKey::generate();
        assert_eq!(SealingKey::from_base64(&text).unwrap().id(), key.id());
        assert!(SealingKey::from_base64("short").is_err());
        assert!(!format!("{key:?}").contains(&text));
    }
}
