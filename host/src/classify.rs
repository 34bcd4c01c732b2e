//! The `classify` export: typed wrappers and the conversions to and from
//! the core's types, which the host reuses as its vocabulary (their `Debug`
//! redacts tokens; the generated types' would not).

pub use pleo_oauth_core::classify::*;
use pleo_oauth_core::secret::Secret;
use pleo_oauth_core::types::{Header, Response, ResponseHead, TransportError};

use wasmtime::component::{ComponentType, Lower, TypedFunc};

use crate::bindings::exports::pleo::oauth::classify as wit;
use crate::bindings::pleo::oauth::types as wit_types;
use crate::runtime::{GuestError, Instance};

/// `types.header`, borrowed: lowered into the guest straight from the
/// caller's strings.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct HeaderRef<'a> {
    name: &'a str,
    value: &'a str,
}

/// `http.response`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct ResponseRef<'a> {
    status: u16,
    headers: &'a [HeaderRef<'a>],
    body: &'a [u8],
}

/// `classify.response-head`, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct ResponseHeadRef<'a> {
    status: u16,
    headers: &'a [HeaderRef<'a>],
}

/// `classify.token-response` with borrowed arguments.
pub(crate) type TokenResponseFunc<'a> = TypedFunc<
    (
        wit::GrantKind,
        Result<&'a ResponseRef<'a>, &'a wit_types::TransportError>,
        u64,
    ),
    (wit::TokenOutcome,),
>;

/// `classify.api-response` with borrowed arguments.
pub(crate) type ApiResponseFunc<'a> = TypedFunc<
    (
        Result<&'a ResponseHeadRef<'a>, &'a wit_types::TransportError>,
        wit::ApiAttempt,
        u64,
    ),
    (wit::ApiOutcome,),
>;

pub(crate) fn header_refs(headers: &[Header]) -> Vec<HeaderRef<'_>> {
    headers
        .iter()
        .map(|h| HeaderRef {
            name: &h.name,
            value: &h.value,
        })
        .collect()
}

impl Instance {
    /// `classify.token-response`: the verdict on a token-endpoint response.
    pub fn token_response(
        &mut self,
        grant: GrantKind,
        response: Result<&Response, &TransportError>,
        now_ms: u64,
    ) -> Result<TokenOutcome, GuestError> {
        let grant = match grant {
            GrantKind::AuthorizationCode => wit::GrantKind::AuthorizationCode,
            GrantKind::RefreshToken => wit::GrantKind::RefreshToken,
        };
        let headers = response.map_or_else(|_| Vec::new(), |r| header_refs(&r.headers));
        let response = response
            .map(|r| ResponseRef {
                status: r.status,
                headers: &headers,
                body: &r.body,
            })
            .map_err(|e| wit_types::TransportError::from(e.clone()));
        self.call(|store, component| {
            let (outcome,) = component
                .token_response(store)?
                .call(&mut *store, (grant, response.as_ref(), now_ms))?;
            Ok(outcome)
        })
        .map(TokenOutcome::from_wit)
    }

    /// `classify.api-response`: the verdict on an API response.
    pub fn api_response(
        &mut self,
        response: Result<&ResponseHead, &TransportError>,
        attempt: ApiAttempt,
        now_ms: u64,
    ) -> Result<ApiOutcome, GuestError> {
        let attempt = match attempt {
            ApiAttempt::First => wit::ApiAttempt::First,
            ApiAttempt::AfterRefresh => wit::ApiAttempt::AfterRefresh,
        };
        let headers = response.map_or_else(|_| Vec::new(), |r| header_refs(&r.headers));
        let response = response
            .map(|r| ResponseHeadRef {
                status: r.status,
                headers: &headers,
            })
            .map_err(|e| wit_types::TransportError::from(e.clone()));
        let outcome = self.call(|store, component| {
            let (outcome,) = component
                .api_response(store)?
                .call(&mut *store, (response.as_ref(), attempt, now_ms))?;
            Ok(outcome)
        })?;
        Ok(match outcome {
            wit::ApiOutcome::Ok => ApiOutcome::Ok,
            wit::ApiOutcome::RefreshAndRetry => ApiOutcome::RefreshAndRetry,
            wit::ApiOutcome::RejectedAfterRefresh => ApiOutcome::RejectedAfterRefresh,
            wit::ApiOutcome::InsufficientScope(scopes) => ApiOutcome::InsufficientScope(scopes),
            wit::ApiOutcome::Forbidden => ApiOutcome::Forbidden,
            wit::ApiOutcome::RateLimited(at) => ApiOutcome::RateLimited(at),
            wit::ApiOutcome::Transient(at) => ApiOutcome::Transient(at),
        })
    }

    /// `classify.www-authenticate`: parses the field lines of `WWW-Authenticate`.
    pub fn www_authenticate<S: AsRef<str>>(
        &mut self,
        values: &[S],
    ) -> Result<Result<Vec<Challenge>, ChallengeError>, GuestError> {
        let values: Vec<String> = values.iter().map(|v| v.as_ref().to_owned()).collect();
        let parsed = self.call(|store, component| {
            component
                .pleo_oauth_classify(store)?
                .call_www_authenticate(store, &values)
        })?;
        Ok(parsed
            .map(|challenges| challenges.into_iter().map(challenge).collect())
            .map_err(challenge_error))
    }

    /// `classify.retry-after`: a `Retry-After` value as Unix milliseconds.
    pub fn retry_after(&mut self, value: &str, now_ms: u64) -> Result<Option<u64>, GuestError> {
        self.call(|store, component| {
            component
                .pleo_oauth_classify(store)?
                .call_retry_after(store, value, now_ms)
        })
    }
}

