//! The `authorize` export.

use super::bindings::exports::pleo::oauth::authorize as w;
use super::bindings::pleo::oauth::clock;
use super::io::Imports;
use super::{Component, heap};
use crate::authorize as c;
use crate::secret::Secret;

impl w::Guest for Component {
    type UrlTemplate = UrlTemplate;

    fn begin(
        connection: String,
        options: w::BeginOptions,
    ) -> Result<w::Authorization, w::BeginError> {
        let options = options.into();
        begin_result(c::begin(
            &mut Imports,
            clock::now_ms(),
            &connection,
            &options,
        ))
    }

    fn complete(
        callback: String,
        connection: Option<String>,
    ) -> Result<w::Completed, w::CompleteError> {
        complete_result(c::complete(
            &mut Imports,
            clock::now_ms(),
            &callback,
            connection.as_deref(),
        ))
    }

    fn s256_challenge(verifier: String) -> Result<String, w::VerifierError> {
        Ok(c::Verifier::parse(&verifier)?.s256_challenge())
    }

    fn build_url(params: w::UrlParams) -> Result<String, w::UrlError> {
        let params = c::UrlParams {
            authorize_url: params.authorize_url,
            client_id: params.client_id,
            redirect_uri: params.redirect_uri,
            scopes: params.scopes,
            state: Secret::new(params.state),
            code_challenge: params.code_challenge,
            extra_params: params.extra_params,
        };
        Ok(c::url::build(&params)?.into_exposed())
    }
}

/// `url-template`: the core's [`c::UrlTemplate`] as a resource.
pub struct UrlTemplate(c::UrlTemplate);

impl w::GuestUrlTemplate for UrlTemplate {
    fn create(
        authorize_url: String,
        client_id: String,
        redirect_uri: String,
        scopes: Vec<String>,
    ) -> Result<w::UrlTemplate, w::UrlError> {
        // A template outlives the call: it is kept out of the per-call arena.
        heap::outside_arena(|| {
            let template = c::UrlTemplate::new(&authorize_url, &client_id, &redirect_uri, &scopes)?;
            Ok(w::UrlTemplate::new(Self(template)))
        })
    }

    fn url(
        &self,
        state: String,
        code_challenge: String,
        extra_params: Vec<(String, String)>,
    ) -> Result<String, w::UrlError> {
        let state = Secret::new(state);
        Ok(self
            .0
            .url(&state, &code_challenge, &extra_params)?
            .into_exposed())
    }
}

impl From<c::UrlError> for w::UrlError {
    fn from(error: c::UrlError) -> Self {
        match error {
            c::UrlError::InvalidEndpoint => Self::InvalidEndpoint,
            c::UrlError::InvalidClientId => Self::InvalidClientId,
            c::UrlError::InvalidRedirectUri => Self::InvalidRedirectUri,
            c::UrlError::InvalidScope(scope) => Self::InvalidScope(scope),
            c::UrlError::NoScopes => Self::NoScopes,
            c::UrlError::WeakState => Self::WeakState,
            c::UrlError::InvalidChallenge => Self::InvalidChallenge,
            c::UrlError::Param(error) => Self::Param(error.into()),
        }
    }
}

record_into!(
    w::BeginOptions => c::BeginOptions {
        extra_scopes,
        return_to,
        extra_params,
        ttl_seconds,
    }
);

/// `authorize.begin`'s result (shared with `steps`).
pub(super) fn begin_result(
    result: Result<c::Authorization, c::BeginError>,
) -> Result<w::Authorization, w::BeginError> {
    let authorization = result.map_err(|e| match e {
        c::BeginError::UnknownConnection => w::BeginError::UnknownConnection,
        c::BeginError::InvalidConfig(error) => w::BeginError::InvalidConfig(error.into()),
        c::BeginError::InvalidOption(error) => w::BeginError::InvalidOption(match error {
            c::OptionError::InvalidScope(scope) => w::OptionError::InvalidScope(scope),
            c::OptionError::Param(error) => w::OptionError::Param(error.into()),
            c::OptionError::ReturnToTooLong => w::OptionError::ReturnToTooLong,
            c::OptionError::InvalidTtl => w::OptionError::InvalidTtl,
        }),
        c::BeginError::Storage(error) => w::BeginError::Storage(error.into()),
    })?;
    Ok(w::Authorization {
        url: authorization.url.into_exposed(),
        expires_at_ms: authorization.expires_at_ms,
        scopes: authorization.scopes,
    })
}

