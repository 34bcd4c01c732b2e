//! A connection's configuration and its validation (Pleo's endpoints,
//! `resource:permission` scopes, exact redirect URIs, client types).

use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Pleo's production authorisation server.
pub const PRODUCTION_AS: &str = "https://auth.pleo.io";
/// Pleo's staging authorisation server.
pub const STAGING_AS: &str = "https://auth.staging.pleo.io";

/// Longest connection id, client id, return-to and extra parameter value.
const MAX_CONNECTION_ID: usize = 128;
const MAX_CLIENT_ID: usize = 256;

/// Endpoints of an authorisation server that is not Pleo's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CustomEndpoints {
    pub authorize_url: String,
    pub token_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    Production,
    Staging,
    Custom(CustomEndpoints),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientType {
    /// The host applies the client secret (RFC 6749 §2.3.1).
    Confidential,
    /// No secret: PKCE alone, `client_id` in the token request body.
    Public,
}

/// A connection's configuration: the user's, kept through every
/// re-authentication and disconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConnectionConfig {
    pub environment: Environment,
    pub client_id: String,
    pub client_type: ClientType,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    /// RFC 9207 issuer identifier, when known.
    pub issuer: Option<String>,
    /// The server always sends `iss` (RFC 9207 §2.4).
    pub require_iss: bool,
    /// The platform's own settings.
    pub settings: Vec<(String, String)>,
    /// The RFC 7009 revocation endpoint, when the server has one (Pleo
    /// documents none, so it is optional).
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// Refresh this long before the access token expires; default 60 s.
    #[serde(default)]
    pub refresh_margin_seconds: Option<u32>,
    /// The longest back-off between failed refreshes; default 5 minutes.
    #[serde(default)]
    pub max_backoff_seconds: Option<u32>,
    /// Continuous transient failures for this long make the connection
    /// `stalled`; default one day.
    #[serde(default)]
    pub stall_after_seconds: Option<u32>,
}

/// Default proactive-refresh margin: 60 s before expiry.
pub const DEFAULT_REFRESH_MARGIN_SECONDS: u32 = 60;
/// Longest refresh margin accepted: one hour.
pub const MAX_REFRESH_MARGIN_SECONDS: u32 = 3600;
/// Default back-off cap: 5 minutes.
pub const DEFAULT_MAX_BACKOFF_SECONDS: u32 = 300;
/// Range of the back-off cap: 1 s to 1 hour.
pub const MAX_BACKOFF_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;
/// Default horizon of continuous transient failures before `stalled`: one
/// day. Pleo asks that transient refresh failures are retried with back-off
/// but not indefinitely. A day outlasts any outage worth riding out
/// silently, and is far below a refresh token's lifetime (60 days or more),
/// so waiting loses nothing and an operator is not paged for a blip.
pub const DEFAULT_STALL_AFTER_SECONDS: u32 = 86_400;
/// `stall-after-seconds`: one hour to thirty days.
pub const STALL_AFTER_RANGE: std::ops::RangeInclusive<u32> = 3_600..=2_592_000;

/// Why a configuration or an option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidConfig {
    #[error("a connection id is 1 to 128 characters of A-Z a-z 0-9 - _ . :")]
    InvalidConnectionId,
    #[error("the client id must be 1 to 256 visible ASCII characters")]
    InvalidClientId,
    #[error(
        "the redirect URI must be an absolute https URL (http only on loopback) without a fragment"
    )]
    InvalidRedirectUri,
    #[error("an endpoint must be an absolute https URL (http only on loopback)")]
    InvalidEndpoint,
    #[error("scope {0:?} is not of the form resource:permission")]
    InvalidScope(String),
    #[error("at least one scope is required")]
    NoScopes,
    #[error(
        "the issuer must be an absolute https URL (http only on loopback) without a query or fragment, and require-iss needs it"
    )]
    InvalidIssuer,
    #[error(
        "refresh-margin-seconds must be at most 3600, max-backoff-seconds 1 to 3600, and stall-after-seconds 3600 to 2592000"
    )]
    InvalidTiming,
}

