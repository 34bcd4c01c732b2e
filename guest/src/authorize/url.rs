//! The authorisation request URL (RFC 6749 §4.1.1, RFC 7636 §4.3).

use serde::{Deserialize, Serialize};

use crate::connection::config::{endpoint_url, is_pleo_scope, secure_url};
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
    #[error("parameter {0:?} may not be added (allowed: prompt, login_hint, ui_locales, max_age)")]
    NotAllowed(String),
    #[error("the value of parameter {0:?} is empty, too long or has control characters")]
    InvalidValue(String),
}

/// Builds the URL. Never a secret other than `state` (which must travel)
/// goes into it: no client secret, no verifier.
pub fn build(params: &UrlParams) -> Result<Secret, UrlError> {
    let url = endpoint_url(&params.authorize_url).ok_or(UrlError::InvalidEndpoint)?;
    let client_id_ok = !params.client_id.is_empty()
        && params.client_id.len() <= 256
        && params.client_id.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !client_id_ok {
        return Err(UrlError::InvalidClientId);
    }
    if secure_url(&params.redirect_uri).is_none_or(|u| u.fragment().is_some()) {
        return Err(UrlError::InvalidRedirectUri);
    }
    if params.scopes.is_empty() {
        return Err(UrlError::NoScopes);
    }
    if let Some(scope) = params.scopes.iter().find(|s| !is_pleo_scope(s)) {
        return Err(UrlError::InvalidScope(scope.clone()));
    }
    let state = params.state.expose();
    if state.len() < 22
        || !state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(UrlError::WeakState);
    }
    let challenge = &params.code_challenge;
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(UrlError::InvalidChallenge);
    }
    check_extra_params(&params.extra_params)?;
    Ok(assemble(url, params))
}

/// Appends the parameters to an endpoint already checked, for callers that
/// validated every input.
pub(crate) fn assemble(mut url: ::url::Url, params: &UrlParams) -> Secret {
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &params.client_id)
        .append_pair("redirect_uri", &params.redirect_uri)
        .append_pair("scope", &params.scopes.join(" "))
        .append_pair("state", params.state.expose())
        .append_pair("code_challenge", &params.code_challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(&params.extra_params);
    Secret::new(String::from(url))
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
}