/// `authorize.complete`'s result (shared with `steps`).
pub(super) fn complete_result(
    result: Result<c::Completed, c::CompleteError>,
) -> Result<w::Completed, w::CompleteError> {
    let completed = result.map_err(|e| match e {
        c::CompleteError::Rejected(rejection) => w::CompleteError::Rejected(w::Rejection {
            reason: rejection.reason.into(),
            connection: rejection.connection,
        }),
        c::CompleteError::Denied { connection, error } => w::CompleteError::Denied(w::Denial {
            connection,
            error: w::AuthorizationError {
                code: match error.code {
                    c::AuthorizationErrorCode::InvalidRequest => {
                        w::AuthorizationErrorCode::InvalidRequest
                    }
                    c::AuthorizationErrorCode::UnauthorizedClient => {
                        w::AuthorizationErrorCode::UnauthorizedClient
                    }
                    c::AuthorizationErrorCode::AccessDenied => {
                        w::AuthorizationErrorCode::AccessDenied
                    }
                    c::AuthorizationErrorCode::UnsupportedResponseType => {
                        w::AuthorizationErrorCode::UnsupportedResponseType
                    }
                    c::AuthorizationErrorCode::InvalidScope => {
                        w::AuthorizationErrorCode::InvalidScope
                    }
                    c::AuthorizationErrorCode::ServerError => {
                        w::AuthorizationErrorCode::ServerError
                    }
                    c::AuthorizationErrorCode::TemporarilyUnavailable => {
                        w::AuthorizationErrorCode::TemporarilyUnavailable
                    }
                    c::AuthorizationErrorCode::Other(code) => {
                        w::AuthorizationErrorCode::Other(code)
                    }
                },
                description: error.description,
            },
        }),
        c::CompleteError::ExchangeFailed {
            connection,
            failure,
        } => w::CompleteError::ExchangeFailed(w::ExchangeError {
            connection,
            failure: match failure {
                c::ExchangeFailure::Reauthenticate(reauth) => {
                    w::ExchangeFailure::Reauthenticate(reauth.into())
                }
                c::ExchangeFailure::ClientMisconfigured(error) => {
                    w::ExchangeFailure::ClientMisconfigured(error.into())
                }
                c::ExchangeFailure::RequestInvalid(error) => {
                    w::ExchangeFailure::RequestInvalid(error.into())
                }
                c::ExchangeFailure::Transient(transient) => {
                    w::ExchangeFailure::Transient(transient.into())
                }
                c::ExchangeFailure::CredentialsMissing => w::ExchangeFailure::CredentialsMissing,
            },
        }),
        c::CompleteError::Storage(error) => w::CompleteError::Storage(error.into()),
    })?;
    Ok(w::Completed {
        connection: completed.connection,
        return_to: completed.return_to,
        scopes: completed.scopes,
        recovered: completed.recovered,
    })
}

enum_into!(c::VerifierError => w::VerifierError { Length, Character });
enum_into!(c::RejectionReason => w::RejectionReason {
    Malformed, MissingState, DuplicateParameter, UnknownState, ExpiredState, ConnectionMismatch,
    IssuerMismatch, IssuerMissing, MissingCode,
});

impl From<c::ParamError> for w::ParamError {
    fn from(error: c::ParamError) -> Self {
        match error {
            c::ParamError::NotAllowed(name) => Self::NotAllowed(name),
            c::ParamError::InvalidValue(name) => Self::InvalidValue(name),
        }
    }
}
