//! The conformance harness: loads the language-neutral vectors in
//! `tests/vectors/` and turns them into core inputs and expected verdicts.
//!
//! The vector format is documented in `tests/vectors/README.md`; a host in
//! another language reads the same files. The tests in `tests/` run every
//! case natively against the core and through the component in wasmtime,
//! and require both to give the expected verdict.

use std::path::{Path, PathBuf};

use pleo_oauth_core::authorize::{UrlError, UrlParams, VerifierError};
use pleo_oauth_core::classify::{
    ApiAttempt, ApiOutcome, Challenge, ChallengeError, GrantKind, TokenOutcome,
};
use pleo_oauth_core::secret::Secret;
use pleo_oauth_core::types::{Header, Response, ResponseHead, TransportError};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The folder of the vector files.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// A vector file: one suite of cases.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Suite<C> {
    pub suite: String,
    pub description: String,
    pub cases: Vec<C>,
}

/// Loads `tests/vectors/{file}`, panicking with the file name on a bad file.
pub fn load<C: DeserializeOwned>(file: &str) -> Suite<C> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What every case carries: a unique name and the rule it checks.
pub trait Case {
    fn name(&self) -> &str;
    fn spec(&self) -> &str;
}

macro_rules! impl_case {
    ($($ty:ty),*) => {$(
        impl Case for $ty {
            fn name(&self) -> &str { &self.name }
            fn spec(&self) -> &str { &self.spec }
        }
    )*};
}
impl_case!(
    TokenCase,
    ApiCase,
    ChallengeCase,
    RetryAfterCase,
    AuthorizeCase
);

/// A response body: text, hex bytes, or text repeated (for size caps).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Body {
    Text(String),
    Hex(String),
    Repeat { text: String, count: usize },
}

impl Body {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Text(text) => text.as_bytes().to_vec(),
            Body::Hex(hex) => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("body hex"))
                .collect(),
            Body::Repeat { text, count } => text.repeat(*count).into_bytes(),
        }
    }
}

/// A response as a vector gives it. `body` defaults to empty.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ResponseSpec {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<Header>,
    pub body: Option<Body>,
}

/// Exactly one of a response and a transport error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Outcome {
    Response(ResponseSpec),
    TransportError(TransportError),
}

impl Outcome {
    /// The scripted answer: the response, or the transport error.
    pub fn answer(&self) -> Result<Response, TransportError> {
        match self {
            Outcome::Response(spec) => Ok(Response {
                status: spec.status,
                headers: spec.headers.clone(),
                body: spec.body.as_ref().map(Body::bytes).unwrap_or_default(),
            }),
            Outcome::TransportError(error) => Err(error.clone()),
        }
    }
}

/// `classify.token-response`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenCase {
    pub name: String,
    pub spec: String,
    pub grant: GrantKind,
    pub now_ms: u64,
    pub input: Outcome,
    pub expect: TokenOutcome,
}

impl TokenCase {
    pub fn response(&self) -> Result<Response, TransportError> {
        self.input.answer()
    }
}

/// `classify.api-response`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiCase {
    pub name: String,
    pub spec: String,
    pub attempt: ApiAttempt,
    pub now_ms: u64,
    pub input: Outcome,
    pub expect: ApiOutcome,
}

impl ApiCase {
    pub fn response(&self) -> Result<ResponseHead, TransportError> {
        match &self.input {
            Outcome::Response(spec) => {
                assert!(spec.body.is_none(), "{}: API cases have no body", self.name);
                Ok(ResponseHead {
                    status: spec.status,
                    headers: spec.headers.clone(),
                })
            }
            Outcome::TransportError(error) => Err(error.clone()),
        }
    }
}

/// `classify.www-authenticate`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChallengeCase {
    pub name: String,
    pub spec: String,
    pub values: Vec<String>,
    pub expect: ChallengeResult,
}

/// The expected result of parsing a `WWW-Authenticate` field.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChallengeResult {
    Ok(Vec<Challenge>),
    Err(ChallengeError),
}

impl From<Result<Vec<Challenge>, ChallengeError>> for ChallengeResult {
    fn from(result: Result<Vec<Challenge>, ChallengeError>) -> Self {
        match result {
            Ok(challenges) => ChallengeResult::Ok(challenges),
            Err(error) => ChallengeResult::Err(error),
        }
    }
}

