//! The `http` import: outbound requests.

#[cfg(feature = "https")]
mod client;

#[cfg(feature = "https")]
pub use client::{
    ClientAuthMethod, ClientSecrets, HttpClient, HttpLimits, InvalidOrigin, Refused, check_scheme,
    origin_of,
};

use std::collections::VecDeque;
use std::sync::Mutex;

use pleo_oauth_core::types::{Header, Method, Request, Response, TransportError};

use super::HostState;
use crate::bindings::pleo::oauth::{http as wit, types as wit_types};

/// Sends one request and returns its response. The backend applies client
/// authentication to requests that carry `client_auth`, and never follows
/// redirects.
pub trait Http: Send + Sync {
    fn send(&self, request: Request) -> Result<Response, TransportError>;
}

/// A test backend: answers from a script, in order, and records every
/// request it was sent. With the script empty it answers a transport error,
/// so a test that sends more than it scripted fails loudly.
#[derive(Default)]
pub struct ScriptedHttp {
    script: Mutex<VecDeque<Result<Response, TransportError>>>,
    sent: Mutex<Vec<Request>>,
}

impl ScriptedHttp {
    /// Queues the answer to the next request.
    pub fn push(&self, answer: Result<Response, TransportError>) {
        self.script.lock().expect("script lock").push_back(answer);
    }

    /// The requests sent so far.
    pub fn sent(&self) -> Vec<Request> {
        self.sent.lock().expect("sent lock").clone()
    }
}

impl Http for ScriptedHttp {
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        self.sent.lock().expect("sent lock").push(request);
        self.script
            .lock()
            .expect("script lock")
            .pop_front()
            .unwrap_or_else(|| Err(TransportError::Other("no scripted response left".into())))
    }
}

impl wit_types::Host for HostState {}

impl wit::Host for HostState {
    fn send(&mut self, request: wit::Request) -> Result<wit::Response, wit_types::TransportError> {
        let request = from_wit_request(request);
        self.timed(|backends| backends.http.send(request))
            .map(to_wit_response)
            .map_err(wit_types::TransportError::from)
    }
}

/// The request the guest passed, as the backend takes it (shared with the
/// `steps` export, whose `http-send` effect carries the same record).
pub(crate) fn from_wit_request(request: wit::Request) -> Request {
    Request {
        method: match request.method {
            wit::Method::Get => Method::Get,
            wit::Method::Post => Method::Post,
        },
        url: request.url,
        headers: request.headers.into_iter().map(Header::from).collect(),
        body: request.body,
        timeout_ms: request.timeout_ms,
        client_auth: request.client_auth.map(|auth| auth.client_id),
    }
}

pub(crate) fn to_wit_response(response: Response) -> wit::Response {
    wit::Response {
        status: response.status,
        headers: response
            .headers
            .into_iter()
            .map(wit_types::Header::from)
            .collect(),
        body: response.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_answers_in_order_then_fails_loudly() {
        let http = ScriptedHttp::default();
        http.push(Ok(Response {
            status: 204,
            headers: vec![],
            body: vec![],
        }));
        http.push(Err(TransportError::Timeout));
        let request = Request {
            method: Method::Get,
            url: "https://example.test/".into(),
            headers: vec![],
            body: vec![],
            timeout_ms: 1000,
            client_auth: None,
        };
        assert_eq!(http.send(request.clone()).unwrap().status, 204);
        assert_eq!(http.send(request.clone()), Err(TransportError::Timeout));
        assert!(matches!(http.send(request), Err(TransportError::Other(_))));
        assert_eq!(http.sent().len(), 3);
    }
}
