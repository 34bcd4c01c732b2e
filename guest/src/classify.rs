//! Pure verdicts on what servers answer: the `classify` interface of the WIT.
//!
//! Policy (RFC 6749 §5.2 with Pleo's rule that a rejected refresh token
//! is terminal): only a token endpoint that rejects the grant itself
//! (`invalid_grant`, or Pleo's `invalid_token`) is a reason to discard
//! tokens. Outages, garbage bodies, unknown error codes and transport errors
//! are transient, however often they happen.

mod api_response;
mod members;
mod oauth_error;
mod retry_after;
mod token_response;
mod www_authenticate;

pub use api_response::{ApiAttempt, ApiOutcome, api_response};
pub use oauth_error::{ErrorCode, OAuthError};
pub use retry_after::{retry_after, retry_after_header};
pub use token_response::{
    GrantKind, GrantRejection, InvalidResponse, MAX_EXPIRES_IN, MAX_TOKEN_BODY, MAX_TOKEN_LEN,
    Reauth, TokenOutcome, TokenSet, Transient, TransientCause, token_response,
};
pub use www_authenticate::{
    AuthParam, Challenge, ChallengeData, ChallengeError, ChallengeErrorKind, MAX_CHALLENGES,
    MAX_FIELD_BYTES, MAX_PARAMS, www_authenticate,
};