/// `classify.retry-after`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetryAfterCase {
    pub name: String,
    pub spec: String,
    pub value: String,
    pub now_ms: u64,
    pub expect: Option<u64>,
}

/// An `authorize` case: exactly one of `s256-challenge` and `build-url`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthorizeCase {
    pub name: String,
    pub spec: String,
    pub s256_challenge: Option<S256Input>,
    pub build_url: Option<BuildUrlInput>,
}

/// The function an `authorize` case calls.
pub enum AuthorizeInput<'a> {
    S256Challenge(&'a S256Input),
    BuildUrl(&'a BuildUrlInput),
}

impl AuthorizeCase {
    /// The case's input, panicking unless exactly one function is given.
    pub fn input(&self) -> AuthorizeInput<'_> {
        match (&self.s256_challenge, &self.build_url) {
            (Some(input), None) => AuthorizeInput::S256Challenge(input),
            (None, Some(input)) => AuthorizeInput::BuildUrl(input),
            _ => panic!("{}: exactly one of s256-challenge and build-url", self.name),
        }
    }
}

/// `authorize.s256-challenge`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct S256Input {
    pub verifier: String,
    pub expect: S256Result,
}

/// The expected result of `s256-challenge`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum S256Result {
    Ok(String),
    Err(VerifierError),
}

impl From<Result<String, VerifierError>> for S256Result {
    fn from(result: Result<String, VerifierError>) -> Self {
        match result {
            Ok(challenge) => S256Result::Ok(challenge),
            Err(error) => S256Result::Err(error),
        }
    }
}

/// `authorize.build-url`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BuildUrlInput {
    pub params: UrlParamsSpec,
    pub expect: BuildUrlResult,
}

/// A WIT `url-params` record. `extra-params` defaults to empty.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UrlParamsSpec {
    pub authorize_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: String,
    pub code_challenge: String,
    #[serde(default)]
    pub extra_params: Vec<(String, String)>,
}

impl UrlParamsSpec {
    pub fn params(&self) -> UrlParams {
        UrlParams {
            authorize_url: self.authorize_url.clone(),
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scopes: self.scopes.clone(),
            state: Secret::new(self.state.clone()),
            code_challenge: self.code_challenge.clone(),
            extra_params: self.extra_params.clone(),
        }
    }
}

/// The expected result of `build-url`. The URL is compared in full (it
/// carries a test state, not a secret).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum BuildUrlResult {
    Ok(String),
    Err(UrlError),
}

impl From<Result<Secret, UrlError>> for BuildUrlResult {
    fn from(result: Result<Secret, UrlError>) -> Self {
        match result {
            Ok(url) => BuildUrlResult::Ok(url.into_exposed()),
            Err(error) => BuildUrlResult::Err(error),
        }
    }
}

/// The vector files and their suites.
pub const TOKEN_RESPONSE: &str = "token-response.json";
pub const API_RESPONSE: &str = "api-response.json";
pub const WWW_AUTHENTICATE: &str = "www-authenticate.json";
pub const RETRY_AFTER: &str = "retry-after.json";
pub const AUTHORIZE: &str = "authorize.json";

/// Runs `check` on every case and panics once, listing every failure, so a
/// broken implementation shows all its differences at once.
pub fn check_all<C: Case>(
    suite: &Suite<C>,
    mut check: impl FnMut(&C) -> Result<(), String>,
) -> usize {
    let failures: Vec<String> = suite
        .cases
        .iter()
        .filter_map(|case| {
            check(case)
                .err()
                .map(|why| format!("{} [{}]: {why}", case.name(), case.spec()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {} cases failed:\n{}",
        failures.len(),
        suite.cases.len(),
        suite.suite,
        failures.join("\n")
    );
    suite.cases.len()
}

/// `Ok` when `got` equals `expected`, else a message with both.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(got: &T, expected: &T) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, got {got:?}"))
    }
}

/// One runtime per test process, with its compiled-code cache in the target
/// folder so test binaries after the first skip compilation.
pub fn runtime() -> &'static pleo_oauth::Runtime {
    static RUNTIME: std::sync::OnceLock<pleo_oauth::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        let config = pleo_oauth::RuntimeConfig {
            cache_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-cache")),
            ..Default::default()
        };
        pleo_oauth::Runtime::new(config).expect("the component loads")
    })
}
pub mod callback;
pub mod lifecycle;
