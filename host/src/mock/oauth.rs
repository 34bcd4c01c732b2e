//! The authorisation server: authorisation (RFC 6749 §4.1.1, RFC 7636),
//! token (RFC 6749 §4.1.3, §6), introspection (RFC 7662) and revocation
//! (RFC 7009) endpoints.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use url::{Host, Url, form_urlencoded};

use super::Consent;
use super::Fault;
use super::state::{
    AuthRequest, Client, FaultTarget, OAuthError, Shared, Store, TokenKind, split_scope,
};

/// Form or query parameters, with empty values treated as omitted
/// (RFC 6749 §3.1) and the first repeated name noted (RFC 6749 §3.1, §3.2:
/// a parameter must not be sent more than once).
pub(super) struct Params {
    values: HashMap<String, String>,
    repeated: Option<String>,
}

impl Params {
    pub fn parse(input: &[u8]) -> Self {
        let mut values = HashMap::new();
        let mut repeated = None;
        for (name, value) in form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if values.contains_key(name.as_ref()) {
                repeated.get_or_insert_with(|| name.to_string());
            } else {
                values.insert(name.into_owned(), value.into_owned());
            }
        }
        Self { values, repeated }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// `GET /oauth/authorize` (RFC 6749 §4.1.1, RFC 7636 §4.3).
///
/// An unknown client or redirect URI gets an error page, never a redirect
/// (RFC 6749 §4.1.2.1). Other errors go back to the redirect URI.
pub(super) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let now = shared.now_ms();
    let mut store = shared.lock();
    let redirect = match redirect_target(&store.client, &params) {
        Ok(redirect) => redirect,
        Err(message) => return error_page(message),
    };
    let request = match validate_request(&store.client, &params) {
        Ok(request) => request,
        Err((error, description)) => {
            return redirect_to(
                redirect,
                &[("error", error), ("error_description", description)],
                params.get("state"),
                &shared.issuer,
            );
        }
    };
    match store.consent {
        Consent::Auto => approve(&mut store, request, redirect, now, &shared.issuer),
        Consent::Page => {
            let id = store.add_pending(request.clone(), now);
            consent_page(&request, &id)
        }
    }
}

/// `POST /oauth/authorize/decision`: the consent page's Approve or Deny
/// (`access_denied`, RFC 6749 §4.1.2.1).
pub(super) async fn decision(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let params = Params::parse(&body);
    let now = shared.now_ms();
    let mut store = shared.lock();
    let Some(request) = params
        .get("request")
        .and_then(|id| store.take_pending(id, now))
    else {
        return error_page("This authorisation request is unknown, expired or already answered.");
    };
    let Ok(redirect) = Url::parse(&request.redirect_uri) else {
        return error_page("The redirect URI is not a valid URL.");
    };
    if params.get("decision") == Some("approve") {
        approve(&mut store, request, redirect, now, &shared.issuer)
    } else {
        redirect_to(
            redirect,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied access"),
            ],
            Some(&request.state),
            &shared.issuer,
        )
    }
}

/// `POST /oauth/token`: the `authorization_code` (RFC 6749 §4.1.3) and
/// `refresh_token` (§6) grants, after any injected fault.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = shared.lock().take_fault(FaultTarget::Token);
    match fault {
        Some(Fault::TokenServerErrorHtml) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"),
            )
                .into_response();
        }
        Some(Fault::TokenRateLimited) => {
            return (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, "2")]).into_response();
        }
        Some(Fault::TokenErrorIn200) => {
            return no_store(StatusCode::OK, json!({ "error": "server_error" }));
        }
        Some(Fault::TokenDelay(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms.into())).await;
        }
        Some(
            Fault::TokenRotateThenGatewayTimeout
            | Fault::TokenRotateThenDrop
            | Fault::TokenSlowAnswer(_)
            | Fault::ApiServerError
            | Fault::ApiUnauthorized,
        )
        | None => {}
    }

    let params = match form_params(&headers, &body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let now = shared.now_ms();
    // The lock is released before any wait.
    let result = {
        let mut store = shared.lock();
        let client_id = match authenticate(&store.client, &headers, &params) {
            Ok(client_id) => client_id,
            Err(error) => return error.into_response(),
        };
        match params.get("grant_type") {
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some("authorization_code") => {
                match (
                    params.get("code"),
                    params.get("redirect_uri"),
                    params.get("code_verifier"),
                ) {
                    (Some(code), Some(redirect_uri), Some(verifier)) => {
                        store.exchange_code(&client_id, code, redirect_uri, verifier, now)
                    }
                    _ => Err(OAuthError::invalid_request(
                        "code, redirect_uri and code_verifier are required",
                    )),
                }
            }
            Some("refresh_token") => match params.get("refresh_token") {
                Some(refresh) => store.refresh(&client_id, refresh, params.get("scope"), now),
                None => Err(OAuthError::invalid_request("refresh_token is required")),
            },
            Some(_) => Err(OAuthError {
                code: "unsupported_grant_type",
                description: "grant_type must be authorization_code or refresh_token",
            }),
        }
    };
    if let Some(Fault::TokenSlowAnswer(ms)) = fault {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
    match (result, fault) {
        // The server acted; the client learns nothing of it.
        (_, Some(Fault::TokenRotateThenGatewayTimeout)) => (
            StatusCode::GATEWAY_TIMEOUT,
            Html("<html><body><h1>504 Gateway Time-out</h1></body></html>"),
        )
            .into_response(),
        (_, Some(Fault::TokenRotateThenDrop)) => Response::builder()
            .status(StatusCode::OK)
            .body(axum::body::Body::new(Broken))
            .unwrap_or_default(),
        (Ok(tokens), _) => no_store(StatusCode::OK, tokens),
        (Err(error), _) => error.into_response(),
    }
}

/// A response body that fails at once: hyper then closes the connection
/// before the response is complete, as a crashed server or a reset would.
struct Broken;

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other(
            "the mock dropped the connection",
        ))))
    }
}

