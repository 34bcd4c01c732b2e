//! Conversions for the shared `types` interface.

use pleo_oauth_core::types::{Header, StorageError, TransportError};

use crate::bindings::pleo::oauth::types as wit;

impl From<wit::Header> for Header {
    fn from(header: wit::Header) -> Self {
        Header {
            name: header.name,
            value: header.value,
        }
    }
}

impl From<Header> for wit::Header {
    fn from(header: Header) -> Self {
        wit::Header {
            name: header.name,
            value: header.value,
        }
    }
}

impl From<wit::TransportError> for TransportError {
    fn from(error: wit::TransportError) -> Self {
        match error {
            wit::TransportError::Timeout => Self::Timeout,
            wit::TransportError::ConnectionRefused => Self::ConnectionRefused,
            wit::TransportError::Dns => Self::Dns,
            wit::TransportError::Tls => Self::Tls,
            wit::TransportError::BodyTooLarge => Self::BodyTooLarge,
            wit::TransportError::Other(why) => Self::Other(why),
            wit::TransportError::ConnectionLost => Self::ConnectionLost,
            wit::TransportError::NoCredentials => Self::NoCredentials,
        }
    }
}

impl From<TransportError> for wit::TransportError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Timeout => Self::Timeout,
            TransportError::ConnectionRefused => Self::ConnectionRefused,
            TransportError::Dns => Self::Dns,
            TransportError::Tls => Self::Tls,
            TransportError::BodyTooLarge => Self::BodyTooLarge,
            TransportError::Other(why) => Self::Other(why),
            TransportError::ConnectionLost => Self::ConnectionLost,
            TransportError::NoCredentials => Self::NoCredentials,
        }
    }
}

impl From<wit::StorageError> for StorageError {
    fn from(error: wit::StorageError) -> Self {
        match error {
            wit::StorageError::Conflict => Self::Conflict,
            wit::StorageError::Unavailable(why) => Self::Unavailable(why),
            wit::StorageError::OutcomeUnknown(why) => Self::OutcomeUnknown(why),
            wit::StorageError::Corrupt(why) => Self::Corrupt(why),
        }
    }
}
