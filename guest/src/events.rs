//! Structured events (the `log` import in `wit/imports.wit`). Every constructor takes only values that
//! are safe to log: kinds, connection ids, reasons, error codes, counts and
//! times. No token, secret, code, verifier or state can be passed in.

use std::fmt;
use std::str::FromStr;

use crate::effects::Effects;
use crate::types::{Event, Level};

/// Declares [`Kind`] with each variant's name, so that the enum, its
/// strings and its parser cannot drift apart.
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// Every kind of event the core emits. An event's `kind` is the
        /// variant's stable kebab-case name ([`Kind::as_str`]); a host that
        /// reacts to events parses the name back with [`str::parse`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The kind's name, as events carry it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }
        }

        impl FromStr for Kind {
            type Err = UnknownKind;

            fn from_str(name: &str) -> Result<Self, UnknownKind> {
                match name {
                    $($name => Ok(Kind::$variant),)*
                    _ => Err(UnknownKind),
                }
            }
        }
    };
}

kinds! {
    /// An authorisation began: the user was sent to the authorisation server.
    AuthorizationStarted = "authorization-started",
    /// A re-authentication began for a connection that needed one.
    ReauthStarted = "reauth-started",
    /// An authorisation completed: tokens stored, connected.
    Connected = "connected",
    /// A re-authentication completed: the connection recovered.
    ReauthCompleted = "reauth-completed",
    /// The server refused the authorisation, or the code exchange failed.
    AuthorizationFailed = "authorization-failed",
    /// A callback was rejected before any code exchange (state, connection, expiry or issuer).
    StateMismatch = "state-mismatch",
    /// A refresh succeeded.
    RefreshSucceeded = "refresh-succeeded",
    /// The refresh token rotated; the new tokens are stored.
    TokensRotated = "tokens-rotated",
    /// A refresh failed for a transient reason; backing off, tokens kept.
    RefreshFailed = "refresh-failed",
    /// Refreshes have failed without a break for longer than the stall horizon.
    RefreshStalled = "refresh-stalled",
    /// The access token expired while refreshes are failing; API calls wait.
    AccessTokenExpired = "access-token-expired",
    /// The token endpoint refused the client: an operator must act.
    ClientMisconfigured = "client-misconfigured",
    /// The host holds no secret for a confidential client; nothing was sent.
    ClientCredentialsMissing = "client-credentials-missing",
    /// The grant is no longer valid; tokens wiped, configuration kept.
    RevocationDetected = "revocation-detected",
    /// API calls stop until the user re-authorises.
    ReauthRequired = "reauth-required",
    /// Our refresh token was rejected while storage held newer tokens.
    RotationRaceDetected = "rotation-race-detected",
    /// A refresh confirmed the tokens another worker stored: the grant is alive.
    RotationRaceRecovered = "rotation-race-recovered",
    /// An earlier refresh with no known outcome had rotated the tokens, which never reached storage.
    RotationLost = "rotation-lost",
    /// Storage refused the rotated tokens until the lease ended: the grant is lost.
    RotatedTokensLost = "rotated-tokens-lost",
    /// Storage refused the rotated tokens; retrying until the lease ends.
    TokensStoreRetrying = "tokens-store-retrying",
    /// The refreshed tokens are stored, but the status could not be updated.
    StatusNotStored = "status-not-stored",
    /// A refresh lease from a clock beyond the skew bound was taken over.
    LeaseClockSkew = "lease-clock-skew",
    /// The API refused the access token (401); refreshing once.
    ApiUnauthorized = "api-unauthorized",
    /// The API refused an access token the authorisation server had just issued.
    ApiRejectedFreshToken = "api-rejected-fresh-token",
    /// The API needs scopes the grant lacks; the next authorisation requests them.
    ScopeUpgradeNeeded = "scope-upgrade-needed",
    /// An operator cleared the back-off; the next call refreshes at once.
    RetryNow = "retry-now",
    /// The user disconnected: tokens wiped, configuration kept.
    Disconnected = "disconnected",
    /// A code exchange, a refresh or a `begin` came upon tokens after the user disconnected with revocation: revoked.
    LateGrantRevoked = "late-grant-revoked",
    /// The connection and everything stored for it were deleted.
    Forgotten = "forgotten",
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event kind the core does not emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind")]
pub struct UnknownKind;

/// Builds and emits one event about `connection`.
pub(crate) async fn emit(
    fx: &Effects,
    level: Level,
    kind: Kind,
    connection: &str,
    fields: &[(&str, String)],
    message: &str,
) {
    emit_for(fx, level, kind, Some(connection), fields, message).await;
}

/// Builds and emits one event, about a connection when one is known.
pub(crate) async fn emit_for(
    fx: &Effects,
    level: Level,
    kind: Kind,
    connection: Option<&str>,
    fields: &[(&str, String)],
    message: &str,
) {
    // Read when the event happens: an operation may have waited (a lease,
    // a slow token endpoint) since it began.
    let at_ms = fx.now_ms().await;
    fx.emit(Event {
        at_ms,
        level,
        kind: kind.as_str().to_owned(),
        connection: connection.map(str::to_owned),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        message: message.to_owned(),
    });
}

/// The kebab-case name serde gives a unit variant: how reasons and states
/// appear in event fields.
pub fn kebab<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_name() {
        for &kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let names: std::collections::BTreeSet<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Kind::ALL.len(), "names are distinct");
        assert_eq!("refresh-failed".parse(), Ok(Kind::RefreshFailed));
        assert_eq!("refresh_failed".parse::<Kind>(), Err(UnknownKind));
        assert_eq!("".parse::<Kind>(), Err(UnknownKind));
    }
}
