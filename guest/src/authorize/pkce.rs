//! PKCE with S256 only (RFC 7636; Pleo refuses `plain`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Random bytes in a verifier: 32 bytes give 43 base64url characters, the
/// length RFC 7636 §4.1 recommends (256 bits of entropy).
pub const VERIFIER_BYTES: usize = 32;

/// Why a verifier is not valid (RFC 7636 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifierError {
    #[error("a code verifier has 43 to 128 characters")]
    Length,
    #[error("a code verifier has only the characters A-Z a-z 0-9 - . _ ~")]
    Character,
}

/// A valid code verifier: 43 to 128 unreserved characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier(Secret);

impl Verifier {
    /// The verifier for `bytes` of randomness: base64url without padding.
    pub fn from_random(bytes: &[u8; VERIFIER_BYTES]) -> Self {
        Self(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Checks a verifier made elsewhere (RFC 7636 §4.1:
    /// `code-verifier = 43*128unreserved`).
    pub fn parse(text: &str) -> Result<Self, VerifierError> {
        if !(43..=128).contains(&text.chars().count()) {
            return Err(VerifierError::Length);
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(VerifierError::Character);
        }
        Ok(Self(Secret::new(text)))
    }

    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2).
    pub fn s256_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.expose().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let bytes = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = Verifier::from_random(&bytes);
        assert_eq!(
            verifier.secret().expose(),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert_eq!(
            verifier.s256_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn rfc7636_4_1_verifier_rules() {
        assert_eq!(Verifier::parse(&"a".repeat(42)), Err(VerifierError::Length));
        assert_eq!(
            Verifier::parse(&"a".repeat(129)),
            Err(VerifierError::Length)
        );
        assert_eq!(
            Verifier::parse(&format!("{}+", "a".repeat(42))),
            Err(VerifierError::Character)
        );
        assert!(Verifier::parse(&"a-._~".repeat(9)).is_ok());
    }
}
