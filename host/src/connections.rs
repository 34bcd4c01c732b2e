//! The `connections` export.

pub use pleo_oauth_core::connection::{
    ApiAction, Bearer, ClientFault, ClientType, ConfigureError, ConnectionConfig, ConnectionPage,
    ConnectionSummary, CustomEndpoints, DisconnectError, Environment, InvalidConfig, MAX_PAGE,
    NotConnected, Reason, Refusal, Revocation, State, StatusError, StatusView, StorageError,
    WaitReason,
};
use pleo_oauth_core::secret::Secret;
use pleo_oauth_core::types::Header;

use crate::bindings::exports::pleo::oauth::connections as wit;
use crate::runtime::{GuestError, Instance};
use pleo_oauth_core::{enum_into, record_into};

impl Instance {
    /// `connections.configure`: saves a connection's configuration.
    pub fn configure(
        &mut self,
        connection: &str,
        config: &ConnectionConfig,
    ) -> Result<Result<(), ConfigureError>, GuestError> {
        let config = wit::ConnectionConfig::from(config.clone());
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_configure(store, connection, &config)
        })?;
        Ok(configure_result(result))
    }

    /// `connections.get-config`.
    pub fn get_config(
        &mut self,
        connection: &str,
    ) -> Result<Result<Option<ConnectionConfig>, StorageError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_get_config(store, connection)
        })?;
        Ok(result
            .map(|config| config.map(Into::into))
            .map_err(Into::into))
    }

    /// `connections.status`.
    pub fn status(
        &mut self,
        connection: &str,
    ) -> Result<Result<StatusView, StatusError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_status(store, connection)
        })?;
        Ok(status_result(result))
    }
    /// `connections.retry-now`: clears the back-off.
    pub fn retry_now(&mut self, connection: &str) -> Result<Result<(), StatusError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_retry_now(store, connection)
        })?;
        Ok(result.map_err(status_error))
    }
}

pub(crate) fn status_error(error: wit::StatusError) -> StatusError {
    match error {
        wit::StatusError::UnknownConnection => StatusError::UnknownConnection,
        wit::StatusError::Storage(error) => StatusError::Storage(error.into()),
    }
}

enum_into!(wit::State => State { New, Authorizing, Connected, Degraded, Stalled, ClientError, ReauthRequired, Disconnected });
enum_into!(wit::ReauthReason => Reason { RefreshTokenRejected, NoRefreshToken, RotationLost, RefreshTokenReused });
impl Instance {
    /// `connections.access-token`: the API gate.
    pub fn access_token(
        &mut self,
        connection: &str,
    ) -> Result<Result<Bearer, Refusal>, GuestError> {
        let result = self.call(|store, c| {
            let (result,) = c.access_token(store)?.call(&mut *store, (connection,))?;
            Ok(result)
        })?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    /// `connections.report`: what an API response means, and what to do.
    pub fn report(
        &mut self,
        connection: &str,
        access_token: &str,
        status: u16,
        headers: &[Header],
    ) -> Result<Result<ApiAction, Refusal>, GuestError> {
        let headers: Vec<_> = headers.iter().cloned().map(Into::into).collect();
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?.call_report(
                store,
                connection,
                access_token,
                status,
                &headers,
            )
        })?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    /// `connections.disconnect`.
    pub fn disconnect(
        &mut self,
        connection: &str,
        revoke: bool,
    ) -> Result<Result<Revocation, DisconnectError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_disconnect(store, connection, revoke)
        })?;
        Ok(disconnect_result(result))
    }

    /// `connections.list`: one page of the configured connections, after
    /// the id `after`, at most `limit` (1 to [`MAX_PAGE`]).
    pub fn list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Result<ConnectionPage, StorageError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_list(store, after, limit)
        })?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    /// `connections.forget`.
    pub fn forget(&mut self, connection: &str) -> Result<Result<(), StorageError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections(store)?
                .call_forget(store, connection)
        })?;
        Ok(result.map_err(Into::into))
    }
}

enum_into!(wit::WaitReason => WaitReason { RefreshInProgress, BackingOff, Stalled });
enum_into!(wit::NotConnected => NotConnected { UnknownConnection, NeverAuthorized, Disconnected });
enum_into!(
    wit::ClientType,
    ClientType {
        Confidential,
        Public
    }
);

impl From<wit::Bearer> for Bearer {
    fn from(bearer: wit::Bearer) -> Self {
        Self {
            token: Secret::new(bearer.token),
            expires_at_ms: bearer.expires_at_ms,
            scopes: bearer.scopes,
        }
    }
}