/// `POST /oauth/token/introspect` (RFC 7662 §2). `token_type_hint` is
/// accepted and not needed.
pub(super) async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = shared.now_ms();
    let store = shared.lock();
    let (_, token) = match token_request(&store, &headers, &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let body = match store.introspect(&token, now) {
        Some(info) => json!({
            "active": true,
            "scope": info.scope,
            "client_id": info.client_id,
            "token_type": match info.kind {
                TokenKind::Access => "Bearer",
                TokenKind::Refresh => "refresh_token",
            },
            "exp": info.exp_secs,
        }),
        None => json!({ "active": false }),
    };
    no_store(StatusCode::OK, body)
}

/// `POST /oauth/revoke` (RFC 7009 §2.1): revokes the whole grant of the
/// token. Always 200 for an authenticated client, even for an unknown token
/// (§2.2).
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut store = shared.lock();
    let (client_id, token) = match token_request(&store, &headers, &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    store.revoke_token(&client_id, &token);
    store.stats.revocations += 1;
    StatusCode::OK.into_response()
}

/// What introspection and revocation share: a form body, an authenticated
/// client, and a `token` parameter. Gives the client id and the token.
fn token_request(
    store: &Store,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String), Box<Response>> {
    let refuse = |error: Response| Box::new(error);
    let params = form_params(headers, body).map_err(|e| refuse(e.into_response()))?;
    let client_id =
        authenticate(&store.client, headers, &params).map_err(|e| refuse(e.into_response()))?;
    let token = params
        .get("token")
        .ok_or_else(|| refuse(OAuthError::invalid_request("token is required").into_response()))?;
    Ok((client_id, token.to_owned()))
}

/// The redirect URI to answer to, once the client and the URI are known to
/// be registered (RFC 6749 §3.1.2.3, §4.1.2.1).
fn redirect_target(client: &Client, params: &Params) -> Result<Url, &'static str> {
    if matches!(
        params.repeated.as_deref(),
        Some("client_id" | "redirect_uri")
    ) {
        return Err("client_id or redirect_uri is repeated.");
    }
    if params.get("client_id") != Some(client.id.as_str()) {
        return Err("The client is unknown.");
    }
    let Some(uri) = params.get("redirect_uri") else {
        return Err("redirect_uri is required.");
    };
    let registered = if client.redirect_uris.is_empty() {
        is_loopback_http(uri)
    } else {
        client.redirect_uris.iter().any(|r| r == uri)
    };
    if !registered {
        return Err("The redirect URI is not registered for this client.");
    }
    Url::parse(uri).map_err(|_| "The redirect URI is not a valid URL.")
}

/// Plain http to a loopback host, without a fragment (RFC 6749 §3.1.2,
/// RFC 8252 §7.3).
fn is_loopback_http(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    url.scheme() == "http" && loopback && url.fragment().is_none()
}

/// The rest of RFC 6749 §4.1.1 and RFC 7636 §4.3, as an error code and a
/// description to redirect with.
fn validate_request(
    client: &Client,
    params: &Params,
) -> Result<AuthRequest, (&'static str, &'static str)> {
    if params.repeated.is_some() {
        return Err(("invalid_request", "a parameter is repeated"));
    }
    match params.get("response_type") {
        None => return Err(("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let Some(state) = params.get("state") else {
        return Err(("invalid_request", "state is required"));
    };
    // RFC 7636 §4.4.1: PKCE is required; `plain` (the default) is refused.
    let Some(challenge) = params.get("code_challenge") else {
        return Err(("invalid_request", "code_challenge is required"));
    };
    if params.get("code_challenge_method") != Some("S256") {
        return Err(("invalid_request", "code_challenge_method must be S256"));
    }
    let is_base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if challenge.len() != 43 || !challenge.bytes().all(is_base64url) {
        return Err((
            "invalid_request",
            "code_challenge must be BASE64URL(SHA256(code_verifier))",
        ));
    }
    // RFC 6749 §3.3: Pleo wants the scopes on every authorisation.
    let scopes = split_scope(params.get("scope").unwrap_or_default());
    if scopes.is_empty() {
        return Err(("invalid_scope", "scope is required"));
    }
    if !scopes.iter().all(|s| client.scopes.contains(s)) {
        return Err(("invalid_scope", "a requested scope is not allowed"));
    }
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: params.get("redirect_uri").unwrap_or_default().to_owned(),
        scopes,
        state: state.to_owned(),
        code_challenge: challenge.to_owned(),
    })
}

