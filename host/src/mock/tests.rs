//! The mock server over real loopback HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use url::Url;

use super::*;
use crate::imports::clock::ManualClock;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const SECRET: &str = "s3cret";
const ALL_SCOPES: &str = "users:read expenses:read export-jobs:write";
const T0: u64 = 1_700_000_000_000;

/// A verifier and its S256 challenge (RFC 7636 Appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Harness {
    server: MockServer,
    clock: Arc<ManualClock>,
    agent: ureq::Agent,
}

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

fn reply(result: Result<axum::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("an HTTP response");
    let body = response.body_mut().read_to_string().expect("a text body");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

/// A confidential client with one registered redirect URI.
fn config(clock: &Arc<ManualClock>) -> MockConfig {
    let mut config = MockConfig::new(Arc::clone(clock) as Arc<dyn Clock>);
    config.client_secret = Some(SECRET.to_owned());
    config.redirect_uris = vec![REDIRECT.to_owned()];
    config
}

fn harness() -> Harness {
    harness_with(|_| {})
}

fn harness_with(adjust: impl FnOnce(&mut MockConfig)) -> Harness {
    let clock = Arc::new(ManualClock::new(T0));
    let mut config = config(&clock);
    adjust(&mut config);
    let server = MockServer::start(config).expect("the server starts");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    Harness {
        server,
        clock,
        agent,
    }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    fn get(&self, path: &str) -> Reply {
        reply(self.agent.get(self.url(path)).call())
    }

    /// `GET /oauth/authorize` with these parameters.
    fn authorize_with(&self, params: &[(&str, &str)]) -> Reply {
        let mut url = Url::parse(&self.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        reply(self.agent.get(url.as_str()).call())
    }

    fn authorize(&self, scope: &str) -> Reply {
        self.authorize_with(&[
            ("response_type", "code"),
            ("client_id", "demo-client"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
    }

    fn code(&self, scope: &str) -> String {
        let reply = self.authorize(scope);
        assert_eq!(reply.status, 302, "{}", reply.body);
        let location = reply.header("location").expect("a Location");
        query_param(location, "code").expect("a code")
    }

    /// `POST` a form, with Basic client credentials when given.
    fn post(&self, path: &str, auth: Option<&str>, form: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.post(self.url(path));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        reply(request.send_form(form.iter().copied()))
    }

    fn token(&self, form: &[(&str, &str)]) -> Reply {
        self.post("/oauth/token", Some(&basic("demo-client", SECRET)), form)
    }

    fn exchange(&self, code: &str) -> Reply {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
    }

    /// A code flow for these scopes: `(access token, refresh token)`.
    fn tokens(&self, scope: &str) -> (String, String) {
        let reply = self.exchange(&self.code(scope));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        (
            json["access_token"].as_str().unwrap().to_owned(),
            json["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    fn refresh(&self, refresh_token: &str) -> Reply {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
    }

    fn api(&self, method: &str, path: &str, token: Option<&str>) -> Reply {
        let url = self.url(path);
        let result = match (method, token) {
            ("GET", Some(token)) => self
                .agent
                .get(url)
                .header("Authorization", format!("Bearer {token}"))
                .call(),
            ("GET", None) => self.agent.get(url).call(),
            (_, Some(token)) => self
                .agent
                .post(url)
                .header("Authorization", format!("Bearer {token}"))
                .send_empty(),
            (_, None) => self.agent.post(url).send_empty(),
        };
        reply(result)
    }

    fn users(&self, token: &str) -> Reply {
        self.api("GET", "/v2/users", Some(token))
    }

    fn introspect(&self, token: &str) -> Value {
        let reply = self.post(
            "/oauth/token/introspect",
            Some(&basic("demo-client", SECRET)),
            &[("token", token)],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }
}

#[test]
fn code_flow_with_pkce() {
    let h = harness();
    let reply = h.authorize(ALL_SCOPES);
    assert_eq!(reply.status, 302);
    let location = reply.header("location").unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert_eq!(query_param(location, "state").as_deref(), Some("st-1"));
    assert_eq!(query_param(location, "iss"), Some(h.server.issuer()));
    assert_eq!(h.server.issuer(), h.server.base_url());
    let code = query_param(location, "code").unwrap();
    assert_eq!(code.len(), 43);

    let reply = h.exchange(&code);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let json = reply.json();
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 3600);
    assert_eq!(json["scope"], ALL_SCOPES);
    let access = json["access_token"].as_str().unwrap();
    assert!(json["refresh_token"].is_string());

    let users = h.users(access);
    assert_eq!(users.status, 200);
    assert_eq!(users.json()["data"][0]["name"], "Ada");
    assert_eq!(h.api("GET", "/v2/expenses", Some(access)).status, 200);
    assert_eq!(h.api("POST", "/v2/export-jobs", Some(access)).status, 200);
    let stats = h.server.control().stats();
    assert_eq!(stats.code_exchanges, 1);
    assert_eq!(stats.api_requests, 3);

    // RFC 6749 §4.1.2: a code used twice fails and revokes its grant.
    let again = h.exchange(&code);
    assert_eq!(
        (again.status, again.error().as_str()),
        (400, "invalid_grant")
    );
    assert_eq!(h.users(access).status, 401);
}

#[test]
fn wrong_verifier_is_invalid_grant() {
    let h = harness();
    let code = h.code("users:read");
    let reply = h.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &"a".repeat(43)),
    ]);
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (400, "invalid_grant")
    );
    // The code is spent by the failed attempt.
    assert_eq!(h.exchange(&code).error(), "invalid_grant");

    let code = h.code("users:read");
    let reply = h.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "too-short"),
    ]);
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (400, "invalid_request")
    );
}

