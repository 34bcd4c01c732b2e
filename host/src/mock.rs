//! A mock Pleo authorisation server and API, for development, demos and
//! end-to-end tests.
//!
//! It behaves like Pleo where Pleo's behaviour matters to a client: PKCE with
//! S256 only, exact redirect URI matching, refresh token rotation with reuse
//! detection, RFC 6750 challenges on the API. It also lets a test drive the
//! lifecycle from outside: revoke every grant, expire every access token,
//! rotate the client secret and inject faults, in-process through [`Control`]
//! or over HTTP under `/_mock/`.
//!
//! The server listens on 127.0.0.1 only, keeps everything in memory, reads
//! time only from the [`Clock`] it is given (so a demo can share a
//! [`ManualClock`](crate::imports::clock::ManualClock) with the component) and
//! never logs anything.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pleo_oauth::imports::clock::SystemClock;
//! use pleo_oauth::mock::{MockConfig, MockServer};
//!
//! let mut config = MockConfig::new(Arc::new(SystemClock));
//! config.redirect_uris = vec!["http://127.0.0.1:8765/callback".into()];
//! let server = MockServer::start(config)?;
//! println!("authorisation server and API at {}", server.base_url());
//! server.wait();
//! # Ok::<(), std::io::Error>(())
//! ```

mod api;
mod control;
mod oauth;
mod state;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::routing::{any, get, post};
use tokio::sync::oneshot;

pub use control::Control;
pub use state::GrantHistory;

use crate::imports::clock::Clock;
use state::Shared;

/// How the mock server is set up.
pub struct MockConfig {
    /// The one registered client. Default `demo-client`.
    pub client_id: String,
    /// `Some`: a confidential client that must authenticate with this secret
    /// (RFC 6749 §2.3.1). `None`: a public client that sends only its
    /// `client_id` and relies on PKCE (RFC 6749 §2.1).
    pub client_secret: Option<String>,
    /// The registered redirect URIs, matched exactly (RFC 6749 §3.1.2.3).
    /// Empty accepts any plain-http loopback URI (`127.0.0.1`, `localhost`,
    /// `[::1]`) exactly as given, for development.
    pub redirect_uris: Vec<String>,
    /// The access token lifetime sent as `expires_in`. Default 3600.
    pub access_ttl_secs: u32,
    /// The lifetime of each refresh token from its issue. Default 60 days.
    pub refresh_ttl_secs: u32,
    /// Whether the user is asked before a code is issued.
    pub consent: Consent,
    /// The scopes the client may be granted. Default `users:read`,
    /// `expenses:read`, `export-jobs:write`.
    pub scopes: Vec<String>,
    /// The clock every expiry check reads.
    pub clock: Arc<dyn Clock>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl MockConfig {
    /// The defaults listed on each field, with the given clock.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            client_id: "demo-client".to_owned(),
            client_secret: None,
            redirect_uris: Vec::new(),
            access_ttl_secs: 3600,
            refresh_ttl_secs: 60 * 24 * 3600,
            consent: Consent::Auto,
            scopes: ["users:read", "expenses:read", "export-jobs:write"]
                .map(str::to_owned)
                .to_vec(),
            clock,
            port: 0,
        }
    }
}

/// What `GET /oauth/authorize` does with a valid request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consent {
    /// The user approves at once: a redirect with the code.
    #[default]
    Auto,
    /// A small HTML page names the client and the scopes, with Approve and
    /// Deny buttons.
    Page,
}

