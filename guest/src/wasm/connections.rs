//! The `connections` export. The conversions of results are functions of
//! their own, shared with the `steps` export.

use super::Component;
use super::bindings::exports::pleo::oauth::connections as w;
use super::bindings::pleo::oauth::clock;
use super::io::Imports;
use crate::connection as c;

impl w::Guest for Component {
    fn configure(connection: String, config: w::ConnectionConfig) -> Result<(), w::ConfigureError> {
        configure_result(c::configure(&mut Imports, &connection, &config.into()))
    }

    fn get_config(connection: String) -> Result<Option<w::ConnectionConfig>, w::StorageError> {
        Ok(c::get_config(&mut Imports, &connection)?.map(Into::into))
    }

    fn status(connection: String) -> Result<w::ConnectionStatus, w::StatusError> {
        status_result(c::status_view(&mut Imports, clock::now_ms(), &connection))
    }

    fn access_token(connection: String) -> Result<w::Bearer, w::Refusal> {
        Ok(c::access_token(&mut Imports, clock::now_ms(), &connection)?.into())
    }

    fn report(
        connection: String,
        access_token: String,
        status: u16,
        headers: Vec<w::Header>,
    ) -> Result<w::ApiAction, w::Refusal> {
        let response = crate::types::ResponseHead {
            status,
            headers: super::classify::headers(headers),
        };
        let action = c::report(
            &mut Imports,
            clock::now_ms(),
            &connection,
            &access_token,
            &response,
        )?;
        Ok(action.into())
    }

    fn retry_now(connection: String) -> Result<(), w::StatusError> {
        c::retry_now(&mut Imports, clock::now_ms(), &connection).map_err(status_error)
    }

    fn disconnect(connection: String, revoke: bool) -> Result<w::Revocation, w::DisconnectError> {
        disconnect_result(c::disconnect(
            &mut Imports,
            clock::now_ms(),
            &connection,
            revoke,
        ))
    }

    fn forget(connection: String) -> Result<(), w::StorageError> {
        Ok(c::forget(&mut Imports, &connection)?)
    }

    fn list(after: Option<String>, limit: u32) -> Result<w::ConnectionPage, w::StorageError> {
        Ok(c::list(&mut Imports, clock::now_ms(), after.as_deref(), limit)?.into())
    }
}

pub(super) fn configure_result(
    result: Result<(), c::ConfigureError>,
) -> Result<(), w::ConfigureError> {
    result.map_err(|e| match e {
        c::ConfigureError::Invalid(error) => w::ConfigureError::Invalid(error.into()),
        c::ConfigureError::Storage(error) => w::ConfigureError::Storage(error.into()),
    })
}

pub(super) fn status_result(
    view: Result<c::StatusView, c::StatusError>,
) -> Result<w::ConnectionStatus, w::StatusError> {
    let view = view.map_err(status_error)?;
    Ok(w::ConnectionStatus {
        state: view.state.into(),
        since_ms: view.since_ms,
        reason: view.reason.map(Into::into),
        access_expires_at_ms: view.access_expires_at_ms,
        scopes: view.scopes,
        missing_scopes: view.missing_scopes,
        authorization_expires_at_ms: view.authorization_expires_at_ms,
        consecutive_failures: view.failures,
        next_retry_at_ms: view.next_retry_at_ms,
        last_refresh_at_ms: view.last_refresh_at_ms,
        last_error: view.last_error,
        refreshing_until_ms: view.refreshing_until_ms,
        failing_since_ms: view.failing_since_ms,
        refresh_outcome_unknown_since_ms: view.refresh_outcome_unknown_since_ms,
        fresh_token_rejections: view.fresh_token_rejections,
        next_action: view.next_action,
    })
}

pub(super) fn disconnect_result(
    result: Result<c::Revocation, c::DisconnectError>,
) -> Result<w::Revocation, w::DisconnectError> {
    let revocation = result.map_err(|e| match e {
        c::DisconnectError::UnknownConnection => w::DisconnectError::UnknownConnection,
        c::DisconnectError::Storage(error) => w::DisconnectError::Storage(error.into()),
    })?;
    Ok(match revocation {
        c::Revocation::NotRequested => w::Revocation::NotRequested,
        c::Revocation::NotConfigured => w::Revocation::NotConfigured,
        c::Revocation::NoToken => w::Revocation::NoToken,
        c::Revocation::Revoked => w::Revocation::Revoked,
        c::Revocation::Failed(why) => w::Revocation::Failed(why),
    })
}