impl ConnectionConfig {
    /// Checks every rule; the first broken one is the error.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.client_id.is_empty()
            || self.client_id.len() > MAX_CLIENT_ID
            || !self.client_id.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(InvalidConfig::InvalidClientId);
        }
        redirect_url(&self.redirect_uri).ok_or(InvalidConfig::InvalidRedirectUri)?;
        if let Environment::Custom(endpoints) = &self.environment {
            for endpoint in [&endpoints.authorize_url, &endpoints.token_url] {
                endpoint_url(endpoint).ok_or(InvalidConfig::InvalidEndpoint)?;
            }
        }
        if let Some(revocation) = &self.revocation_url {
            endpoint_url(revocation).ok_or(InvalidConfig::InvalidEndpoint)?;
        }
        if self.scopes.is_empty() {
            return Err(InvalidConfig::NoScopes);
        }
        if let Some(scope) = self.scopes.iter().find(|s| !is_pleo_scope(s)) {
            return Err(InvalidConfig::InvalidScope(scope.clone()));
        }
        match &self.issuer {
            // RFC 8414 §2: an issuer identifier has no query or fragment.
            Some(issuer) if secure_url(issuer).is_none() || issuer.contains(['?', '#']) => {
                return Err(InvalidConfig::InvalidIssuer);
            }
            None if self.require_iss => return Err(InvalidConfig::InvalidIssuer),
            _ => {}
        }
        let margin_ok = self
            .refresh_margin_seconds
            .is_none_or(|m| m <= MAX_REFRESH_MARGIN_SECONDS);
        let backoff_ok = self
            .max_backoff_seconds
            .is_none_or(|b| MAX_BACKOFF_RANGE.contains(&b));
        let stall_ok = self
            .stall_after_seconds
            .is_none_or(|s| STALL_AFTER_RANGE.contains(&s));
        if !(margin_ok && backoff_ok && stall_ok) {
            return Err(InvalidConfig::InvalidTiming);
        }
        Ok(())
    }

    /// The proactive-refresh margin, in ms.
    pub fn refresh_margin_ms(&self) -> u64 {
        u64::from(
            self.refresh_margin_seconds
                .unwrap_or(DEFAULT_REFRESH_MARGIN_SECONDS),
        ) * 1000
    }

    /// The back-off cap, in ms.
    pub fn max_backoff_ms(&self) -> u64 {
        u64::from(
            self.max_backoff_seconds
                .unwrap_or(DEFAULT_MAX_BACKOFF_SECONDS),
        ) * 1000
    }

    /// How long transient failures may last before `stalled`, in ms.
    pub fn stall_after_ms(&self) -> u64 {
        u64::from(
            self.stall_after_seconds
                .unwrap_or(DEFAULT_STALL_AFTER_SECONDS),
        ) * 1000
    }

    /// The authorisation endpoint.
    pub fn authorize_url(&self) -> String {
        match &self.environment {
            Environment::Production => format!("{PRODUCTION_AS}/oauth/authorize"),
            Environment::Staging => format!("{STAGING_AS}/oauth/authorize"),
            Environment::Custom(endpoints) => endpoints.authorize_url.clone(),
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        match &self.environment {
            Environment::Production => format!("{PRODUCTION_AS}/oauth/token"),
            Environment::Staging => format!("{STAGING_AS}/oauth/token"),
            Environment::Custom(endpoints) => endpoints.token_url.clone(),
        }
    }
}

/// A connection id: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`. The id
/// becomes part of storage keys, so it is kept to a safe alphabet.
pub fn validate_connection_id(id: &str) -> Result<(), InvalidConfig> {
    let valid = !id.is_empty()
        && id.len() <= MAX_CONNECTION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if valid {
        Ok(())
    } else {
        Err(InvalidConfig::InvalidConnectionId)
    }
}

/// Pleo scopes are `resource:permission`, e.g. `users:read` or
/// `export-jobs:write`.
pub fn is_pleo_scope(scope: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    scope
        .split_once(':')
        .is_some_and(|(resource, permission)| part(resource) && part(permission))
}

/// Parameters the protocol sets itself; an endpoint's own query may not
/// carry them (RFC 6749 §3.1: no parameter twice).
const PROTOCOL_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "code",
    "grant_type",
];

/// An endpoint: a [`secure_url`] with no fragment and no protocol parameter
/// in its query (RFC 6749 §3.1, §3.2).
pub fn endpoint_url(text: &str) -> Option<Url> {
    secure_url_without(text, &PROTOCOL_PARAMS)
}

/// Parameters the authorisation server adds to the redirect URI (RFC 6749
/// §4.1.2, §4.1.2.1; RFC 9207 §2): the redirect URI's own query may not
/// carry them, or every callback would repeat one.
const CALLBACK_PARAMS: [&str; 6] = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
];