/// A fault the next requests to one endpoint get instead of (or before) the
/// normal answer. See [`Control::inject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `/oauth/token` answers 503 with an HTML body, as a proxy in front of
    /// the server would.
    TokenServerErrorHtml,
    /// `/oauth/token` answers 429 with an empty body and `Retry-After: 2`.
    TokenRateLimited,
    /// `/oauth/token` waits this many milliseconds (real time) before it
    /// looks at the request, then processes it normally. A client that times
    /// out or disconnects meanwhile changes nothing: the server drops the
    /// request with its connection, before processing it.
    TokenDelay(u32),
    /// `/oauth/token` processes the request first (a code is spent, a
    /// refresh rotates), then waits this many milliseconds (real time)
    /// before it answers: a slow answer, during which the user may act.
    TokenSlowAnswer(u32),
    /// `/oauth/token` answers 200 with `{"error":"server_error"}`.
    TokenErrorIn200,
    /// `/oauth/token` processes the request (a refresh rotates the tokens),
    /// then answers 504 with an HTML body instead, as a proxy whose upstream
    /// was too slow would: the client never sees the new tokens.
    TokenRotateThenGatewayTimeout,
    /// `/oauth/token` processes the request (a refresh rotates the tokens),
    /// then breaks the connection before the response is complete.
    TokenRotateThenDrop,
    /// `/v2/*` answers 503 with `Retry-After: 1`.
    ApiServerError,
    /// `/v2/*` answers 401 `Bearer error="invalid_token"`, whatever the
    /// token: an API that refuses what the authorisation server issued.
    ApiUnauthorized,
}

/// Counters of what the server has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Successful `authorization_code` grants.
    pub code_exchanges: u64,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
    /// `refresh_token` grant requests from an authenticated client, whatever
    /// their outcome.
    pub refresh_attempts: u64,
    /// Presentations of a refresh token that had already been rotated away.
    pub reuse_detections: u64,
    /// Requests to `/v2/*`, faults included.
    pub api_requests: u64,
    /// `/v2/*` requests answered 401.
    pub api_unauthorized: u64,
    /// Successful requests to the revocation endpoint.
    pub revocations: u64,
    /// Requests answered (or delayed) by an injected fault.
    pub faults_served: u64,
}

/// A running mock server: a background thread with its own current-thread
/// tokio runtime. Dropping it shuts the server down.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds 127.0.0.1 and starts serving; returns once the socket listens.
    pub fn start(config: MockConfig) -> std::io::Result<MockServer> {
        Self::start_with(config, Vec::new())
    }

    /// As [`start`](Self::start), and also serves the same server (one
    /// state, one set of counters) on `extra` listeners: sockets bound in
    /// other network namespaces, so that workers "on other machines" reach
    /// it at their own loopback address and port.
    pub fn start_with(
        config: MockConfig,
        extra: Vec<std::net::TcpListener>,
    ) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, base_url(addr)));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (listener, extra) = {
            let _guard = runtime.enter();
            let extra = extra
                .into_iter()
                .map(|l| {
                    l.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(l)
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            (tokio::net::TcpListener::from_std(listener)?, extra)
        };
        let app = router(Arc::clone(&shared));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pleo-mock-server".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    for listener in extra {
                        tokio::spawn(axum::serve(listener, app.clone()).into_future());
                    }
                    // Dropping the serve future (and then the runtime) on
                    // shutdown also cancels requests still in flight, such as
                    // a delayed token request.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(MockServer {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, with no trailing slash.
    pub fn base_url(&self) -> String {
        base_url(self.addr)
    }

    /// The issuer identifier the server sends as `iss` (RFC 9207 §2): the
    /// same as [`base_url`](Self::base_url).
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// A handle to drive the server in-process.
    pub fn control(&self) -> Control {
        Control::new(Arc::clone(&self.shared))
    }

    /// Blocks until the process ends (for `pleo-oauth mock-server`).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            // The server thread runs until shutdown, which only Drop sends.
            let _ = thread.join();
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/authorize/decision", post(oauth::decision))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/token/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/v2/{*path}", any(api::handle))
        .route("/_mock/revoke-grants", post(control::revoke_grants))
        .route(
            "/_mock/expire-access-tokens",
            post(control::expire_access_tokens),
        )
        .route(
            "/_mock/rotate-client-secret",
            post(control::rotate_client_secret),
        )
        .route("/_mock/fault", post(control::fault))
        .route("/_mock/stats", get(control::stats))
        .route("/_mock/issued-secrets", get(control::issued_secrets))
        .with_state(shared)
}
