//! The `connections` export.

use super::Component;
use super::bindings::exports::pleo::oauth::connections as w;
use super::bindings::pleo::oauth::clock;
use super::io::Imports;
use crate::connection as c;

impl w::Guest for Component {
    fn configure(connection: String, config: w::ConnectionConfig) -> Result<(), w::ConfigureError> {
        c::configure(&mut Imports, &connection, &config.into()).map_err(|e| match e {
            c::ConfigureError::Invalid(error) => w::ConfigureError::Invalid(error.into()),
            c::ConfigureError::Storage(error) => w::ConfigureError::Storage(error.into()),
        })
    }

    fn get_config(connection: String) -> Result<Option<w::ConnectionConfig>, w::StorageFailure> {
        Ok(c::get_config(&mut Imports, &connection)?.map(Into::into))
    }

    fn status(connection: String) -> Result<w::ConnectionStatus, w::StatusError> {
        let view =
            c::status_view(&mut Imports, clock::now_ms(), &connection).map_err(|e| match e {
                c::StatusError::UnknownConnection => w::StatusError::UnknownConnection,
                c::StatusError::Storage(error) => w::StatusError::Storage(error.into()),
            })?;
        Ok(w::ConnectionStatus {
            state: view.state.into(),
            since_ms: view.since_ms,
            reason: view.reason.map(Into::into),
            access_expires_at_ms: view.access_expires_at_ms,
            scopes: view.scopes,
            missing_scopes: view.missing_scopes,
            authorization_expires_at_ms: view.authorization_expires_at_ms,
            next_action: view.next_action,
        })
    }
}

unit_enum!(c::State => w::State { New, Authorizing, Connected, ReauthRequired });
unit_enum!(c::Reason => w::ReauthReason { RefreshTokenRejected, AccessRevoked });
unit_enum!(w::ClientType => c::ClientType { Confidential, Public });
unit_enum!(c::ClientType => w::ClientType { Confidential, Public });

impl From<w::ConnectionConfig> for c::ConnectionConfig {
    fn from(config: w::ConnectionConfig) -> Self {
        Self {
            environment: match config.environment {
                w::Environment::Production => c::Environment::Production,
                w::Environment::Staging => c::Environment::Staging,
                w::Environment::Custom(e) => c::Environment::Custom(c::CustomEndpoints {
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

impl From<c::ConnectionConfig> for w::ConnectionConfig {
    fn from(config: c::ConnectionConfig) -> Self {
        Self {
            environment: match config.environment {
                c::Environment::Production => w::Environment::Production,
                c::Environment::Staging => w::Environment::Staging,
                c::Environment::Custom(e) => w::Environment::Custom(w::CustomEndpoints {
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

impl From<c::ConfigError> for w::ConfigError {
    fn from(error: c::ConfigError) -> Self {
        match error {
            c::ConfigError::InvalidConnectionId => Self::InvalidConnectionId,
            c::ConfigError::InvalidClientId => Self::InvalidClientId,
            c::ConfigError::InvalidRedirectUri => Self::InvalidRedirectUri,
            c::ConfigError::InvalidEndpoint => Self::InvalidEndpoint,
            c::ConfigError::InvalidScope(scope) => Self::InvalidScope(scope),
            c::ConfigError::NoScopes => Self::NoScopes,
            c::ConfigError::InvalidIssuer => Self::InvalidIssuer,
        }
    }
}

impl From<c::StoreError> for w::StorageFailure {
    fn from(error: c::StoreError) -> Self {
        match error {
            c::StoreError::Conflict => Self::Conflict,
            c::StoreError::Unavailable(why) => Self::Unavailable(why),
            c::StoreError::Corrupt(why) => Self::Corrupt(why),
        }
    }
}