#[test]
fn code_expires_after_a_minute() {
    let h = harness();
    let code = h.code("users:read");
    h.clock.advance(60_000);
    assert_eq!(h.exchange(&code).error(), "invalid_grant");
}

#[test]
fn redirect_uri_mismatch() {
    let h = harness();
    let code = h.code("users:read");
    let reply = h.token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1:9/callback/"),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (400, "invalid_grant")
    );

    // RFC 6749 §4.1.2.1: an unregistered redirect URI is never redirected to.
    let reply = h.authorize_with(&[
        ("response_type", "code"),
        ("client_id", "demo-client"),
        ("redirect_uri", "http://127.0.0.1:9/other"),
        ("scope", "users:read"),
        ("state", "s"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
}

#[test]
fn authorize_errors() {
    let h = harness();
    let good = [
        ("response_type", "code"),
        ("client_id", "demo-client"),
        ("redirect_uri", REDIRECT),
        ("scope", "users:read"),
        ("state", "st-9"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let with = |name: &str, value: Option<&str>| -> Reply {
        let params: Vec<(&str, &str)> = good
            .iter()
            .filter(|(n, _)| *n != name)
            .copied()
            .chain(value.map(|v| (name, v)))
            .collect();
        h.authorize_with(&params)
    };
    let redirected_error = |reply: &Reply| {
        assert_eq!(reply.status, 302, "{}", reply.body);
        let location = reply.header("location").unwrap();
        assert!(location.starts_with(REDIRECT));
        assert!(query_param(location, "code").is_none());
        assert_eq!(query_param(location, "iss"), Some(h.server.issuer()));
        (
            query_param(location, "error").unwrap(),
            query_param(location, "state"),
        )
    };
    let st = Some("st-9".to_owned());

    let unknown_client = with("client_id", Some("someone-else"));
    assert_eq!(unknown_client.status, 400);
    assert!(unknown_client.header("location").is_none());
    assert_eq!(with("redirect_uri", None).status, 400);

    let plain = with("code_challenge_method", Some("plain"));
    assert_eq!(
        redirected_error(&plain),
        ("invalid_request".into(), st.clone())
    );
    let no_method = with("code_challenge_method", None);
    assert_eq!(redirected_error(&no_method).0, "invalid_request");
    let no_challenge = with("code_challenge", None);
    assert_eq!(redirected_error(&no_challenge).0, "invalid_request");
    let no_state = with("state", None);
    assert_eq!(
        redirected_error(&no_state),
        ("invalid_request".into(), None)
    );
    let token = with("response_type", Some("token"));
    assert_eq!(
        redirected_error(&token),
        ("unsupported_response_type".into(), st.clone())
    );
    let scope = with("scope", Some("users:read users:write"));
    assert_eq!(
        redirected_error(&scope),
        ("invalid_scope".into(), st.clone())
    );
    let no_scope = with("scope", None);
    assert_eq!(redirected_error(&no_scope).0, "invalid_scope");
}

#[test]
fn redirect_keeps_an_existing_query_and_loopback_is_accepted_when_none_registered() {
    let h = harness_with(|c| c.redirect_uris.clear());
    for redirect in [
        "http://127.0.0.1:4567/cb?tenant=a%20b",
        "http://localhost:4567/cb",
        "http://[::1]:4567/cb",
    ] {
        let reply = h.authorize_with(&[
            ("response_type", "code"),
            ("client_id", "demo-client"),
            ("redirect_uri", redirect),
            ("scope", "users:read"),
            ("state", "a&b=c"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        assert_eq!(reply.status, 302, "{redirect}: {}", reply.body);
        let location = reply.header("location").unwrap();
        assert_eq!(query_param(location, "state").as_deref(), Some("a&b=c"));
        if redirect.contains('?') {
            assert!(
                location.starts_with(&format!("{redirect}&code=")),
                "{location}"
            );
        }
    }
    for rejected in [
        "https://127.0.0.1:4567/cb",
        "http://example.com/cb",
        "http://127.0.0.1:4567/cb#frag",
    ] {
        let reply = h.authorize_with(&[
            ("response_type", "code"),
            ("client_id", "demo-client"),
            ("redirect_uri", rejected),
            ("scope", "users:read"),
            ("state", "s"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        assert_eq!(reply.status, 400, "{rejected}");
    }
}

#[test]
fn consent_page_approve_and_deny() {
    let h = harness_with(|c| c.consent = Consent::Page);
    let request_id = |reply: &Reply| {
        assert_eq!(reply.status, 200);
        assert!(reply.body.contains("demo-client"));
        assert!(reply.body.contains("users:read"));
        let marker = "name=\"request\" value=\"";
        let start = reply.body.find(marker).unwrap() + marker.len();
        let end = start + reply.body[start..].find('"').unwrap();
        reply.body[start..end].to_owned()
    };

    let id = request_id(&h.authorize("users:read"));
    let reply = h.post(
        "/oauth/authorize/decision",
        None,
        &[("request", &id), ("decision", "approve")],
    );
    assert_eq!(reply.status, 302);
    let location = reply.header("location").unwrap();
    assert_eq!(query_param(location, "state").as_deref(), Some("st-1"));
    let code = query_param(location, "code").unwrap();
    assert_eq!(h.exchange(&code).status, 200);
    // The id is single use.
    let again = h.post(
        "/oauth/authorize/decision",
        None,
        &[("request", &id), ("decision", "approve")],
    );
    assert_eq!(again.status, 400);

    let id = request_id(&h.authorize("users:read"));
    let reply = h.post(
        "/oauth/authorize/decision",
        None,
        &[("request", &id), ("decision", "deny")],
    );
    let location = reply.header("location").unwrap();
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(location, "state").as_deref(), Some("st-1"));
    assert!(query_param(location, "code").is_none());
}

#[test]
fn rotation_kills_the_old_tokens() {
    let h = harness();
    let (access, refresh) = h.tokens(ALL_SCOPES);
    let reply = h.refresh(&refresh);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let json = reply.json();
    let new_access = json["access_token"].as_str().unwrap();
    let new_refresh = json["refresh_token"].as_str().unwrap();
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh);
    assert_eq!(json["scope"], ALL_SCOPES);

    let old = h.users(&access);
    assert_eq!(old.status, 401);
    assert!(
        old.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(h.users(new_access).status, 200);
    // A narrower scope may be asked for on refresh, a wider one not.
    let narrower = h.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", new_refresh),
        ("scope", "users:read"),
    ]);
    assert_eq!(narrower.json()["scope"], "users:read");

    let stats = h.server.control().stats();
    assert_eq!((stats.refreshes, stats.refresh_attempts), (2, 2));
    assert_eq!(stats.api_unauthorized, 1);
}

#[test]
fn reuse_detection_kills_the_grant() {
    let h = harness();
    let (_, first) = h.tokens("users:read");
    let second = h.refresh(&first).json();
    let second_access = second["access_token"].as_str().unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();

    let reuse = h.refresh(&first);
    assert_eq!(
        (reuse.status, reuse.error().as_str()),
        (400, "invalid_grant")
    );
    let newest = h.refresh(second_refresh);
    assert_eq!(
        (newest.status, newest.error().as_str()),
        (400, "invalid_grant")
    );
    assert_eq!(h.users(second_access).status, 401);

    let stats = h.server.control().stats();
    assert_eq!(stats.reuse_detections, 1);
    assert_eq!((stats.refreshes, stats.refresh_attempts), (1, 3));

    // Another grant is not touched.
    let (access, refresh) = h.tokens("users:read");
    assert_eq!(h.users(&access).status, 200);
    assert_eq!(h.refresh(&refresh).status, 200);
}

#[test]
fn unknown_and_expired_refresh_tokens() {
    let h = harness_with(|c| c.refresh_ttl_secs = 100);
    assert_eq!(h.refresh("nope").error(), "invalid_grant");
    let (_, refresh) = h.tokens("users:read");
    h.clock.advance(100_000);
    let reply = h.refresh(&refresh);
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (400, "invalid_grant")
    );
}

#[test]
fn client_authentication() {
    let h = harness();
    let code = h.code("users:read");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];

    let wrong = h.post("/oauth/token", Some(&basic("demo-client", "nope")), &form);
    assert_eq!(
        (wrong.status, wrong.error().as_str()),
        (401, "invalid_client")
    );
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    let none = h.post("/oauth/token", None, &form);
    assert_eq!(
        (none.status, none.error().as_str()),
        (401, "invalid_client")
    );
    let unknown = h.post("/oauth/token", Some(&basic("other", SECRET)), &form);
    assert_eq!(unknown.status, 401);

    let mut both = form.to_vec();
    both.push(("client_secret", SECRET));
    let both = h.post("/oauth/token", Some(&basic("demo-client", SECRET)), &both);
    assert_eq!(
        (both.status, both.error().as_str()),
        (400, "invalid_request")
    );

    // None of the failures spent the code; client_secret_post works.
    let mut post = form.to_vec();
    post.extend([("client_id", "demo-client"), ("client_secret", SECRET)]);
    let post = h.post("/oauth/token", None, &post);
    assert_eq!(post.status, 200, "{}", post.body);

    let unsupported = h.token(&[("grant_type", "password")]);
    assert_eq!(unsupported.error(), "unsupported_grant_type");
    let missing = h.token(&[("grant_type", "refresh_token")]);
    assert_eq!(missing.error(), "invalid_request");
}

#[test]
fn basic_credentials_are_form_urlencoded() {
    let secret = "p@ss:w rd+=&";
    let h = harness_with(|c| c.client_secret = Some(secret.to_owned()));
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let code = h.code("users:read");
    let reply = h.post(
        "/oauth/token",
        Some(&basic("demo-client", &encode(secret))),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn public_client_sends_only_its_id() {
    let h = harness_with(|c| c.client_secret = None);
    let code = h.code("users:read");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "demo-client"),
    ];
    let with_secret = h.post("/oauth/token", Some(&basic("demo-client", "x")), &form);
    assert_eq!(with_secret.status, 401);
    let reply = h.post("/oauth/token", None, &form);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    let reply = h.post(
        "/oauth/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "demo-client"),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn rotate_client_secret() {
    let h = harness();
    let (_, refresh) = h.tokens("users:read");
    h.server.control().rotate_client_secret("n3w");
    let old = h.refresh(&refresh);
    assert_eq!((old.status, old.error().as_str()), (401, "invalid_client"));
    let new = h.post(
        "/oauth/token",
        Some(&basic("demo-client", "n3w")),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(new.status, 200, "{}", new.body);
    assert!(
        h.server
            .control()
            .issued_secrets()
            .contains(&"n3w".to_owned())
    );
}

#[test]
fn revoke_grants() {
    let h = harness();
    let (access, refresh) = h.tokens("users:read");
    h.server.control().revoke_grants();
    let api = h.users(&access);
    assert_eq!(api.status, 401);
    assert!(
        api.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let reply = h.refresh(&refresh);
    assert_eq!(
        (reply.status, reply.error().as_str()),
        (400, "invalid_grant")
    );
    assert_eq!(h.server.control().stats().reuse_detections, 0);
}

#[test]
fn expire_access_tokens() {
    let h = harness();
    let (access, refresh) = h.tokens("users:read");
    h.server.control().expire_access_tokens();
    let api = h.users(&access);
    assert_eq!(api.status, 401);
    let challenge = api.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"pleo\""),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""));
    assert!(challenge.contains("expired"));

    // Tokens issued afterwards live their full lifetime, by the clock.
    let fresh = h.refresh(&refresh).json();
    let fresh = fresh["access_token"].as_str().unwrap();
    h.clock.advance(3_599_000);
    assert_eq!(h.users(fresh).status, 200);
    h.clock.advance(1_000);
    assert_eq!(h.users(fresh).status, 401);
}

#[test]
fn api_challenges() {
    let h = harness();
    let (access, _) = h.tokens("users:read");

    let missing = h.api("GET", "/v2/users", None);
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"pleo\"")
    );
    assert_eq!(h.users("not-a-token").status, 401);

    let forbidden = h.api("GET", "/v2/expenses", Some(&access));
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.header("www-authenticate"),
        Some("Bearer realm=\"pleo\", error=\"insufficient_scope\", scope=\"expenses:read\"")
    );
    let forbidden = h.api("POST", "/v2/export-jobs", Some(&access));
    assert_eq!(forbidden.status, 403);

    let not_found = h.api("GET", "/v2/nothing", Some(&access));
    assert_eq!(
        (not_found.status, not_found.error().as_str()),
        (404, "not_found")
    );
    assert_eq!(h.api("POST", "/v2/users", Some(&access)).status, 405);

    let stats = h.server.control().stats();
    assert_eq!((stats.api_requests, stats.api_unauthorized), (6, 2));
}

#[test]
fn token_faults() {
    let h = harness();
    let (_, refresh) = h.tokens("users:read");
    let control = h.server.control();

    control.inject(Fault::TokenServerErrorHtml, 1);
    let reply = h.refresh(&refresh);
    assert_eq!(reply.status, 503);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );

    control.inject(Fault::TokenRateLimited, 2);
    for _ in 0..2 {
        let reply = h.refresh(&refresh);
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("2"));
        assert!(reply.body.is_empty());
    }

    control.inject(Fault::TokenErrorIn200, 1);
    let reply = h.refresh(&refresh);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, r#"{"error":"server_error"}"#);

    // None of them touched the refresh token.
    assert_eq!(control.stats().refresh_attempts, 0);
    let started = Instant::now();
    control.inject(Fault::TokenDelay(300), 1);
    let reply = h.refresh(&refresh);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, 200, "{}", reply.body);

    let stats = control.stats();
    assert_eq!(stats.faults_served, 5);
    assert_eq!((stats.refreshes, stats.refresh_attempts), (1, 1));
}