impl From<wit::Refusal> for Refusal {
    fn from(refusal: wit::Refusal) -> Self {
        match refusal {
            wit::Refusal::Reauthenticate(reason) => Self::Reauthenticate(reason.into()),
            wit::Refusal::Wait(wait) => Self::Wait {
                until_ms: wait.until_ms,
                why: wait.why.into(),
            },
            wit::Refusal::ClientMisconfigured(problem) => Self::ClientMisconfigured {
                fault: match problem.fault {
                    wit::ClientFault::Rejected(code) => {
                        ClientFault::Rejected(crate::classify::error_code(code))
                    }
                    wit::ClientFault::NoCredentials => ClientFault::NoCredentials,
                },
                retry_at_ms: problem.retry_at_ms,
            },
            wit::Refusal::NotConnected(why) => Self::NotConnected(why.into()),
            wit::Refusal::Storage(error) => Self::Storage(error.into()),
        }
    }
}

enum_into!(wit::Environment, Environment { Production, Staging, Custom(endpoints) });
record_into!(
    wit::CustomEndpoints,
    CustomEndpoints {
        authorize_url,
        token_url
    }
);
record_into!(
    wit::ConnectionConfig,
    ConnectionConfig {
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

impl From<wit::InvalidConfig> for InvalidConfig {
    fn from(error: wit::InvalidConfig) -> Self {
        match error {
            wit::InvalidConfig::InvalidConnectionId => Self::InvalidConnectionId,
            wit::InvalidConfig::InvalidClientId => Self::InvalidClientId,
            wit::InvalidConfig::InvalidRedirectUri => Self::InvalidRedirectUri,
            wit::InvalidConfig::InvalidEndpoint => Self::InvalidEndpoint,
            wit::InvalidConfig::InvalidScope(scope) => Self::InvalidScope(scope),
            wit::InvalidConfig::NoScopes => Self::NoScopes,
            wit::InvalidConfig::InvalidIssuer => Self::InvalidIssuer,
            wit::InvalidConfig::InvalidTiming => Self::InvalidTiming,
        }
    }
}

// The conversions of results, shared with the `steps` export.

pub(crate) fn configure_result(
    result: Result<(), wit::ConfigureError>,
) -> Result<(), ConfigureError> {
    result.map_err(|e| match e {
        wit::ConfigureError::Invalid(error) => ConfigureError::Invalid(error.into()),
        wit::ConfigureError::Storage(error) => ConfigureError::Storage(error.into()),
    })
}

pub(crate) fn status_result(
    result: Result<wit::ConnectionStatus, wit::StatusError>,
) -> Result<StatusView, StatusError> {
    result
        .map(|s| StatusView {
            state: s.state.into(),
            since_ms: s.since_ms,
            reason: s.reason.map(Into::into),
            access_expires_at_ms: s.access_expires_at_ms,
            scopes: s.scopes,
            missing_scopes: s.missing_scopes,
            authorization_expires_at_ms: s.authorization_expires_at_ms,
            failures: s.consecutive_failures,
            next_retry_at_ms: s.next_retry_at_ms,
            last_refresh_at_ms: s.last_refresh_at_ms,
            last_error: s.last_error,
            refreshing_until_ms: s.refreshing_until_ms,
            failing_since_ms: s.failing_since_ms,
            refresh_outcome_unknown_since_ms: s.refresh_outcome_unknown_since_ms,
            fresh_token_rejections: s.fresh_token_rejections,
            next_action: s.next_action,
        })
        .map_err(status_error)
}

pub(crate) fn disconnect_result(
    result: Result<wit::Revocation, wit::DisconnectError>,
) -> Result<Revocation, DisconnectError> {
    result
        .map(|revocation| match revocation {
            wit::Revocation::NotRequested => Revocation::NotRequested,
            wit::Revocation::NotConfigured => Revocation::NotConfigured,
            wit::Revocation::NoToken => Revocation::NoToken,
            wit::Revocation::Revoked => Revocation::Revoked,
            wit::Revocation::Failed(why) => Revocation::Failed(why),
        })
        .map_err(|e| match e {
            wit::DisconnectError::UnknownConnection => DisconnectError::UnknownConnection,
            wit::DisconnectError::Storage(error) => DisconnectError::Storage(error.into()),
        })
}

impl From<wit::ApiAction> for ApiAction {
    fn from(action: wit::ApiAction) -> Self {
        match action {
            wit::ApiAction::Proceed => Self::Proceed,
            wit::ApiAction::Retry(bearer) => Self::Retry(bearer.into()),
            wit::ApiAction::InsufficientScope(scopes) => Self::InsufficientScope(scopes),
            wit::ApiAction::Forbidden => Self::Forbidden,
            wit::ApiAction::RateLimited(at) => Self::RateLimited(at),
            wit::ApiAction::Transient(at) => Self::Transient(at),
            wit::ApiAction::RejectedAfterRefresh => Self::RejectedAfterRefresh,
        }
    }
}

impl From<wit::ConnectionPage> for ConnectionPage {
    fn from(page: wit::ConnectionPage) -> Self {
        Self {
            connections: page
                .connections
                .into_iter()
                .map(|summary| ConnectionSummary {
                    connection: summary.connection,
                    state: summary.state.into(),
                    reason: summary.reason.map(Into::into),
                })
                .collect(),
            next_after: page.next_after,
        }
    }
}
