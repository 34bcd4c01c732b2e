//! The real `http` backend: a blocking HTTPS client (ureq with rustls).
//!
//! - https only, except for loopback hosts (127.0.0.0/8, ::1, localhost),
//!   where plain http serves development and the mock server (RFC 8252 §7.3);
//! - connect and total timeouts, the total being the request's own
//!   `timeout-ms` when shorter;
//! - a response-size cap, so a hostile server cannot exhaust memory;
//! - redirects never followed: a token endpoint that redirects is broken,
//!   and following would carry credentials elsewhere (RFC 9700 §4.11);
//! - client authentication (RFC 6749 §2.3.1) for requests that ask for it,
//!   with the secret held here and never shown to the guest or a log.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pleo_oauth_core::connection::secure_url;
use pleo_oauth_core::secret::Secret;
use pleo_oauth_core::types::{Header, Method, Request, Response, TransportError};

use super::Http;

/// How the client secret is presented at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `Authorization: Basic` (RFC 6749 §2.3.1; Pleo's default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

impl ClientAuthMethod {
    /// Every method, in the order a user interface offers them.
    pub const ALL: [Self; 2] = [Self::Basic, Self::Post];

    /// The method's name in settings and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Post => "post",
        }
    }
}

impl std::str::FromStr for ClientAuthMethod {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| {
                format!("unknown client authentication method {name:?}: expected basic or post")
            })
    }
}

/// The client credentials the host holds: for each client id, its secret
/// and the only origins it may be sent to (the token endpoint's, and the
/// revocation and introspection endpoints' when they differ).
///
/// A request that names a client (`client-auth`) gets its credentials only
/// when its URL's origin is registered for that client. Anything else gets
/// `no-credentials` and nothing is sent: whoever can point a connection at
/// their own "token endpoint" must not receive the secret (RFC 9700 §4.1,
/// the client must not send credentials to an untrusted endpoint). There
/// is no fallback secret for unknown clients.
#[derive(Clone, Default)]
pub struct ClientSecrets {
    clients: HashMap<String, Registered>,
    pub method: ClientAuthMethod,
}

#[derive(Clone)]
struct Registered {
    secret: Secret,
    /// ASCII-serialised origins (`https://auth.pleo.io`).
    origins: Vec<String>,
    /// How this client presents it, when not the default.
    method: Option<ClientAuthMethod>,
}

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clients: Vec<_> = self
            .clients
            .iter()
            .map(|(id, r)| (id, &r.origins))
            .collect();
        f.debug_struct("ClientSecrets")
            .field("clients", &clients)
            .field("method", &self.method)
            .finish()
    }
}

/// An origin that cannot hold credentials: not an absolute `https` URL (or
/// `http` on loopback).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an https origin (or http on loopback): {0}")]
pub struct InvalidOrigin(pub String);

/// Why a request got no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No secret is held for this client.
    NoSecret,
    /// The secret is not registered for this origin.
    Origin(String),
}

/// The origin of a URL, as registered and compared: scheme, host and port.
pub fn origin_of(url: &str) -> Option<String> {
    secure_url(url).map(|u| u.origin().ascii_serialization())
}

impl ClientSecrets {
    pub fn new(method: ClientAuthMethod) -> Self {
        Self {
            clients: HashMap::new(),
            method,
        }
    }