impl From<c::ApiAction> for w::ApiAction {
    fn from(action: c::ApiAction) -> Self {
        match action {
            c::ApiAction::Proceed => Self::Proceed,
            c::ApiAction::Retry(bearer) => Self::Retry(bearer.into()),
            c::ApiAction::InsufficientScope(scopes) => Self::InsufficientScope(scopes),
            c::ApiAction::Forbidden => Self::Forbidden,
            c::ApiAction::RateLimited(at) => Self::RateLimited(at),
            c::ApiAction::Transient(at) => Self::Transient(at),
            c::ApiAction::RejectedAfterRefresh => Self::RejectedAfterRefresh,
        }
    }
}

impl From<c::ConnectionPage> for w::ConnectionPage {
    fn from(page: c::ConnectionPage) -> Self {
        Self {
            connections: page
                .connections
                .into_iter()
                .map(|summary| w::ConnectionSummary {
                    connection: summary.connection,
                    state: summary.state.into(),
                    reason: summary.reason.map(Into::into),
                })
                .collect(),
            next_after: page.next_after,
        }
    }
}

pub(super) fn status_error(error: c::StatusError) -> w::StatusError {
    match error {
        c::StatusError::UnknownConnection => w::StatusError::UnknownConnection,
        c::StatusError::Storage(error) => w::StatusError::Storage(error.into()),
    }
}

impl From<c::Bearer> for w::Bearer {
    fn from(bearer: c::Bearer) -> Self {
        Self {
            token: bearer.token.into_exposed(),
            expires_at_ms: bearer.expires_at_ms,
            scopes: bearer.scopes,
        }
    }
}

impl From<c::Refusal> for w::Refusal {
    fn from(refusal: c::Refusal) -> Self {
        match refusal {
            c::Refusal::Reauthenticate(reason) => Self::Reauthenticate(reason.into()),
            c::Refusal::Wait { until_ms, why } => Self::Wait(w::Wait {
                until_ms,
                why: why.into(),
            }),
            c::Refusal::ClientMisconfigured { fault, retry_at_ms } => {
                Self::ClientMisconfigured(w::ClientProblem {
                    fault: match fault {
                        c::ClientFault::Rejected(code) => w::ClientFault::Rejected(code.into()),
                        c::ClientFault::NoCredentials => w::ClientFault::NoCredentials,
                    },
                    retry_at_ms,
                })
            }
            c::Refusal::NotConnected(why) => Self::NotConnected(why.into()),
            c::Refusal::Storage(error) => Self::Storage(error.into()),
        }
    }
}

enum_into!(c::WaitReason => w::WaitReason { RefreshInProgress, BackingOff, Stalled });
enum_into!(c::NotConnected => w::NotConnected { UnknownConnection, NeverAuthorized, Disconnected });

enum_into!(c::State => w::State { New, Authorizing, Connected, Degraded, Stalled, ClientError, ReauthRequired, Disconnected });
enum_into!(c::Reason => w::ReauthReason { RefreshTokenRejected, NoRefreshToken, RotationLost, RefreshTokenReused });
enum_into!(
    w::ClientType,
    c::ClientType {
        Confidential,
        Public
    }
);

enum_into!(w::Environment, c::Environment { Production, Staging, Custom(endpoints) });
record_into!(
    w::CustomEndpoints,
    c::CustomEndpoints {
        authorize_url,
        token_url
    }
);
record_into!(
    w::ConnectionConfig,
    c::ConnectionConfig {
        environment,
        client_id,
        client_type,
        redirect_uri,
        scopes,
        issuer,
        require_iss,
        settings,
        revocation_url,
        refresh_margin_seconds,
        max_backoff_seconds,
        stall_after_seconds,
    }
);

impl From<c::InvalidConfig> for w::InvalidConfig {
    fn from(error: c::InvalidConfig) -> Self {
        match error {
            c::InvalidConfig::InvalidConnectionId => Self::InvalidConnectionId,
            c::InvalidConfig::InvalidClientId => Self::InvalidClientId,
            c::InvalidConfig::InvalidRedirectUri => Self::InvalidRedirectUri,
            c::InvalidConfig::InvalidEndpoint => Self::InvalidEndpoint,
            c::InvalidConfig::InvalidScope(scope) => Self::InvalidScope(scope),
            c::InvalidConfig::NoScopes => Self::NoScopes,
            c::InvalidConfig::InvalidIssuer => Self::InvalidIssuer,
            c::InvalidConfig::InvalidTiming => Self::InvalidTiming,
        }
    }
}
