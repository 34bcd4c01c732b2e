//! The authorisation request URL (RFC 6749 §4.1.1, RFC 7636 §4.3).

use serde::{Deserialize, Serialize};

use crate::connection::config::{endpoint_url, is_pleo_scope, redirect_url};
use crate::secret::Secret;

/// Extra query parameters a platform may add; anything else could override
/// or confuse the security parameters, so it is refused.
pub const ALLOWED_EXTRA_PARAMS: [&str; 4] = ["prompt", "login_hint", "ui_locales", "max_age"];
/// Longest value of an extra parameter.
pub const MAX_EXTRA_VALUE: usize = 512;

/// Everything an authorisation URL is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParams {
    pub authorize_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Secret,
    pub code_challenge: String,
    pub extra_params: Vec<(String, String)>,
}

/// Why a URL could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UrlError {
    #[error("the authorisation endpoint must be an absolute https URL (http only on loopback)")]
    InvalidEndpoint,
    #[error("the client id must be 1 to 256 visible ASCII characters")]
    InvalidClientId,
    #[error(
        "the redirect URI must be an absolute https URL (http only on loopback) without a fragment"
    )]
    InvalidRedirectUri,
    #[error("scope {0:?} is not of the form resource:permission")]
    InvalidScope(String),
    #[error("at least one scope is required")]
    NoScopes,
    #[error("the state must carry at least 128 bits: 22 or more URL-safe characters")]
    WeakState,
    #[error("the code challenge must be an S256 challenge: 43 base64url characters")]
    InvalidChallenge,
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// Why an extra query parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamError {
    #[error(
        "parameter {0:?} may not be added (allowed: prompt, login_hint, ui_locales, max_age, each once, and none the endpoint's own query has)"
    )]
    NotAllowed(String),
    #[error("the value of parameter {0:?} is empty, too long or has control characters")]
    InvalidValue(String),
}

/// Builds the URL. Never a secret other than `state` (which must travel)
/// goes into it: no client secret, no verifier.
pub fn build(params: &UrlParams) -> Result<Secret, UrlError> {
    UrlTemplate::new(
        &params.authorize_url,
        &params.client_id,
        &params.redirect_uri,
        &params.scopes,
    )?
    .url(&params.state, &params.code_challenge, &params.extra_params)
}

/// The part of an authorisation URL that is the same for every request of
/// one client (endpoint, `response_type`, `client_id`, `redirect_uri`,
/// `scope`), checked and encoded once; [`UrlTemplate::url`] then adds only
/// what changes per request. A platform that builds many URLs for one
/// configuration parses and encodes it once instead of per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    /// The endpoint with its own query (RFC 6749 §3.1: kept) and the fixed
    /// parameters appended.
    prefix: String,
    /// The names in the endpoint's own query (usually none), which an
    /// extra parameter may not repeat (RFC 6749 §3.1: no parameter twice).
    endpoint_params: Vec<String>,
}

