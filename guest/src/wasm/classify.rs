//! The `classify` export.

use super::Component;
use super::bindings::exports::pleo::oauth::classify as w;
use super::bindings::pleo::oauth::types as wt;
use crate::classify as c;
use crate::types as ct;

impl w::Guest for Component {
    fn token_response(
        grant: w::GrantKind,
        response: Result<w::Response, w::TransportError>,
        now_ms: u64,
    ) -> w::TokenOutcome {
        let grant = match grant {
            w::GrantKind::AuthorizationCode => c::GrantKind::AuthorizationCode,
            w::GrantKind::RefreshToken => c::GrantKind::RefreshToken,
        };
        let response = response.map(|r| ct::Response {
            status: r.status,
            headers: headers(r.headers),
            body: r.body,
        });
        let response = response.map_err(ct::TransportError::from);
        c::token_response(grant, response.as_ref(), now_ms).into()
    }

    fn api_response(
        response: Result<w::ResponseHead, w::TransportError>,
        attempt: w::ApiAttempt,
        now_ms: u64,
    ) -> w::ApiOutcome {
        let attempt = match attempt {
            w::ApiAttempt::First => c::ApiAttempt::First,
            w::ApiAttempt::AfterRefresh => c::ApiAttempt::AfterRefresh,
        };
        let response = response
            .map(|r| ct::ResponseHead {
                status: r.status,
                headers: headers(r.headers),
            })
            .map_err(ct::TransportError::from);
        match c::api_response(response.as_ref(), attempt, now_ms) {
            c::ApiOutcome::Ok => w::ApiOutcome::Ok,
            c::ApiOutcome::RefreshAndRetry => w::ApiOutcome::RefreshAndRetry,
            c::ApiOutcome::RejectedAfterRefresh => w::ApiOutcome::RejectedAfterRefresh,
            c::ApiOutcome::InsufficientScope(scopes) => w::ApiOutcome::InsufficientScope(scopes),
            c::ApiOutcome::Forbidden => w::ApiOutcome::Forbidden,
            c::ApiOutcome::RateLimited(at) => w::ApiOutcome::RateLimited(at),
            c::ApiOutcome::Transient(at) => w::ApiOutcome::Transient(at),
        }
    }

    fn www_authenticate(values: Vec<String>) -> Result<Vec<w::Challenge>, w::ChallengeError> {
        c::www_authenticate(&values)
            .map(|challenges| challenges.into_iter().map(w::Challenge::from).collect())
            .map_err(w::ChallengeError::from)
    }

    fn retry_after(value: String, now_ms: u64) -> Option<u64> {
        c::retry_after(&value, now_ms)
    }
}

