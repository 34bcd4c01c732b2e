//! The `authorize` export.

pub use pleo_oauth_core::authorize::{
    Authorization, AuthorizationError, AuthorizationErrorCode, BeginError, BeginOptions,
    CompleteError, Completed, ExchangeFailure, OptionError, ParamError, Rejection, RejectionReason,
    UrlError, UrlParams, VerifierError,
};
use pleo_oauth_core::secret::Secret;
use wasmtime::component::ResourceAny;

use crate::bindings::exports::pleo::oauth::authorize as wit;
use crate::classify::{oauth_error, reauth, transient};
use crate::runtime::{GuestError, Instance};
use pleo_oauth_core::enum_into;

impl Instance {
    /// `authorize.begin`: the URL to send the user to.
    pub fn begin(
        &mut self,
        connection: &str,
        options: &BeginOptions,
    ) -> Result<Result<Authorization, BeginError>, GuestError> {
        let options = wit::BeginOptions::from(options.clone());
        let result = self.call(|store, c| {
            c.pleo_oauth_authorize(store)?
                .call_begin(store, connection, &options)
        })?;
        Ok(begin_result(result))
    }

    /// `authorize.complete`: handles the callback.
    pub fn complete(
        &mut self,
        callback: &str,
        connection: Option<&str>,
    ) -> Result<Result<Completed, CompleteError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_authorize(store)?
                .call_complete(store, callback, connection)
        })?;
        Ok(complete_result(result))
    }

    /// `authorize.s256-challenge`.
    pub fn s256_challenge(
        &mut self,
        verifier: &str,
    ) -> Result<Result<String, VerifierError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_authorize(store)?
                .call_s256_challenge(store, verifier)
        })?;
        Ok(result.map_err(Into::into))
    }

    /// `authorize.build-url`.
    pub fn build_url(
        &mut self,
        params: &UrlParams,
    ) -> Result<Result<Secret, UrlError>, GuestError> {
        let params = wit::UrlParams {
            authorize_url: params.authorize_url.clone(),
            client_id: params.client_id.clone(),
            redirect_uri: params.redirect_uri.clone(),
            scopes: params.scopes.clone(),
            state: params.state.expose().to_owned(),
            code_challenge: params.code_challenge.clone(),
            extra_params: params.extra_params.clone(),
        };
        let result = self.call(|store, c| {
            c.pleo_oauth_authorize(store)?
                .call_build_url(store, &params)
        })?;
        Ok(result.map(Secret::new).map_err(url_error))
    }

    /// `authorize.url-template.create`: checks and encodes a client's fixed
    /// URL parameters once in the component.
    pub fn url_template(
        &mut self,
        authorize_url: &str,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Result<Result<UrlTemplate, UrlError>, GuestError> {
        let inputs = TemplateInputs {
            authorize_url: authorize_url.into(),
            client_id: client_id.into(),
            redirect_uri: redirect_uri.into(),
            scopes: scopes.to_vec(),
        };
        Ok(self.create_template(&inputs)?.map(|resource| UrlTemplate {
            resource,
            instantiation: self.instantiations(),
            inputs,
        }))
    }

    /// `url-template.url`: the URL for one request. A template made in an
    /// instance since replaced (after a trap) is made again, from the same
    /// inputs, in the new one.
    pub fn template_url(
        &mut self,
        template: &mut UrlTemplate,
        state: &Secret,
        code_challenge: &str,
        extra_params: &[(String, String)],
    ) -> Result<Result<Secret, UrlError>, GuestError> {
        if template.instantiation != self.instantiations() || !self.is_live() {
            template.resource = match self.create_template(&template.inputs)? {
                Ok(resource) => resource,
                Err(error) => return Ok(Err(error)),
            };
            template.instantiation = self.instantiations();
        }
        let resource = template.resource;
        let result = self.call(|store, c| {
            c.pleo_oauth_authorize(store)?.url_template().call_url(
                store,
                resource,
                state.expose(),
                code_challenge,
                extra_params,
            )
        })?;
        Ok(result.map(Secret::new).map_err(url_error))
    }

    /// Frees a template's resource in the component.
    pub fn drop_url_template(&mut self, template: UrlTemplate) -> Result<(), GuestError> {
        if template.instantiation != self.instantiations() || !self.is_live() {
            return Ok(());
        }
        self.call(|store, _| template.resource.resource_drop(store))
    }

    fn create_template(
        &mut self,
        inputs: &TemplateInputs,
    ) -> Result<Result<ResourceAny, UrlError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_authorize(store)?.url_template().call_create(
                store,
                &inputs.authorize_url,
                &inputs.client_id,
                &inputs.redirect_uri,
                &inputs.scopes,
            )
        })?;
        Ok(result.map_err(url_error))
    }
}

/// A client's fixed authorisation-URL parameters, checked and encoded in
/// the component (`authorize.url-template`). It belongs to the instance
/// that made it: give it back with [`Instance::drop_url_template`].
#[derive(Debug)]
pub struct UrlTemplate {
    resource: ResourceAny,
    instantiation: u64,
    inputs: TemplateInputs,
}

#[derive(Debug)]
struct TemplateInputs {
    authorize_url: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
}

