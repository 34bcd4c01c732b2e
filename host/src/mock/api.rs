//! A sample of the Pleo API under `/v2/`, protected by bearer tokens with
//! RFC 6750 §3 challenges.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Fault;
use super::state::{FaultTarget, Shared};

/// One resource of the sample API.
struct Resource {
    method: Method,
    scope: &'static str,
    /// The JSON body of a successful answer.
    sample: &'static str,
}

fn resource(path: &str) -> Option<Resource> {
    Some(match path {
        "/v2/users" => Resource {
            method: Method::GET,
            scope: "users:read",
            sample: r#"{"data":[{"id":"u-1","name":"Ada"},{"id":"u-2","name":"Grace"}]}"#,
        },
        "/v2/expenses" => Resource {
            method: Method::GET,
            scope: "expenses:read",
            sample: r#"{"data":[{"id":"e-1","amount":{"value":4200,"currency":"DKK"},"merchant":"Kaffebar"}]}"#,
        },
        "/v2/export-jobs" => Resource {
            method: Method::POST,
            scope: "export-jobs:write",
            sample: r#"{"data":{"id":"job-1","status":"pending"}}"#,
        },
        _ => return None,
    })
}

/// Every `/v2/*` request: fault, route, bearer token (RFC 6750 §2.1), scope.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let now = shared.now_ms();
    let mut store = shared.lock();
    store.stats.api_requests += 1;
    match store.take_fault(FaultTarget::Api) {
        Some(Fault::ApiServerError) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, "1")],
                Json(json!({ "error": "service_unavailable" })),
            )
                .into_response();
        }
        Some(Fault::ApiUnauthorized) => {
            store.stats.api_unauthorized += 1;
            return challenge(
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"pleo\", error=\"invalid_token\"".to_owned(),
                "unauthorized",
            );
        }
        _ => {}
    }
    let Some(resource) = resource(uri.path()) else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "not_found" }))).into_response();
    };
    if method != resource.method {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, resource.method.as_str())],
            Json(json!({ "error": "method_not_allowed" })),
        )
            .into_response();
    }
    let Some(token) = bearer_token(&headers) else {
        // RFC 6750 §3.1: no credentials, so no error code.
        store.stats.api_unauthorized += 1;
        return challenge(
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"pleo\"".to_owned(),
            "unauthorized",
        );
    };
    let scopes = match store.check_access(token, now) {
        Ok(scopes) => scopes,
        Err(error) => {
            store.stats.api_unauthorized += 1;
            return challenge(
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer realm=\"pleo\", error=\"invalid_token\", error_description=\"{}\"",
                    error.description()
                ),
                "invalid_token",
            );
        }
    };
    if !scopes.iter().any(|s| s == resource.scope) {
        return challenge(
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"pleo\", error=\"insufficient_scope\", scope=\"{}\"",
                resource.scope
            ),
            "insufficient_scope",
        );
    }
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json")],
        resource.sample,
    )
        .into_response()
}

/// The token of `Authorization: Bearer <token>`, the scheme matched without
/// regard to case (RFC 9110 §11.1). Another scheme counts as no credentials.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// A 401 or 403 with its `WWW-Authenticate` challenge (RFC 6750 §3).
fn challenge(status: StatusCode, www_authenticate: String, error: &str) -> Response {
    (
        status,
        [(WWW_AUTHENTICATE, www_authenticate)],
        Json(json!({ "error": error })),
    )
        .into_response()
}