pub(super) fn headers(headers: Vec<wt::Header>) -> Vec<ct::Header> {
    headers
        .into_iter()
        .map(|h| ct::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

impl From<wt::TransportError> for ct::TransportError {
    fn from(error: wt::TransportError) -> Self {
        match error {
            wt::TransportError::Timeout => Self::Timeout,
            wt::TransportError::ConnectionRefused => Self::ConnectionRefused,
            wt::TransportError::Dns => Self::Dns,
            wt::TransportError::Tls => Self::Tls,
            wt::TransportError::BodyTooLarge => Self::BodyTooLarge,
            wt::TransportError::Other(text) => Self::Other(text),
            wt::TransportError::ConnectionLost => Self::ConnectionLost,
            wt::TransportError::NoCredentials => Self::NoCredentials,
        }
    }
}

impl From<ct::TransportError> for wt::TransportError {
    fn from(error: ct::TransportError) -> Self {
        match error {
            ct::TransportError::Timeout => Self::Timeout,
            ct::TransportError::ConnectionRefused => Self::ConnectionRefused,
            ct::TransportError::Dns => Self::Dns,
            ct::TransportError::Tls => Self::Tls,
            ct::TransportError::BodyTooLarge => Self::BodyTooLarge,
            ct::TransportError::Other(text) => Self::Other(text),
            ct::TransportError::ConnectionLost => Self::ConnectionLost,
            ct::TransportError::NoCredentials => Self::NoCredentials,
        }
    }
}

impl From<c::TokenOutcome> for w::TokenOutcome {
    fn from(outcome: c::TokenOutcome) -> Self {
        match outcome {
            c::TokenOutcome::Success(tokens) => Self::Success(w::TokenSet {
                access_token: tokens.access_token.into_exposed(),
                expires_in: tokens.expires_in,
                refresh_token: tokens.refresh_token.map(|t| t.into_exposed()),
                scope: tokens.scope,
            }),
            c::TokenOutcome::Reauthenticate(reauth) => Self::Reauthenticate(reauth.into()),
            c::TokenOutcome::ClientMisconfigured(error) => Self::ClientMisconfigured(error.into()),
            c::TokenOutcome::RequestInvalid(error) => Self::RequestInvalid(error.into()),
            c::TokenOutcome::Transient(transient) => Self::Transient(transient.into()),
            c::TokenOutcome::CredentialsMissing => Self::CredentialsMissing,
        }
    }
}

impl From<c::Reauth> for w::Reauth {
    fn from(reauth: c::Reauth) -> Self {
        Self {
            reason: match reauth.reason {
                c::GrantRejection::RefreshTokenRejected => w::GrantRejection::RefreshTokenRejected,
                c::GrantRejection::AuthorizationCodeRejected => {
                    w::GrantRejection::AuthorizationCodeRejected
                }
            },
            error: reauth.error.into(),
        }
    }
}

impl From<c::Transient> for w::Transient {
    fn from(transient: c::Transient) -> Self {
        Self {
            cause: match transient.cause {
                c::TransientCause::Status(status) => w::TransientCause::Status(status),
                c::TransientCause::OAuth(error) => w::TransientCause::Oauth(error.into()),
                c::TransientCause::InvalidResponse(invalid) => {
                    w::TransientCause::InvalidResponse(invalid.into())
                }
                c::TransientCause::Transport(error) => w::TransientCause::Transport(error.into()),
            },
            retry_at_ms: transient.retry_at_ms,
        }
    }
}

impl From<c::ErrorCode> for w::ErrorCode {
    fn from(code: c::ErrorCode) -> Self {
        match code {
            c::ErrorCode::InvalidRequest => Self::InvalidRequest,
            c::ErrorCode::InvalidClient => Self::InvalidClient,
            c::ErrorCode::InvalidGrant => Self::InvalidGrant,
            c::ErrorCode::UnauthorizedClient => Self::UnauthorizedClient,
            c::ErrorCode::UnsupportedGrantType => Self::UnsupportedGrantType,
            c::ErrorCode::InvalidScope => Self::InvalidScope,
            c::ErrorCode::InvalidToken => Self::InvalidToken,
            c::ErrorCode::ServerError => Self::ServerError,
            c::ErrorCode::TemporarilyUnavailable => Self::TemporarilyUnavailable,
            c::ErrorCode::Other(code) => Self::Other(code),
        }
    }
}

impl From<c::OAuthError> for w::OauthError {
    fn from(error: c::OAuthError) -> Self {
        Self {
            code: error.code.into(),
            description: error.description,
        }
    }
}

impl From<c::InvalidResponse> for w::InvalidResponse {
    fn from(invalid: c::InvalidResponse) -> Self {
        match invalid {
            c::InvalidResponse::NotJson => Self::NotJson,
            c::InvalidResponse::BodyTooLarge => Self::BodyTooLarge,
            c::InvalidResponse::InvalidErrorMember => Self::InvalidErrorMember,
            c::InvalidResponse::MissingAccessToken => Self::MissingAccessToken,
            c::InvalidResponse::InvalidAccessToken => Self::InvalidAccessToken,
            c::InvalidResponse::MissingTokenType => Self::MissingTokenType,
            c::InvalidResponse::UnsupportedTokenType => Self::UnsupportedTokenType,
            c::InvalidResponse::InvalidExpiresIn => Self::InvalidExpiresIn,
            c::InvalidResponse::InvalidRefreshToken => Self::InvalidRefreshToken,
            c::InvalidResponse::InvalidScope => Self::InvalidScope,
        }
    }
}

impl From<c::Challenge> for w::Challenge {
    fn from(challenge: c::Challenge) -> Self {
        let data = match challenge.data {
            c::ChallengeData::Token68(token) => w::ChallengeData::Token68(token),
            c::ChallengeData::Params(params) => w::ChallengeData::Params(
                params
                    .into_iter()
                    .map(|p| w::AuthParam {
                        name: p.name,
                        value: p.value,
                    })
                    .collect(),
            ),
        };
        Self {
            scheme: challenge.scheme,
            data,
        }
    }
}

impl From<c::ChallengeError> for w::ChallengeError {
    fn from(error: c::ChallengeError) -> Self {
        let kind = match error.kind {
            c::ChallengeErrorKind::TooLarge => w::ChallengeErrorKind::TooLarge,
            c::ChallengeErrorKind::ExpectedScheme => w::ChallengeErrorKind::ExpectedScheme,
            c::ChallengeErrorKind::UnexpectedCharacter => {
                w::ChallengeErrorKind::UnexpectedCharacter
            }
            c::ChallengeErrorKind::ExpectedValue => w::ChallengeErrorKind::ExpectedValue,
            c::ChallengeErrorKind::UnterminatedQuotedString => {
                w::ChallengeErrorKind::UnterminatedQuotedString
            }
            c::ChallengeErrorKind::DuplicateParameter => w::ChallengeErrorKind::DuplicateParameter,
        };
        Self {
            kind,
            value_index: error.value_index,
            offset: error.offset,
        }
    }
}