trait FromWit<T> {
    fn from_wit(value: T) -> Self;
}

impl FromWit<wit::TokenOutcome> for TokenOutcome {
    fn from_wit(outcome: wit::TokenOutcome) -> Self {
        match outcome {
            wit::TokenOutcome::Success(tokens) => TokenOutcome::Success(TokenSet {
                access_token: Secret::new(tokens.access_token),
                expires_in: tokens.expires_in,
                refresh_token: tokens.refresh_token.map(Secret::new),
                scope: tokens.scope,
            }),
            wit::TokenOutcome::Reauthenticate(r) => TokenOutcome::Reauthenticate(reauth(r)),
            wit::TokenOutcome::ClientMisconfigured(error) => {
                TokenOutcome::ClientMisconfigured(oauth_error(error))
            }
            wit::TokenOutcome::RequestInvalid(error) => {
                TokenOutcome::RequestInvalid(oauth_error(error))
            }
            wit::TokenOutcome::Transient(t) => TokenOutcome::Transient(transient(t)),
            wit::TokenOutcome::CredentialsMissing => TokenOutcome::CredentialsMissing,
        }
    }
}

pub(crate) fn reauth(reauth: wit::Reauth) -> Reauth {
    Reauth {
        reason: match reauth.reason {
            wit::GrantRejection::RefreshTokenRejected => GrantRejection::RefreshTokenRejected,
            wit::GrantRejection::AuthorizationCodeRejected => {
                GrantRejection::AuthorizationCodeRejected
            }
        },
        error: oauth_error(reauth.error),
    }
}

pub(crate) fn transient(transient: wit::Transient) -> Transient {
    Transient {
        cause: match transient.cause {
            wit::TransientCause::Status(status) => TransientCause::Status(status),
            wit::TransientCause::Oauth(error) => TransientCause::OAuth(oauth_error(error)),
            wit::TransientCause::InvalidResponse(invalid) => {
                TransientCause::InvalidResponse(invalid_response(invalid))
            }
            wit::TransientCause::Transport(error) => TransientCause::Transport(error.into()),
        },
        retry_at_ms: transient.retry_at_ms,
    }
}

pub(crate) fn oauth_error(error: wit::OauthError) -> OAuthError {
    OAuthError {
        code: error_code(error.code),
        description: error.description,
    }
}

pub(crate) fn error_code(code: wit::ErrorCode) -> ErrorCode {
    match code {
        wit::ErrorCode::InvalidRequest => ErrorCode::InvalidRequest,
        wit::ErrorCode::InvalidClient => ErrorCode::InvalidClient,
        wit::ErrorCode::InvalidGrant => ErrorCode::InvalidGrant,
        wit::ErrorCode::UnauthorizedClient => ErrorCode::UnauthorizedClient,
        wit::ErrorCode::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
        wit::ErrorCode::InvalidScope => ErrorCode::InvalidScope,
        wit::ErrorCode::InvalidToken => ErrorCode::InvalidToken,
        wit::ErrorCode::ServerError => ErrorCode::ServerError,
        wit::ErrorCode::TemporarilyUnavailable => ErrorCode::TemporarilyUnavailable,
        wit::ErrorCode::Other(code) => ErrorCode::Other(code),
    }
}

fn invalid_response(invalid: wit::InvalidResponse) -> InvalidResponse {
    match invalid {
        wit::InvalidResponse::NotJson => InvalidResponse::NotJson,
        wit::InvalidResponse::BodyTooLarge => InvalidResponse::BodyTooLarge,
        wit::InvalidResponse::InvalidErrorMember => InvalidResponse::InvalidErrorMember,
        wit::InvalidResponse::MissingAccessToken => InvalidResponse::MissingAccessToken,
        wit::InvalidResponse::InvalidAccessToken => InvalidResponse::InvalidAccessToken,
        wit::InvalidResponse::MissingTokenType => InvalidResponse::MissingTokenType,
        wit::InvalidResponse::UnsupportedTokenType => InvalidResponse::UnsupportedTokenType,
        wit::InvalidResponse::InvalidExpiresIn => InvalidResponse::InvalidExpiresIn,
        wit::InvalidResponse::InvalidRefreshToken => InvalidResponse::InvalidRefreshToken,
        wit::InvalidResponse::InvalidScope => InvalidResponse::InvalidScope,
    }
}

fn challenge(challenge: wit::Challenge) -> Challenge {
    let data = match challenge.data {
        wit::ChallengeData::Token68(token) => ChallengeData::Token68(token),
        wit::ChallengeData::Params(params) => ChallengeData::Params(
            params
                .into_iter()
                .map(|p| AuthParam {
                    name: p.name,
                    value: p.value,
                })
                .collect(),
        ),
    };
    Challenge {
        scheme: challenge.scheme,
        data,
    }
}

fn challenge_error(error: wit::ChallengeError) -> ChallengeError {
    let kind = match error.kind {
        wit::ChallengeErrorKind::TooLarge => ChallengeErrorKind::TooLarge,
        wit::ChallengeErrorKind::ExpectedScheme => ChallengeErrorKind::ExpectedScheme,
        wit::ChallengeErrorKind::UnexpectedCharacter => ChallengeErrorKind::UnexpectedCharacter,
        wit::ChallengeErrorKind::ExpectedValue => ChallengeErrorKind::ExpectedValue,
        wit::ChallengeErrorKind::UnterminatedQuotedString => {
            ChallengeErrorKind::UnterminatedQuotedString
        }
        wit::ChallengeErrorKind::DuplicateParameter => ChallengeErrorKind::DuplicateParameter,
    };
    ChallengeError {
        kind,
        value_index: error.value_index,
        offset: error.offset,
    }
}