/// A redirection endpoint: a [`secure_url`] with no fragment (RFC 6749
/// §3.1.2) and no callback parameter in its query (§3.1.2: the server keeps
/// that query and adds its own).
pub fn redirect_url(text: &str) -> Option<Url> {
    secure_url_without(text, &CALLBACK_PARAMS)
}

/// A [`secure_url`] with no fragment and none of `params` in its query.
fn secure_url_without(text: &str, params: &[&str]) -> Option<Url> {
    let url = secure_url(text)?;
    let clean = url.fragment().is_none()
        && !url
            .query_pairs()
            .any(|(name, _)| params.contains(&name.as_ref()));
    clean.then_some(url)
}

/// A URI scheme: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986
/// §3.1).
pub(crate) fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The authority of an absolute URL, `scheme://authority`, as RFC 3986
/// §3.1 and §3.2 write them: a scheme, then a non-empty run of authority
/// characters (unreserved, percent-encoded, sub-delims, `:`, `@`, at most
/// one bracketed IP literal) up to `/`, `?`, `#` or the end. What a WHATWG
/// parser would repair instead (extra slashes, a backslash) is `None`.
pub(crate) fn authority(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme_ok = is_scheme(scheme);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let chars_ok = !authority.is_empty()
        && authority.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'['
                        | b']'
                )
        });
    let literal_ok = match (authority.find('['), authority.rfind(']')) {
        (None, None) => true,
        (Some(open), Some(close)) => {
            open < close
                && authority.matches('[').count() == 1
                && authority.matches(']').count() == 1
        }
        _ => false,
    };
    (scheme_ok && chars_ok && literal_ok).then_some(authority)
}