/// Sends a refresh and gives up on it after 50 ms.
fn refresh_and_give_up(h: &Harness, refresh: &str) {
    let impatient: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(50)))
        .build()
        .into();
    let result = impatient
        .post(h.url("/oauth/token"))
        .header("Authorization", basic("demo-client", SECRET))
        .send_form([("grant_type", "refresh_token"), ("refresh_token", refresh)]);
    assert!(result.is_err(), "the client gave up");
}

#[test]
fn a_delayed_request_changes_nothing_when_the_client_gives_up() {
    let h = harness();
    let (_, refresh) = h.tokens("users:read");
    h.server.control().inject(Fault::TokenDelay(300), 1);
    refresh_and_give_up(&h, &refresh);
    std::thread::sleep(Duration::from_millis(500));
    // The request was dropped with its connection before it was processed:
    // the refresh token was not rotated and still works.
    let stats = h.server.control().stats();
    assert_eq!((stats.refresh_attempts, stats.faults_served), (0, 1));
    assert_eq!(h.refresh(&refresh).status, 200);
}

/// `token-slow-answer` answers after the server acted: a client that gave
/// up meanwhile has still spent its refresh token, which was rotated.
#[test]
fn a_slow_answer_comes_after_the_request_was_processed() {
    let h = harness();
    let (_, refresh) = h.tokens("users:read");
    h.server.control().inject(Fault::TokenSlowAnswer(300), 1);
    refresh_and_give_up(&h, &refresh);
    let stats = h.server.control().stats();
    assert_eq!((stats.refreshes, stats.faults_served), (1, 1));
    assert_eq!(h.refresh(&refresh).error(), "invalid_grant");
}

