//! Driving the mock server: in-process through [`Control`], or over HTTP
//! under `/_mock/` for tests in other processes. Both do the same.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::oauth::Params;
use super::state::{GrantHistory, Shared};
use super::{Fault, Stats};

/// A cheap, cloneable handle on a running [`MockServer`](super::MockServer).
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The user revokes access: every grant, with its access and refresh
    /// tokens, stops working.
    pub fn revoke_grants(&self) {
        self.shared.lock().revoke_all();
    }

    /// Every access token issued so far is expired from now on.
    pub fn expire_access_tokens(&self) {
        let now = self.shared.now_ms();
        self.shared.lock().expire_access_tokens(now);
    }

    /// Replaces the client secret; the old one stops working at once. Grants
    /// stay valid. On a public client this makes it confidential.
    pub fn rotate_client_secret(&self, new: &str) {
        self.shared.lock().rotate_client_secret(new);
    }

    /// The next `count` requests to the fault's endpoint get the fault.
    /// Faults for one endpoint are served in the order they were injected.
    pub fn inject(&self, fault: Fault, count: u32) {
        self.shared.lock().inject(fault, count);
    }

    /// Drops every fault still queued.
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// Every grant issued so far, in order: whether it still works and when
    /// it was refreshed.
    pub fn grants(&self) -> Vec<GrantHistory> {
        self.shared.lock().grants()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Every access token, refresh token and code ever issued, and every
    /// client secret, so a test can check that none of them leaked into logs.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.lock().issued_secrets()
    }
}

/// `POST /_mock/revoke-grants`: [`Control::revoke_grants`].
pub(super) async fn revoke_grants(State(shared): State<Arc<Shared>>) -> StatusCode {
    Control::new(shared).revoke_grants();
    StatusCode::NO_CONTENT
}

/// `POST /_mock/expire-access-tokens`: [`Control::expire_access_tokens`].
pub(super) async fn expire_access_tokens(State(shared): State<Arc<Shared>>) -> StatusCode {
    Control::new(shared).expire_access_tokens();
    StatusCode::NO_CONTENT
}

/// `POST /_mock/rotate-client-secret` with the form field `secret`:
/// [`Control::rotate_client_secret`].
pub(super) async fn rotate_client_secret(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Response {
    match Params::parse(&body).get("secret") {
        Some(secret) => {
            Control::new(shared).rotate_client_secret(secret);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::BAD_REQUEST, "secret is required\n").into_response(),
    }
}

/// `POST /_mock/fault` with the form fields `kind` (`token-503-html`,
/// `token-429`, `token-delay`, `token-slow-answer`, `token-error-200`,
/// `token-rotate-504`, `token-rotate-drop`, `api-503`, `api-401`), `count`
/// (default 1) and `ms` (for `token-delay` and `token-slow-answer`):
/// [`Control::inject`].
pub(super) async fn fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let params = Params::parse(&body);
    let count = match params.get("count").map(str::parse::<u32>) {
        None => 1,
        Some(Ok(count)) => count,
        Some(Err(_)) => return bad_request("count must be a whole number"),
    };
    let fault = match params.get("kind") {
        Some("token-503-html") => Fault::TokenServerErrorHtml,
        Some("token-429") => Fault::TokenRateLimited,
        Some("token-error-200") => Fault::TokenErrorIn200,
        Some("token-rotate-504") => Fault::TokenRotateThenGatewayTimeout,
        Some("token-rotate-drop") => Fault::TokenRotateThenDrop,
        Some("api-503") => Fault::ApiServerError,
        Some("api-401") => Fault::ApiUnauthorized,
        Some(kind @ ("token-delay" | "token-slow-answer")) => {
            match params.get("ms").map(str::parse::<u32>) {
                Some(Ok(ms)) if kind == "token-delay" => Fault::TokenDelay(ms),
                Some(Ok(ms)) => Fault::TokenSlowAnswer(ms),
                _ => {
                    return bad_request(
                        "token-delay and token-slow-answer need ms, a whole number of milliseconds",
                    );
                }
            }
        }
        _ => {
            return bad_request(
                "kind must be token-503-html, token-429, token-delay, token-slow-answer, token-error-200, token-rotate-504, token-rotate-drop, api-503 or api-401",
            );
        }
    };
    Control::new(shared).inject(fault, count);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_mock/stats`: [`Control::stats`] as JSON.
pub(super) async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(Control::new(shared).stats())
}

/// `GET /_mock/issued-secrets`: [`Control::issued_secrets`] as a JSON array.
pub(super) async fn issued_secrets(State(shared): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(Control::new(shared).issued_secrets())
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}
