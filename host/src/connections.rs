//! The `connections` export.

pub use pleo_oauth_core::connection::{
    ClientType, ConfigError, ConfigureError, ConnectionConfig, CustomEndpoints, Environment,
    Reason, State, StatusError, StatusView, StoreError,
};

use crate::bindings::exports::pleo::oauth::connections as wit;
use crate::runtime::{GuestError, Instance};
use pleo_oauth_core::unit_enum;

impl Instance {
    /// `connections.configure`: saves a connection's configuration.
    pub fn configure(
        &mut self,
        connection: &str,
        config: &ConnectionConfig,
    ) -> Result<Result<(), ConfigureError>, GuestError> {
        let config = wit::ConnectionConfig::from(config.clone());
        let result = self.call(|store, c| {
            c.pleo_oauth_connections()
                .call_configure(store, connection, &config)
        })?;
        Ok(result.map_err(|e| match e {
            wit::ConfigureError::Invalid(error) => ConfigureError::Invalid(error.into()),
            wit::ConfigureError::Storage(error) => ConfigureError::Storage(error.into()),
        }))
    }

    /// `connections.get-config`.
    pub fn get_config(
        &mut self,
        connection: &str,
    ) -> Result<Result<Option<ConnectionConfig>, StoreError>, GuestError> {
        let result = self.call(|store, c| {
            c.pleo_oauth_connections()
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
        let result =
            self.call(|store, c| c.pleo_oauth_connections().call_status(store, connection))?;
        Ok(result
            .map(|s| StatusView {
                state: s.state.into(),
                since_ms: s.since_ms,
                reason: s.reason.map(Into::into),
                access_expires_at_ms: s.access_expires_at_ms,
                scopes: s.scopes,
                missing_scopes: s.missing_scopes,
                authorization_expires_at_ms: s.authorization_expires_at_ms,
                next_action: s.next_action,
            })
            .map_err(|e| match e {
                wit::StatusError::UnknownConnection => StatusError::UnknownConnection,
                wit::StatusError::Storage(error) => StatusError::Storage(error.into()),
            }))
    }
}

unit_enum!(wit::State => State { New, Authorizing, Connected, ReauthRequired });
unit_enum!(wit::ReauthReason => Reason { RefreshTokenRejected, AccessRevoked });
unit_enum!(wit::ClientType => ClientType { Confidential, Public });
unit_enum!(ClientType => wit::ClientType { Confidential, Public });

impl From<ConnectionConfig> for wit::ConnectionConfig {
    fn from(config: ConnectionConfig) -> Self {
        Self {
            environment: match config.environment {
                Environment::Production => wit::Environment::Production,
                Environment::Staging => wit::Environment::Staging,
                Environment::Custom(e) => wit::Environment::Custom(wit::CustomEndpoints {
                    authorize_url: e.authorize_url,
                    token_url: e.token_url,
                }),
            },
            client_id: config.client_id,
            client_type: config.client_type.into(),
            redirect_uri: config.redirect_uri,
            scopes: config.scopes,
            issuer: config.issuer,
            require_iss: config.require_iss,
            settings: config.settings,
        }
    }
}

impl From<wit::ConnectionConfig> for ConnectionConfig {
    fn from(config: wit::ConnectionConfig) -> Self {
        Self {
            environment: match config.environment {
                wit::Environment::Production => Environment::Production,
                wit::Environment::Staging => Environment::Staging,
                wit::Environment::Custom(e) => Environment::Custom(CustomEndpoints {
                    authorize_url: e.authorize_url,
                    token_url: e.token_url,
                }),
            },
            client_id: config.client_id,
            client_type: config.client_type.into(),
            redirect_uri: config.redirect_uri,
            scopes: config.scopes,
            issuer: config.issuer,
            require_iss: config.require_iss,
            settings: config.settings,
        }
    }
}

impl From<wit::ConfigError> for ConfigError {
    fn from(error: wit::ConfigError) -> Self {
        match error {
            wit::ConfigError::InvalidConnectionId => Self::InvalidConnectionId,
            wit::ConfigError::InvalidClientId => Self::InvalidClientId,
            wit::ConfigError::InvalidRedirectUri => Self::InvalidRedirectUri,
            wit::ConfigError::InvalidEndpoint => Self::InvalidEndpoint,
            wit::ConfigError::InvalidScope(scope) => Self::InvalidScope(scope),
            wit::ConfigError::NoScopes => Self::NoScopes,
            wit::ConfigError::InvalidIssuer => Self::InvalidIssuer,
        }
    }
}

impl From<wit::StorageFailure> for StoreError {
    fn from(error: wit::StorageFailure) -> Self {
        match error {
            wit::StorageFailure::Conflict => Self::Conflict,
            wit::StorageFailure::Unavailable(why) => Self::Unavailable(why),
            wit::StorageFailure::Corrupt(why) => Self::Corrupt(why),
        }
    }
}