fn url_error(error: wit::UrlError) -> UrlError {
    match error {
        wit::UrlError::InvalidEndpoint => UrlError::InvalidEndpoint,
        wit::UrlError::InvalidClientId => UrlError::InvalidClientId,
        wit::UrlError::InvalidRedirectUri => UrlError::InvalidRedirectUri,
        wit::UrlError::InvalidScope(scope) => UrlError::InvalidScope(scope),
        wit::UrlError::NoScopes => UrlError::NoScopes,
        wit::UrlError::WeakState => UrlError::WeakState,
        wit::UrlError::InvalidChallenge => UrlError::InvalidChallenge,
        wit::UrlError::Param(error) => UrlError::Param(error.into()),
    }
}

fn complete_error(error: wit::CompleteError) -> CompleteError {
    match error {
        wit::CompleteError::Rejected(r) => CompleteError::Rejected(Rejection {
            reason: r.reason.into(),
            connection: r.connection,
        }),
        wit::CompleteError::Denied(d) => CompleteError::Denied {
            connection: d.connection,
            error: AuthorizationError {
                code: match d.error.code {
                    wit::AuthorizationErrorCode::InvalidRequest => {
                        AuthorizationErrorCode::InvalidRequest
                    }
                    wit::AuthorizationErrorCode::UnauthorizedClient => {
                        AuthorizationErrorCode::UnauthorizedClient
                    }
                    wit::AuthorizationErrorCode::AccessDenied => {
                        AuthorizationErrorCode::AccessDenied
                    }
                    wit::AuthorizationErrorCode::UnsupportedResponseType => {
                        AuthorizationErrorCode::UnsupportedResponseType
                    }
                    wit::AuthorizationErrorCode::InvalidScope => {
                        AuthorizationErrorCode::InvalidScope
                    }
                    wit::AuthorizationErrorCode::ServerError => AuthorizationErrorCode::ServerError,
                    wit::AuthorizationErrorCode::TemporarilyUnavailable => {
                        AuthorizationErrorCode::TemporarilyUnavailable
                    }
                    wit::AuthorizationErrorCode::Other(code) => AuthorizationErrorCode::Other(code),
                },
                description: d.error.description,
            },
        },
        wit::CompleteError::ExchangeFailed(e) => CompleteError::ExchangeFailed {
            connection: e.connection,
            failure: match e.failure {
                wit::ExchangeFailure::Reauthenticate(r) => {
                    ExchangeFailure::Reauthenticate(reauth(r))
                }
                wit::ExchangeFailure::ClientMisconfigured(error) => {
                    ExchangeFailure::ClientMisconfigured(oauth_error(error))
                }
                wit::ExchangeFailure::RequestInvalid(error) => {
                    ExchangeFailure::RequestInvalid(oauth_error(error))
                }
                wit::ExchangeFailure::Transient(t) => ExchangeFailure::Transient(transient(t)),
                wit::ExchangeFailure::CredentialsMissing => ExchangeFailure::CredentialsMissing,
            },
        },
        wit::CompleteError::Storage(error) => CompleteError::Storage(error.into()),
    }
}

enum_into!(wit::VerifierError => VerifierError { Length, Character });
enum_into!(wit::RejectionReason => RejectionReason {
    Malformed, MissingState, DuplicateParameter, UnknownState, ExpiredState, ConnectionMismatch,
    IssuerMismatch, IssuerMissing, MissingCode,
});

impl From<wit::ParamError> for ParamError {
    fn from(error: wit::ParamError) -> Self {
        match error {
            wit::ParamError::NotAllowed(name) => Self::NotAllowed(name),
            wit::ParamError::InvalidValue(name) => Self::InvalidValue(name),
        }
    }
}

// The conversions, shared with the `steps` export.

impl From<BeginOptions> for wit::BeginOptions {
    fn from(options: BeginOptions) -> Self {
        Self {
            extra_scopes: options.extra_scopes,
            return_to: options.return_to,
            extra_params: options.extra_params,
            ttl_seconds: options.ttl_seconds,
        }
    }
}

pub(crate) fn begin_result(
    result: Result<wit::Authorization, wit::BeginError>,
) -> Result<Authorization, BeginError> {
    result
        .map(|a| Authorization {
            url: Secret::new(a.url),
            expires_at_ms: a.expires_at_ms,
            scopes: a.scopes,
        })
        .map_err(|e| match e {
            wit::BeginError::UnknownConnection => BeginError::UnknownConnection,
            wit::BeginError::InvalidConfig(error) => BeginError::InvalidConfig(error.into()),
            wit::BeginError::InvalidOption(error) => BeginError::InvalidOption(match error {
                wit::OptionError::InvalidScope(scope) => OptionError::InvalidScope(scope),
                wit::OptionError::Param(error) => OptionError::Param(error.into()),
                wit::OptionError::ReturnToTooLong => OptionError::ReturnToTooLong,
                wit::OptionError::InvalidTtl => OptionError::InvalidTtl,
            }),
            wit::BeginError::Storage(error) => BeginError::Storage(error.into()),
        })
}

pub(crate) fn complete_result(
    result: Result<wit::Completed, wit::CompleteError>,
) -> Result<Completed, CompleteError> {
    result
        .map(|c| Completed {
            connection: c.connection,
            return_to: c.return_to,
            scopes: c.scopes,
            recovered: c.recovered,
        })
        .map_err(complete_error)
}