#[test]
fn api_fault() {
    let h = harness();
    let (access, _) = h.tokens("users:read");
    h.server.control().inject(Fault::ApiServerError, 1);
    let reply = h.users(&access);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(h.users(&access).status, 200);
    // A token fault does not hit the API, nor an API fault the token endpoint.
    h.server.control().inject(Fault::TokenRateLimited, 1);
    assert_eq!(h.users(&access).status, 200);
    assert_eq!(h.server.control().stats().faults_served, 1);
}

#[test]
fn introspection() {
    let h = harness();
    let (access, refresh) = h.tokens("users:read expenses:read");
    let info = h.introspect(&access);
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["scope"], "users:read expenses:read");
    assert_eq!(info["client_id"], "demo-client");
    assert_eq!(info["exp"], T0 / 1000 + 3600);
    let info = h.introspect(&refresh);
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "refresh_token");

    assert_eq!(
        h.introspect("unknown"),
        serde_json::json!({ "active": false })
    );
    h.refresh(&refresh);
    assert_eq!(h.introspect(&access)["active"], false);
    assert_eq!(h.introspect(&refresh)["active"], false);

    let unauthenticated = h.post("/oauth/token/introspect", None, &[("token", &access)]);
    assert_eq!(unauthenticated.status, 401);
}

