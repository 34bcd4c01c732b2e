//! Secrets that can be moved around but not printed, in two forms: the
//! value in memory ([`Secret`]: tokens in flight, codes, verifiers, states)
//! and the value as a field of a stored record ([`StoredSecret`]).
//!
//! Only the stored form serialises, so no serialisation of an in-memory
//! value (into an event, a log line or a response) can carry a secret.
//! Both compare in constant time, so that no comparison leaks how much of a
//! secret a guess got right, and neither prints its value.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret string in memory: an access token, a refresh token, a code, a
/// verifier or a state.
///
/// `Debug` prints `[redacted]`, so a secret inside any derived `Debug` of a
/// larger type cannot reach a log line. The value is only available through
/// [`Secret::expose`], which makes every use greppable. `==` compares in
/// constant time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the few places that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Consumes the wrapper and returns the secret value.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Whether `candidate` is this secret, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        same(&self.0, candidate)
    }

    /// `BASE64URL(SHA256(value))`: names a secret in storage without
    /// revealing it (the values are high-entropy, so the hash cannot be
    /// reversed by guessing).
    pub fn fingerprint(&self) -> String {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ConstantTimeEq for Secret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Secret {}

/// A secret as a field of a stored record (`tokens/{id}`, `flow/{hash}`):
/// stored as the plain JSON string, so the storage format is the value
/// itself. Records are only ever written to storage; nothing serialises
/// one into a log or an event. Taken out of a record, it becomes a
/// [`Secret`] again.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct StoredSecret(String);

impl StoredSecret {
    /// The in-memory secret, to send or to hand to a caller.
    pub fn to_secret(&self) -> Secret {
        Secret(self.0.clone())
    }

    /// Whether `secret` is the stored one, compared in constant time.
    pub fn holds(&self, secret: &Secret) -> bool {
        same(&self.0, &secret.0)
    }

    /// Whether `candidate` is the stored secret, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        same(&self.0, candidate)
    }
}

impl From<Secret> for StoredSecret {
    fn from(secret: Secret) -> Self {
        Self(secret.0)
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ConstantTimeEq for StoredSecret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for StoredSecret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for StoredSecret {}

/// Constant-time equality of two strings (the length is not secret).
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "s3cr3t-value");
        let stored = StoredSecret::from(secret.clone());
        assert_eq!(format!("{stored:?}"), "[redacted]");
        assert_eq!(stored.to_secret(), secret);
    }

    /// The stored form is the plain JSON string, as before the split.
    #[test]
    fn stored_form_is_the_json_string() {
        let stored = StoredSecret::from(Secret::new("RT-1"));
        assert_eq!(serde_json::to_string(&stored).unwrap(), r#""RT-1""#);
        let back: StoredSecret = serde_json::from_str(r#""RT-1""#).unwrap();
        assert!(back.holds(&Secret::new("RT-1")));
        assert!(!back.matches("RT-2"));
    }
}