    /// Registers `client_id`'s secret for `origins` (URLs; only their
    /// origins count), replacing any earlier registration.
    pub fn insert<'a>(
        &mut self,
        client_id: impl Into<String>,
        secret: Secret,
        origins: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), InvalidOrigin> {
        let origins = origins
            .into_iter()
            .map(|url| origin_of(url).ok_or_else(|| InvalidOrigin(url.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        self.clients.insert(
            client_id.into(),
            Registered {
                secret,
                origins,
                method: None,
            },
        );
        Ok(())
    }

    /// How `client_id` presents its secret, instead of the default.
    pub fn set_method(&mut self, client_id: &str, method: ClientAuthMethod) {
        if let Some(registered) = self.clients.get_mut(client_id) {
            registered.method = Some(method);
        }
    }

    /// How `client_id` presents its secret.
    pub fn method_for(&self, client_id: &str) -> ClientAuthMethod {
        self.clients
            .get(client_id)
            .and_then(|r| r.method)
            .unwrap_or(self.method)
    }

    /// Whether a secret is held for this client.
    pub fn has(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }

    /// Whether `client_id`'s secret may be sent to `url`.
    pub fn allows(&self, client_id: &str, url: &str) -> bool {
        self.credentials(client_id, url).is_ok()
    }

    /// The secret for a request to `url` on behalf of `client_id`.
    pub fn credentials(&self, client_id: &str, url: &str) -> Result<&Secret, Refused> {
        let registered = self.clients.get(client_id).ok_or(Refused::NoSecret)?;
        let origin = origin_of(url).unwrap_or_else(|| "(not a URL)".into());
        if registered.origins.contains(&origin) {
            Ok(&registered.secret)
        } else {
            Err(Refused::Origin(origin))
        }
    }
}

/// Limits of the real client.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub connect_timeout: Duration,
    /// The longest any request may take, whatever it asks for.
    pub total_timeout: Duration,
    /// The largest response body read, in bytes.
    pub max_body: u64,
    pub user_agent: String,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_body: 1024 * 1024,
            user_agent: format!("pleo-oauth/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The real HTTP backend.
pub struct HttpClient {
    agent: ureq::Agent,
    limits: HttpLimits,
    /// Registered before the requests that need them (the command line
    /// learns the client id from the connection's configuration).
    secrets: std::sync::RwLock<ClientSecrets>,
}

impl HttpClient {
    pub fn new(limits: HttpLimits, secrets: ClientSecrets) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(limits.connect_timeout))
            .user_agent(limits.user_agent.as_str())
            .build()
            .into();
        Self {
            agent,
            limits,
            secrets: std::sync::RwLock::new(secrets),
        }
    }

    /// The client credentials this client applies.
    pub fn secrets(&self) -> std::sync::RwLockReadGuard<'_, ClientSecrets> {
        self.secrets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a client's secret for the origins it may be sent to, and
    /// how it is presented when not the default.
    pub fn register<'a>(
        &self,
        client_id: &str,
        secret: Secret,
        origins: impl IntoIterator<Item = &'a str>,
        method: Option<ClientAuthMethod>,
    ) -> Result<(), InvalidOrigin> {
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        secrets.insert(client_id, secret, origins)?;
        if let Some(method) = method {
            secrets.set_method(client_id, method);
        }
        Ok(())
    }

    /// Adds client authentication; `no-credentials` (nothing sent) when
    /// the request asks for it and no secret is held for that client and
    /// that URL's origin. A refused origin is logged at error level: it is
    /// a misconfiguration or an attack.
    fn authenticate(&self, request: &mut Request) -> Result<(), TransportError> {
        let Some(client_id) = request.client_auth.clone() else {
            return Ok(());
        };
        let secrets = self.secrets();
        let secret = match secrets.credentials(&client_id, &request.url) {
            Ok(secret) => secret.clone(),
            Err(Refused::NoSecret) => return Err(TransportError::NoCredentials),
            Err(Refused::Origin(origin)) => {
                tracing::error!(
                    target: "pleo_oauth::http",
                    client_id = client_id.as_str(),
                    origin = origin.as_str(),
                    "refused to send the client secret to an origin it is not registered for; nothing was sent"
                );
                return Err(TransportError::NoCredentials);
            }
        };
        let method = secrets.method_for(&client_id);
        drop(secrets);
        match method {
            ClientAuthMethod::Basic => {
                // RFC 6749 §2.3.1: both parts form-urlencoded, then Basic.
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let credentials = format!("{}:{}", encode(&client_id), encode(secret.expose()));
                request.headers.push(Header::new(
                    "Authorization",
                    format!("Basic {}", STANDARD.encode(credentials)),
                ));
            }
            ClientAuthMethod::Post => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("client_id", &client_id)
                    .append_pair("client_secret", secret.expose());
                if !request.body.is_empty() {
                    request.body.push(b'&');
                }
                request.body.extend_from_slice(form.finish().as_bytes());
            }
        }
        Ok(())
    }
}

/// https, or http to a loopback host: the same rule as the configuration's
/// endpoints ([`secure_url`]), so a request the guest builds from a valid
/// configuration always passes.
pub fn check_scheme(url: &str) -> Result<(), TransportError> {
    match secure_url(url) {
        Some(_) => Ok(()),
        None => Err(TransportError::Other(
            "refused: not https (plain http only to loopback), or not a URL".into(),
        )),
    }
}