/// An absolute `https` URL, or `http` on a loopback host (Pleo and RFC 8252
/// §7.3: plain http only for loopback). Printable ASCII only: a URI is
/// ASCII (RFC 3986 §2; an internationalised name goes in its punycode
/// form), and a URL parser drops whitespace and control characters
/// silently (WHATWG URL), so what was checked would differ from what is
/// sent and compared exactly (RFC 6749 §3.1.2.3, RFC 9207 §2.4).
pub fn secure_url(text: &str) -> Option<Url> {
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    // A configured host is written out: a percent-encoded one would reach
    // the IDNA mapping, whose `idna_adapter` 1.0 asserts (in debug builds)
    // it never meets upper-case letters beside other bytes (found by
    // fuzzing: `https://A%d2`).
    if authority(text)?.contains('%') {
        return None;
    }
    let url = Url::parse(text).ok()?;
    let loopback = match url.host()? {
        Host::Domain(domain) => domain.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    let allowed = url.scheme() == "https" || url.scheme() == "http" && loopback;
    (allowed && url.username().is_empty() && url.password().is_none()).then_some(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn config() -> ConnectionConfig {
        ConnectionConfig {
            environment: Environment::Staging,
            client_id: "client-123".into(),
            client_type: ClientType::Confidential,
            redirect_uri: "https://app.example/callback".into(),
            scopes: vec!["users:read".into(), "export-jobs:write".into()],
            issuer: None,
            require_iss: false,
            settings: vec![("ledger".into(), "4000".into())],
            revocation_url: None,
            refresh_margin_seconds: None,
            max_backoff_seconds: None,
            stall_after_seconds: None,
        }
    }

    /// Host names are ASCII (the URL parser carries no Unicode tables, to
    /// keep the component small): an internationalised domain name is
    /// refused, in a redirect URI as in an endpoint, and its punycode form
    /// (RFC 5891 A-labels, `xn--`) is accepted.
    #[test]
    fn internationalised_domain_names_are_refused_and_their_punycode_accepted() {
        let with = |redirect_uri: &str, token_url: &str| {
            ConnectionConfig {
                redirect_uri: redirect_uri.into(),
                environment: Environment::Custom(CustomEndpoints {
                    authorize_url: "https://auth.example/authorize".into(),
                    token_url: token_url.into(),
                }),
                ..config()
            }
            .validate()
        };
        let ok = "https://auth.example/token";
        assert_eq!(
            with("https://bücher.example/cb", ok),
            Err(InvalidConfig::InvalidRedirectUri)
        );
        assert_eq!(
            with("https://app.example/cb", "https://bücher.example/token"),
            Err(InvalidConfig::InvalidEndpoint)
        );
        // Upper-case letters beside a non-ASCII one reached an assertion
        // in `idna_adapter` (debug builds) before ASCII was required.
        assert_eq!(
            with("https://Bücher.example/cb", ok),
            Err(InvalidConfig::InvalidRedirectUri)
        );
        assert_eq!(
            with("https://app.example/café", ok),
            Err(InvalidConfig::InvalidRedirectUri)
        );
        assert_eq!(
            with("https://A%d2.example/cb", ok),
            Err(InvalidConfig::InvalidRedirectUri)
        );
        assert_eq!(with("https://App.Example/cb", ok), Ok(()));
        for bad in [
            "https:////app.example/cb",
            "https:\\\\app.example/cb",
            "https://[::1/cb",
        ] {
            assert_eq!(
                with(bad, ok),
                Err(InvalidConfig::InvalidRedirectUri),
                "{bad}"
            );
        }
        assert_eq!(with("https://xn--bcher-kva.example/cb", ok), Ok(()));
        assert_eq!(
            with(
                "https://app.example/cb",
                "https://xn--bcher-kva.example/token"
            ),
            Ok(())
        );
    }

    #[test]
    fn pleo_redirect_uri_rules() {
        for ok in [
            "https://app.example/cb",
            "http://localhost:8080/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(
                ConnectionConfig {
                    redirect_uri: ok.into(),
                    ..config()
                }
                .validate()
                .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "/cb",
            "ftp://x/cb",
            "https://u:p@x/cb",
            // RFC 6749 §3.1.2: the server adds these to the URI's query.
            "https://app.example/cb?state=tenant7",
            "https://app.example/cb?x=1&code=2",
            "https://app.example/cb?iss=x",
            // What a URL parser drops silently: checked would differ from
            // sent, and the server compares exactly (§3.1.2.3).
            " https://app.example/cb",
            "https://app.example/cb ",
            "https://app.example/c\tb",
            "https://app.example/cb\n",
        ] {
            let result = ConnectionConfig {
                redirect_uri: bad.into(),
                ..config()
            }
            .validate();
            assert_eq!(result, Err(InvalidConfig::InvalidRedirectUri), "{bad}");
        }
    }

    #[test]
    fn pleo_scopes_are_resource_colon_permission() {
        assert!(is_pleo_scope("export-jobs:write"));
        for bad in ["users", ":read", "users:", "users read", "a:b:c", "ü:x"] {
            assert!(!is_pleo_scope(bad), "{bad}");
        }
        let result = ConnectionConfig {
            scopes: vec!["users".into()],
            ..config()
        }
        .validate();
        assert_eq!(result, Err(InvalidConfig::InvalidScope("users".into())));
        assert_eq!(
            ConnectionConfig {
                scopes: vec![],
                ..config()
            }
            .validate(),
            Err(InvalidConfig::NoScopes)
        );
    }

    #[test]
    fn other_rules() {
        assert_eq!(
            ConnectionConfig {
                client_id: "".into(),
                ..config()
            }
            .validate(),
            Err(InvalidConfig::InvalidClientId)
        );
        assert_eq!(
            ConnectionConfig {
                require_iss: true,
                ..config()
            }
            .validate(),
            Err(InvalidConfig::InvalidIssuer)
        );
        // RFC 9207 §2.4 compares the issuer exactly: a newline a URL parser
        // would drop makes every callback an issuer mismatch.
        assert_eq!(
            ConnectionConfig {
                issuer: Some("https://auth.staging.pleo.io\n".into()),
                ..config()
            }
            .validate(),
            Err(InvalidConfig::InvalidIssuer)
        );
        // RFC 8414 §2: an issuer identifier has no query or fragment part.
        for issuer in [
            "https://auth.example/?tenant=1",
            "https://auth.example/#x",
            "https://auth.example?",
        ] {
            assert_eq!(
                ConnectionConfig {
                    issuer: Some(issuer.into()),
                    ..config()
                }
                .validate(),
                Err(InvalidConfig::InvalidIssuer),
                "{issuer}"
            );
        }
        let custom = Environment::Custom(CustomEndpoints {
            authorize_url: "http://auth.example/authorize".into(),
            token_url: "https://auth.example/token".into(),
        });
        assert_eq!(
            ConnectionConfig {
                environment: custom,
                ..config()
            }
            .validate(),
            Err(InvalidConfig::InvalidEndpoint)
        );
        assert_eq!(
            config().token_url(),
            "https://auth.staging.pleo.io/oauth/token"
        );
        assert!(validate_connection_id("tenant-42:pleo").is_ok());
        assert!(validate_connection_id("a/b").is_err());
        assert!(validate_connection_id(&"a".repeat(129)).is_err());
    }
}