#[test]
fn revocation() {
    let h = harness();
    let (access, refresh) = h.tokens("users:read");
    let auth = basic("demo-client", SECRET);
    let reply = h.post(
        "/oauth/revoke",
        Some(&auth),
        &[("token", &refresh), ("token_type_hint", "refresh_token")],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(h.users(&access).status, 401);
    assert_eq!(h.refresh(&refresh).error(), "invalid_grant");

    // RFC 7009 §2.2: an unknown token is not an error.
    assert_eq!(
        h.post("/oauth/revoke", Some(&auth), &[("token", "x")])
            .status,
        200
    );
    let bad = h.post(
        "/oauth/revoke",
        Some(&basic("demo-client", "no")),
        &[("token", "x")],
    );
    assert_eq!((bad.status, bad.error().as_str()), (401, "invalid_client"));
    assert_eq!(h.server.control().stats().revocations, 2);

    // Revoking by the access token kills the refresh token too.
    let (access, refresh) = h.tokens("users:read");
    h.post("/oauth/revoke", Some(&auth), &[("token", &access)]);
    assert_eq!(h.refresh(&refresh).error(), "invalid_grant");
}

#[test]
fn http_control_endpoints() {
    let h = harness();
    let (access, refresh) = h.tokens("users:read");
    let control = |path: &str, form: &[(&str, &str)]| h.post(path, None, form).status;

    assert_eq!(
        control("/_mock/fault", &[("kind", "api-503"), ("count", "2")]),
        204
    );
    assert_eq!(h.users(&access).status, 503);
    assert_eq!(h.users(&access).status, 503);
    assert_eq!(h.users(&access).status, 200);
    assert_eq!(control("/_mock/fault", &[("kind", "token-429")]), 204);
    assert_eq!(h.refresh(&refresh).status, 429);
    assert_eq!(control("/_mock/fault", &[("kind", "token-503-html")]), 204);
    assert_eq!(h.refresh(&refresh).status, 503);
    assert_eq!(control("/_mock/fault", &[("kind", "token-error-200")]), 204);
    assert_eq!(h.refresh(&refresh).error(), "server_error");
    assert_eq!(
        control("/_mock/fault", &[("kind", "token-delay"), ("ms", "10")]),
        204
    );
    assert_eq!(control("/_mock/fault", &[("kind", "token-delay")]), 400);
    assert_eq!(
        control(
            "/_mock/fault",
            &[("kind", "token-slow-answer"), ("ms", "10")]
        ),
        204
    );
    assert_eq!(
        control("/_mock/fault", &[("kind", "token-slow-answer")]),
        400
    );
    assert_eq!(control("/_mock/fault", &[("kind", "nonsense")]), 400);
    let refreshed = h.refresh(&refresh).json();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();

    assert_eq!(control("/_mock/expire-access-tokens", &[]), 204);
    assert_eq!(h.users(&access).status, 401);

    assert_eq!(control("/_mock/rotate-client-secret", &[]), 400);
    assert_eq!(
        control("/_mock/rotate-client-secret", &[("secret", "n3w")]),
        204
    );
    assert_eq!(h.refresh(&refresh).status, 401);

    assert_eq!(control("/_mock/revoke-grants", &[]), 204);
    let reply = h.post(
        "/oauth/token",
        Some(&basic("demo-client", "n3w")),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(reply.error(), "invalid_grant");

    let stats = h.get("/_mock/stats");
    assert_eq!(stats.status, 200);
    let expected = serde_json::to_value(h.server.control().stats()).unwrap();
    assert_eq!(stats.json(), expected);
    assert_eq!(expected["faults_served"], 7);
    assert_eq!(expected["code_exchanges"], 1);

    let secrets = h.get("/_mock/issued-secrets").json();
    assert!(secrets.as_array().unwrap().iter().any(|s| s == "n3w"));
}

#[test]
fn issued_secrets_cover_codes_tokens_and_client_secrets() {
    let h = harness();
    let code = h.code("users:read");
    let json = h.exchange(&code).json();
    let secrets = h.server.control().issued_secrets();
    for secret in [
        code.as_str(),
        json["access_token"].as_str().unwrap(),
        json["refresh_token"].as_str().unwrap(),
        SECRET,
    ] {
        assert!(secrets.iter().any(|s| s == secret));
    }
}

#[test]
fn drop_shuts_the_server_down() {
    let h = harness();
    let url = h.url("/_mock/stats");
    assert_eq!(h.get("/_mock/stats").status, 200);
    let Harness { server, agent, .. } = h;
    drop(server);
    assert!(agent.get(url).call().is_err());
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MockServer>();
    check::<Control>();
    check::<MockConfig>();
}
