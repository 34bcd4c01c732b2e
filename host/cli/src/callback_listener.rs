//! Receives the authorisation callback on a loopback redirect URI (RFC 8252
//! §7.3: native apps listen on the loopback interface).
//!
//! Anything on the machine can send a request to a loopback port, so the
//! listener takes only the callback it is waiting for: a `GET` of the exact
//! redirect path whose `state` is the pending authorisation's (RFC 6749
//! §10.12). Other methods get 405, other paths 404, and a request with
//! another `state` (a forged or stale callback, an old browser tab) gets a
//! page that says so, while the listener keeps waiting for the real one.
//! The browser's final page comes from the command, once it knows the
//! outcome (connected, denied, or rejected and why).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::oneshot;

/// How long the browser waits for the command's verdict on its callback.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(120);

/// A callback that arrived: the URL the browser was sent to, and the
/// browser waiting for the page that says what came of it.
pub struct Arrived {
    pub url: String,
    reply: oneshot::Sender<String>,
}

impl Arrived {
    /// Shows `page` (HTML) in the browser.
    pub fn respond(self, page: String) {
        let _ = self.reply.send(page);
    }
}

impl std::fmt::Debug for Arrived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL holds the code and the state: secrets.
        f.debug_struct("Arrived").finish_non_exhaustive()
    }
}

struct Shared {
    /// The `state` of the authorisation being waited for.
    expected: Mutex<Option<String>>,
    arrived: Mutex<mpsc::Sender<Arrived>>,
    base: String,
}

/// A listener on a loopback redirect URI, serving on its own thread until
/// dropped.
pub struct Listener {
    shared: Arc<Shared>,
    arrived: mpsc::Receiver<Arrived>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds `address` at once (so a taken port is found before anything
    /// else happens) and serves the path of `redirect_uri`.
    pub fn start(address: SocketAddr, redirect_uri: &str) -> std::io::Result<Self> {
        let path = url::Url::parse(redirect_uri)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| "/".into());
        let base = redirect_uri
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let listener = std::net::TcpListener::bind(address).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {address} for the callback ({e}): another `pleo-oauth connect` may be waiting there; stop it or what else uses that port, or register another loopback redirect URI"
                ),
            )
        })?;
        listener.set_nonblocking(true)?;
        let (tx, arrived) = mpsc::channel();
        let shared = Arc::new(Shared {
            expected: Mutex::new(None),
            arrived: Mutex::new(tx),
            base,
        });
        let (shutdown, stop) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let app = axum::Router::new()
            .route(&path, axum::routing::any(receive))
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        Ok(Self {
            shared,
            arrived,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Accept callbacks carrying this `state` from now on.
    pub fn expect_state(&self, state: &str) {
        *self
            .shared
            .expected
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(state.to_owned());
    }

    /// The matching callback, or `None` after `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<Arrived> {
        self.arrived.recv_timeout(timeout).ok()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Callbacks still queued (a reload of the page) get their default
        // page now, so the graceful shutdown does not wait for them.
        while let Ok(arrived) = self.arrived.try_recv() {
            drop(arrived);
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    if method != Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(axum::http::header::ALLOW, "GET")],
            "the authorisation callback is a GET\n",
        )
            .into_response();
    }
    let query = query.unwrap_or_default();
    let state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    let expected = shared
        .expected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let matches = match (&state, &expected) {
        (Some(state), Some(expected)) => {
            use subtle::ConstantTimeEq as _;
            bool::from(state.as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    };
    if !matches {
        return (
            StatusCode::BAD_REQUEST,
            Html(page(
                "Not the authorisation being waited for",
                "This callback does not belong to the authorisation the pleo-oauth command is waiting for (an old browser tab, or a forged link). Nothing was done. Finish the authorisation in the window the command opened, or run the command again.",
            )),
        )
            .into_response();
    }
    // One callback per authorisation: a second one (a reload) is answered
    // like a stale one.
    shared
        .expected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let (reply, verdict) = oneshot::channel();
    let url = format!("{}?{query}", shared.base);
    let sent = shared
        .arrived
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Arrived { url, reply });
    if sent.is_err() {
        return Html(page(
            "Nobody is waiting",
            "The pleo-oauth command is no longer waiting. Return to the terminal.",
        ))
        .into_response();
    }
    match tokio::time::timeout(VERDICT_TIMEOUT, verdict).await {
        Ok(Ok(body)) => Html(body).into_response(),
        _ => Html(page(
            "Authorisation received",
            "Return to the terminal: it says what happened.",
        ))
        .into_response(),
    }
}

/// A minimal page: a title and one paragraph of text (escaped).
pub fn page(title: &str, text: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>pleo-oauth: {0}</title><h1>{0}</h1><p>{1}</p>",
        escape(title),
        escape(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// RFC 6749 §10.12, RFC 8252 §7.3: only a GET of the exact path with
    /// the pending `state` is taken; HEAD, POST, other paths and other
    /// states are answered and ignored, and the listener keeps waiting;
    /// the browser's page comes from the command.
    #[test]
    fn waits_for_the_real_callback_only() {
        let port = free_port();
        let redirect = format!("http://127.0.0.1:{port}/cb");
        let listener = Listener::start(([127, 0, 0, 1], port).into(), &redirect).unwrap();
        listener.expect_state("the-state");
        let client = agent();
        let status =
            |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| r.unwrap().status().as_u16();
        assert_eq!(
            status(client.head(format!("{redirect}?state=the-state")).call()),
            405
        );
        assert_eq!(
            status(client.post(format!("{redirect}?state=the-state")).send("")),
            405
        );
        assert_eq!(
            status(
                client
                    .get(format!("http://127.0.0.1:{port}/other?state=the-state"))
                    .call()
            ),
            404
        );
        let mut forged = client
            .get(format!("{redirect}?code=x&state=forged"))
            .call()
            .unwrap();
        assert_eq!(forged.status().as_u16(), 400);
        assert!(
            forged
                .body_mut()
                .read_to_string()
                .unwrap()
                .contains("Nothing was done")
        );
        assert!(
            listener.wait(Duration::from_millis(50)).is_none(),
            "still waiting"
        );

        let browser = std::thread::spawn(move || {
            agent()
                .get(format!("{redirect}?code=c&state=the-state"))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap()
        });
        let arrived = listener
            .wait(Duration::from_secs(10))
            .expect("the callback");
        assert_eq!(
            arrived.url,
            format!("http://127.0.0.1:{port}/cb?code=c&state=the-state")
        );
        assert!(!format!("{arrived:?}").contains("the-state"));
        arrived.respond(page("Connected", "All done."));
        assert!(browser.join().unwrap().contains("All done."));
    }

    #[test]
    fn times_out_and_reports_a_taken_port() {
        let port = free_port();
        let redirect = format!("http://127.0.0.1:{port}/cb");
        let listener = Listener::start(([127, 0, 0, 1], port).into(), &redirect).unwrap();
        assert!(listener.wait(Duration::from_millis(50)).is_none());
        let Err(taken) = Listener::start(([127, 0, 0, 1], port).into(), &redirect) else {
            panic!("the port is taken");
        };
        assert!(
            taken.to_string().contains("another `pleo-oauth connect`"),
            "{taken}"
        );
    }
}