impl Http for HttpClient {
    fn send(&self, mut request: Request) -> Result<Response, TransportError> {
        check_scheme(&request.url)?;
        self.authenticate(&mut request)?;
        let timeout =
            Duration::from_millis(u64::from(request.timeout_ms)).min(self.limits.total_timeout);
        let mut builder = ureq::http::Request::builder()
            .method(match request.method {
                Method::Get => "GET",
                Method::Post => "POST",
            })
            .uri(&request.url);
        for header in &request.headers {
            builder = builder.header(&header.name, &header.value);
        }
        let http_request = builder
            .body(request.body)
            .map_err(|_| TransportError::Other("invalid request".into()))?;
        let http_request = self
            .agent
            .configure_request(http_request)
            .timeout_global(Some(timeout))
            .build();
        let mut response = self.agent.run(http_request).map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                Header::new(name.as_str(), String::from_utf8_lossy(value.as_bytes()))
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.limits.max_body)
            .read_to_vec()
            .map_err(transport_error)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// What failed, in the contract's words. The text of `other` names the
/// kind of failure, never a URL query or a body.
fn transport_error(error: ureq::Error) -> TransportError {
    match error {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::HostNotFound => TransportError::Dns,
        ureq::Error::ConnectionFailed => TransportError::ConnectionRefused,
        ureq::Error::BodyExceedsLimit(_) => TransportError::BodyTooLarge,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => {
            TransportError::Tls
        }
        ureq::Error::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => TransportError::ConnectionRefused,
            // The connection was up and the request on its way: the server
            // may have acted on it (RFC 9110 §9.2.2: a POST is not idempotent).
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof => TransportError::ConnectionLost,
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                TransportError::Timeout
            }
            kind => TransportError::Other(format!("i/o error: {kind}")),
        },
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            TransportError::Other("redirect refused".into())
        }
        _ => TransportError::Other("protocol error".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::imports::clock::ManualClock;
    use crate::mock::{Fault, MockConfig, MockServer};

    fn mock() -> MockServer {
        let mut config = MockConfig::new(Arc::new(ManualClock::new(1_700_000_000_000)));
        config.client_id = "c".into();
        config.client_secret = Some("s3cret".into());
        MockServer::start(config).unwrap()
    }

    /// A client holding client `c`'s secret for the mock's origin.
    fn client(method: ClientAuthMethod, limits: HttpLimits, mock: &MockServer) -> HttpClient {
        let mut secrets = ClientSecrets::new(method);
        secrets
            .insert("c", Secret::new("s3cret"), [mock.base_url().as_str()])
            .unwrap();
        HttpClient::new(limits, secrets)
    }

    fn request(method: Method, url: String, client_auth: Option<&str>) -> Request {
        Request {
            method,
            url,
            headers: vec![Header::new(
                "Content-Type",
                "application/x-www-form-urlencoded",
            )],
            body: b"token=unknown".to_vec(),
            timeout_ms: 5_000,
            client_auth: client_auth.map(str::to_owned),
        }
    }

    /// RFC 6749 §2.3.1: Basic by default, or in the body; without the
    /// client's credentials the server refuses.
    #[test]
    fn rfc6749_2_3_1_client_authentication_basic_and_post() {
        let mock = mock();
        let url = format!("{}/oauth/token/introspect", mock.base_url());
        for method in [ClientAuthMethod::Basic, ClientAuthMethod::Post] {
            let response = client(method, HttpLimits::default(), &mock)
                .send(request(Method::Post, url.clone(), Some("c")))
                .unwrap();
            assert_eq!(response.status, 200, "{method:?}");
        }
        let response = client(ClientAuthMethod::Basic, HttpLimits::default(), &mock)
            .send(request(Method::Post, url, None))
            .unwrap();
        assert_eq!(response.status, 401);
    }

    /// A connection's stored method wins over the host's default.
    #[test]
    fn the_method_is_per_client() {
        let mock = mock();
        let http = HttpClient::new(HttpLimits::default(), ClientSecrets::default());
        http.register(
            "c",
            Secret::new("s3cret"),
            [mock.base_url().as_str()],
            Some(ClientAuthMethod::Post),
        )
        .unwrap();
        assert_eq!(http.secrets().method_for("c"), ClientAuthMethod::Post);
        assert_eq!(http.secrets().method_for("other"), ClientAuthMethod::Basic);
        let url = format!("{}/oauth/token/introspect", mock.base_url());
        let mut sent = request(Method::Post, url, Some("c"));
        sent.body = b"token=unknown".to_vec();
        assert_eq!(http.send(sent).unwrap().status, 200);
    }

    /// RFC 9700 §4.11: redirects are returned, never followed.
    #[test]
    fn redirects_are_not_followed() {
        let mock = mock();
        let url = format!(
            "{}/oauth/authorize?response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=users%3Aread&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            mock.base_url()
        );
        let response = client(ClientAuthMethod::Basic, HttpLimits::default(), &mock)
            .send(request(Method::Get, url, None))
            .unwrap();
        assert_eq!(response.status, 302);
    }

    #[test]
    fn size_cap_timeout_and_scheme_are_enforced() {
        let mock = mock();
        let small = HttpLimits {
            max_body: 8,
            ..HttpLimits::default()
        };
        let url = format!("{}/v2/nothing-here", mock.base_url());
        assert_eq!(
            client(ClientAuthMethod::Basic, small, &mock).send(request(Method::Get, url, None)),
            Err(TransportError::BodyTooLarge)
        );

        mock.control().inject(Fault::TokenDelay(3_000), 1);
        let mut slow = request(
            Method::Post,
            format!("{}/oauth/token", mock.base_url()),
            None,
        );
        slow.timeout_ms = 200;
        assert_eq!(
            client(ClientAuthMethod::Basic, HttpLimits::default(), &mock).send(slow),
            Err(TransportError::Timeout)
        );

        let plain = request(Method::Get, "http://auth.example/oauth/token".into(), None);
        assert!(matches!(
            client(ClientAuthMethod::Basic, HttpLimits::default(), &mock).send(plain),
            Err(TransportError::Other(why)) if why.contains("not https")
        ));
        assert!(check_scheme("http://localhost:8080/x").is_ok());
        assert!(check_scheme("http://[::1]/x").is_ok());
        assert!(check_scheme("https://auth.pleo.io/oauth/token").is_ok());
        assert!(check_scheme("ftp://auth.pleo.io/").is_err());
    }

    #[test]
    fn a_missing_secret_is_a_typed_error_before_sending_and_debug_hides_secrets() {
        // Port 9 (discard) on loopback: were anything sent, the error would
        // be `connection-refused`, not `no-credentials`.
        let none = HttpClient::new(HttpLimits::default(), ClientSecrets::default());
        let error = none
            .send(request(
                Method::Post,
                "http://127.0.0.1:9/t".into(),
                Some("c"),
            ))
            .unwrap_err();
        assert_eq!(error, TransportError::NoCredentials);
        let mut secrets = ClientSecrets::new(ClientAuthMethod::Post);
        secrets
            .insert(
                "c",
                Secret::new("s3cret"),
                ["https://auth.pleo.io/oauth/token"],
            )
            .unwrap();
        let printed = format!("{secrets:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("https://auth.pleo.io"), "{printed}");
        assert_eq!(
            secrets.insert("c", Secret::new("x"), ["http://auth.example"]),
            Err(InvalidOrigin("http://auth.example".into()))
        );
    }

    /// RFC 9700 §4.1 (do not send credentials to endpoints you do not
    /// trust): a connection whose token URL points at another server (here
    /// another loopback port) gets no client secret: a typed error, and
    /// nothing reaches that server.
    #[test]
    fn credentials_go_only_to_their_registered_origins() {
        let mock = mock();
        let hostile = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        hostile.set_nonblocking(true).unwrap();
        let hostile_url = format!(
            "http://127.0.0.1:{}/oauth/token",
            hostile.local_addr().unwrap().port()
        );
        let http = client(ClientAuthMethod::Basic, HttpLimits::default(), &mock);
        assert!(
            http.secrets()
                .allows("c", &format!("{}/oauth/token", mock.base_url()))
        );
        assert!(!http.secrets().allows("c", &hostile_url));
        assert!(!http.secrets().allows("other-client", &mock.base_url()));
        assert_eq!(
            http.send(request(Method::Post, hostile_url.clone(), Some("c"))),
            Err(TransportError::NoCredentials)
        );
        assert!(
            hostile.accept().is_err(),
            "nothing was sent to the hostile endpoint"
        );
        // Another client id gets nothing either: there is no fallback.
        assert_eq!(
            http.send(request(
                Method::Post,
                format!("{}/oauth/token", mock.base_url()),
                Some("other-client")
            )),
            Err(TransportError::NoCredentials)
        );
    }

    /// A connection that breaks after the request went out is
    /// `connection-lost` (the server may have acted), never
    /// `connection-refused` (it certainly did not).
    #[test]
    fn a_connection_broken_after_sending_is_connection_lost() {
        let mock = mock();
        mock.control().inject(Fault::TokenRotateThenDrop, 1);
        let url = format!("{}/oauth/token", mock.base_url());
        let error = client(ClientAuthMethod::Basic, HttpLimits::default(), &mock)
            .send(request(Method::Post, url, Some("c")))
            .unwrap_err();
        assert_eq!(error, TransportError::ConnectionLost);
        assert_eq!(mock.control().stats().faults_served, 1);
    }

    #[test]
    fn unreachable_is_connection_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = HttpClient::new(HttpLimits::default(), ClientSecrets::default())
            .send(request(
                Method::Get,
                format!("http://127.0.0.1:{port}/"),
                None,
            ))
            .unwrap_err();
        assert_eq!(error, TransportError::ConnectionRefused);
    }
}