impl UrlTemplate {
    /// Checks the fixed parts (RFC 6749 §3.1, §3.1.2, §3.3; Pleo's
    /// `resource:permission` scopes) and encodes them.
    pub fn new(
        authorize_url: &str,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Result<Self, UrlError> {
        let url = endpoint_url(authorize_url).ok_or(UrlError::InvalidEndpoint)?;
        let client_id_ok = !client_id.is_empty()
            && client_id.len() <= 256
            && client_id.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !client_id_ok {
            return Err(UrlError::InvalidClientId);
        }
        if redirect_url(redirect_uri).is_none() {
            return Err(UrlError::InvalidRedirectUri);
        }
        if scopes.is_empty() {
            return Err(UrlError::NoScopes);
        }
        if let Some(scope) = scopes.iter().find(|s| !is_pleo_scope(s)) {
            return Err(UrlError::InvalidScope(scope.clone()));
        }
        Ok(Self::checked(url, client_id, redirect_uri, scopes))
    }

    /// The template of an endpoint and a client already checked, for
    /// callers that validated the configuration.
    pub(crate) fn checked(
        mut url: ::url::Url,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Self {
        let endpoint_params = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "));
        Self {
            prefix: url.into(),
            endpoint_params,
        }
    }

    /// The extra parameters are allowed, and none repeats one of the
    /// endpoint's own.
    fn check_extra(&self, extra: &[(String, String)]) -> Result<(), ParamError> {
        check_extra_params(extra)?;
        match extra
            .iter()
            .find(|(name, _)| self.endpoint_params.contains(name))
        {
            Some((name, _)) => Err(ParamError::NotAllowed(name.clone())),
            None => Ok(()),
        }
    }

    /// The URL for one request: `state` (RFC 6749 §10.12: at least 128
    /// bits), the S256 `code_challenge` (RFC 7636 §4.3; Pleo refuses
    /// `plain`) and the allowed extra parameters, in that order.
    pub fn url(
        &self,
        state: &Secret,
        code_challenge: &str,
        extra_params: &[(String, String)],
    ) -> Result<Secret, UrlError> {
        let state = state.expose();
        if state.len() < 22 || !url_safe(state) {
            return Err(UrlError::WeakState);
        }
        if code_challenge.len() != 43 || !url_safe(code_challenge) {
            return Err(UrlError::InvalidChallenge);
        }
        self.check_extra(extra_params)?;
        Ok(self.assemble(state, code_challenge, extra_params))
    }

    /// Appends the per-request parameters, already checked. `state` and
    /// the challenge are base64url, which form encoding leaves as they are.
    fn assemble(&self, state: &str, code_challenge: &str, extra: &[(String, String)]) -> Secret {
        let mut url = String::with_capacity(self.prefix.len() + 120 + state.len());
        url.push_str(&self.prefix);
        for (name, value) in [
            ("state", state),
            ("code_challenge", code_challenge),
            ("code_challenge_method", "S256"),
        ] {
            url.extend(["&", name, "=", value]);
        }
        for (name, value) in extra {
            url.push('&');
            url.extend(::url::form_urlencoded::byte_serialize(name.as_bytes()));
            url.push('=');
            url.extend(::url::form_urlencoded::byte_serialize(value.as_bytes()));
        }
        Secret::new(url)
    }
}

/// Only base64url characters (RFC 4648 §5), which need no encoding in a
/// query.
fn url_safe(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Appends the parameters to an endpoint already checked, for callers that
/// validated every other input: only the extra parameters are checked
/// against the endpoint's own query.
pub(crate) fn assemble(url: ::url::Url, params: &UrlParams) -> Result<Secret, ParamError> {
    let template =
        UrlTemplate::checked(url, &params.client_id, &params.redirect_uri, &params.scopes);
    template.check_extra(&params.extra_params)?;
    Ok(template.assemble(
        params.state.expose(),
        &params.code_challenge,
        &params.extra_params,
    ))
}

/// Only allow-listed names, each once, with short printable values.
pub fn check_extra_params(params: &[(String, String)]) -> Result<(), ParamError> {
    for (index, (name, value)) in params.iter().enumerate() {
        if !ALLOWED_EXTRA_PARAMS.contains(&name.as_str())
            || params[..index].iter().any(|(n, _)| n == name)
        {
            return Err(ParamError::NotAllowed(name.clone()));
        }
        if value.is_empty()
            || value.chars().count() > MAX_EXTRA_VALUE
            || value.chars().any(char::is_control)
        {
            return Err(ParamError::InvalidValue(name.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params() -> UrlParams {
        UrlParams {
            authorize_url: "https://auth.staging.pleo.io/oauth/authorize".into(),
            client_id: "client-123".into(),
            redirect_uri: "https://app.example/callback?tenant=7".into(),
            scopes: vec!["users:read".into(), "export-jobs:write".into()],
            state: Secret::new("c3RhdGUtc3RhdGUtc3RhdGUtc3RhdGU"),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            extra_params: vec![("prompt".into(), "login".into())],
        }
    }

    #[test]
    fn rfc6749_4_1_1_and_rfc7636_4_3_parameters() {
        let url = build(&params()).unwrap();
        assert_eq!(
            url.expose(),
            "https://auth.staging.pleo.io/oauth/authorize?response_type=code&client_id=client-123\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcallback%3Ftenant%3D7&scope=users%3Aread+export-jobs%3Awrite\
             &state=c3RhdGUtc3RhdGUtc3RhdGUtc3RhdGU&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256&prompt=login"
        );
    }

    #[test]
    fn security_parameters_cannot_be_overridden() {
        for name in [
            "state",
            "code_challenge_method",
            "redirect_uri",
            "client_secret",
            "response_type",
        ] {
            let p = UrlParams {
                extra_params: vec![(name.into(), "x".into())],
                ..params()
            };
            assert_eq!(
                build(&p),
                Err(UrlError::Param(ParamError::NotAllowed(name.into())))
            );
        }
        let p = UrlParams {
            state: Secret::new("short"),
            ..params()
        };
        assert_eq!(build(&p), Err(UrlError::WeakState));
        let p = UrlParams {
            code_challenge: "plain-verifier".into(),
            ..params()
        };
        assert_eq!(build(&p), Err(UrlError::InvalidChallenge));
    }

    /// A template made once gives, request after request, exactly the URL
    /// `build` gives from all the parameters.
    #[test]
    fn a_template_gives_the_url_build_gives() {
        let p = params();
        let template =
            UrlTemplate::new(&p.authorize_url, &p.client_id, &p.redirect_uri, &p.scopes).unwrap();
        for state in [
            "c3RhdGUtc3RhdGUtc3RhdGUtc3RhdGU",
            "another-state_of_thirty-two-chars",
        ] {
            let p = UrlParams {
                state: Secret::new(state),
                extra_params: vec![("login_hint".into(), "a b~é&=".into())],
                ..params()
            };
            assert_eq!(
                template.url(&p.state, &p.code_challenge, &p.extra_params),
                build(&p)
            );
        }
        assert_eq!(
            template.url(&Secret::new("short"), &p.code_challenge, &[]),
            Err(UrlError::WeakState)
        );
        assert!(!format!("{template:?}").contains("state="));
    }
}
