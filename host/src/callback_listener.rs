//! Receives one authorisation callback on a loopback redirect URI (RFC 8252
//! §7.3: native apps listen on the loopback interface). The listener lives
//! only until the first request to the redirect path, or the timeout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::Html;
use axum::routing::get;
use tokio::sync::oneshot;

/// The page the browser shows once the callback arrived. It says nothing
/// about the outcome: the terminal does.
const DONE_PAGE: &str = "<!doctype html><title>pleo-oauth</title><h1>Authorisation received</h1><p>Return to the terminal; you can close this window.</p>";

/// Waits on `address` for a request to the path of `redirect_uri`, and
/// returns the redirect URI with the request's query (the callback URL the
/// browser was sent to); `None` after `timeout`.
pub fn wait(
    address: SocketAddr,
    redirect_uri: &str,
    timeout: Duration,
) -> std::io::Result<Option<String>> {
    let path = url::Url::parse(redirect_uri)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "/".into());
    let base = redirect_uri
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {address} for the callback ({e}): stop what uses that port, or register another loopback redirect URI"
                ),
            )
        })?;
        let (tx, rx) = oneshot::channel::<String>();
        let sender = Arc::new(Mutex::new(Some(tx)));
        let app = axum::Router::new()
            .route(&path, get(receive))
            .with_state(sender);
        let server = axum::serve(listener, app);
        let query = tokio::select! {
            result = server => { result?; None }
            query = rx => query.ok(),
            () = tokio::time::sleep(timeout) => None,
        };
        Ok(query.map(|q| format!("{base}?{q}")))
    })
}

async fn receive(
    State(sender): State<Arc<Mutex<Option<oneshot::Sender<String>>>>>,
    RawQuery(query): RawQuery,
) -> Html<&'static str> {
    if let Some(tx) = sender.lock().expect("sender lock").take() {
        let _ = tx.send(query.unwrap_or_default());
    }
    Html(DONE_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_callback_url_and_times_out() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redirect = format!("http://127.0.0.1:{port}/cb");
        let waiter = {
            let redirect = redirect.clone();
            std::thread::spawn(move || {
                wait(
                    ([127, 0, 0, 1], port).into(),
                    &redirect,
                    Duration::from_secs(30),
                )
            })
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut status = 0;
        for _ in 0..200 {
            if let Ok(response) = agent.get(format!("{redirect}?code=c&state=s")).call() {
                status = response.status().as_u16();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(status, 200);
        assert_eq!(
            waiter.join().unwrap().unwrap(),
            Some(format!("{redirect}?code=c&state=s"))
        );
        let nothing = wait(
            ([127, 0, 0, 1], 0).into(),
            &redirect,
            Duration::from_millis(50),
        )
        .unwrap();
        assert_eq!(nothing, None);
    }
}