/// The user approved: back to the client with a new code (RFC 6749
/// §4.1.2).
fn approve(
    store: &mut Store,
    request: AuthRequest,
    redirect: Url,
    now: u64,
    issuer: &str,
) -> Response {
    let client_state = request.state.clone();
    let code = store.issue_code(request, now);
    redirect_to(redirect, &[("code", &code)], Some(&client_state), issuer)
}

/// A 302 to the redirect URI with the response parameters added to its query
/// (RFC 6749 §4.1.2), plus `state` and `iss` (RFC 9207 §2).
fn redirect_to(
    mut redirect: Url,
    pairs: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> Response {
    {
        let mut query = redirect.query_pairs_mut();
        query.extend_pairs(pairs);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    (
        StatusCode::FOUND,
        [(LOCATION, redirect.to_string())],
        [(CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

fn consent_page(request: &AuthRequest, id: &str) -> Response {
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let body = format!(
        "<h1>Authorise {client}</h1>\n\
         <p><strong>{client}</strong> asks for access to your Pleo account:</p>\n\
         <ul>{scopes}</ul>\n\
         <form method=\"post\" action=\"/oauth/authorize/decision\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{id}\">\n\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form>",
        client = escape(&request.client_id),
        id = escape(id),
    );
    page(StatusCode::OK, "Authorise access", &body)
}

fn error_page(message: &str) -> Response {
    let body = format!("<h1>Authorisation error</h1>\n<p>{}</p>", escape(message));
    page(StatusCode::BAD_REQUEST, "Authorisation error", &body)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body></html>\n",
        escape(title),
    );
    (status, [(CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The form body of a token, introspection or revocation request
/// (RFC 6749 §3.2).
fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body);
    if params.repeated.is_some() {
        return Err(OAuthError::invalid_request("a parameter is repeated"));
    }
    Ok(params)
}

/// RFC 6749 §5.2: a 400 with the error code, not to be cached.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        oauth_error(StatusCode::BAD_REQUEST, self.code, self.description)
    }
}

/// A failed client authentication.
enum AuthError {
    /// 401 `invalid_client` (RFC 6749 §5.2).
    Client(&'static str),
    /// 400 `invalid_request`, such as two methods at once (RFC 6749 §2.3).
    Request(&'static str),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        match self {
            AuthError::Client(description) => {
                let mut response =
                    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    "Basic realm=\"pleo\"".parse().expect("valid"),
                );
                response
            }
            AuthError::Request(description) => {
                oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
            }
        }
    }
}

/// Client authentication (RFC 6749 §2.3.1): `client_secret_basic` or
/// `client_secret_post` for a confidential client, only `client_id` for a
/// public one (§2.1). Returns the client id.
fn authenticate(
    client: &Client,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, AuthError> {
    let (id, secret) = match basic_credentials(headers)? {
        Some((id, secret)) => {
            if params.get("client_secret").is_some() {
                return Err(AuthError::Request(
                    "use one client authentication method, not two",
                ));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(AuthError::Request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id, Some(secret))
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(AuthError::Client("client authentication is required"));
            };
            (
                id.to_owned(),
                params.get("client_secret").map(str::to_owned),
            )
        }
    };
    if id != client.id {
        return Err(AuthError::Client("unknown client"));
    }
    match (&client.secret, secret) {
        (Some(expected), Some(given)) if constant_time_eq(expected, &given) => Ok(id),
        (Some(_), Some(_)) => Err(AuthError::Client("wrong client credentials")),
        (Some(_), None) => Err(AuthError::Client("client authentication is required")),
        (None, None) => Ok(id),
        (None, Some(_)) => Err(AuthError::Client("a public client has no secret")),
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`
/// (RFC 6749 §2.3.1, RFC 7617 §2), if the header is there.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = AuthError::Client("malformed Basic credentials");
    let Some((scheme, encoded)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Err(malformed);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Client("client authentication must use Basic"));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(malformed);
    };
    match (form_decode(id), form_decode(secret)) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        _ => Err(malformed),
    }
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value. A raw
/// `&` or `=` cannot come from that encoding.
fn form_decode(encoded: &str) -> Option<String> {
    if encoded.contains(['&', '=']) {
        return None;
    }
    Some(
        form_urlencoded::parse(encoded.as_bytes())
            .next()
            .map(|(value, _)| value.into_owned())
            .unwrap_or_default(),
    )
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A JSON answer that must not be cached (RFC 6749 §5.1).
fn no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response()
}

/// An RFC 6749 §5.2 error response.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        status,
        json!({ "error": error, "error_description": description }),
    )
}
