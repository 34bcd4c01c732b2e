//! The authorisation-flow scenarios of `tests/vectors/callback.json`: a
//! connection is configured, an authorisation begun, a callback (built from
//! the real `state`) completed, and the outcome summarised in a
//! language-neutral form. The same scenario runs natively (the core over the
//! host's backends) and through the component, from identical seeded
//! backends, so both must produce the same result, storage and events; and
//! through the component's `steps` export ([`Stepped`]), the third way.

use std::sync::Arc;

use pleo_oauth::authorize::{BeginOptions, CompleteError, ExchangeFailure};
use pleo_oauth::connections::{
    ApiAction, Bearer, ConnectionConfig, DisconnectError, Refusal, Revocation, StorageError,
};
use pleo_oauth::imports::clock::{Clock, ManualClock};
use pleo_oauth::imports::http::{Http, ScriptedHttp};
use pleo_oauth::imports::log::{CollectingLog, Log};
use pleo_oauth::imports::random::{Random, SeededRandom};
use pleo_oauth::imports::storage::{Faulty, MemoryStorage, Storage};
use pleo_oauth::native::NativeIo;
use pleo_oauth::steps::{Call, Outcome as StepOutcome, Step};
use pleo_oauth::types::{Entry, Event, Header, Request, Response, ResponseHead, TransportError};
use pleo_oauth::{Backends, Instance};
use pleo_oauth_core::authorize;
use pleo_oauth_core::connection;
pub use pleo_oauth_core::events::kebab;
use serde::Deserialize;

use crate::Outcome;

/// One scenario.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CallbackCase {
    pub name: String,
    pub spec: String,
    /// The connection id; default `c1`.
    #[serde(default = "default_connection")]
    pub connection: String,
    /// Changes to the default configuration (merged as JSON members).
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// A status record to store before the scenario (as in storage).
    pub status: Option<serde_json::Value>,
    /// `begin` options; `return-to` and `extra-scopes` only.
    #[serde(default)]
    pub begin: BeginSpec,
    /// Begin a second authorisation after the first (superseding it).
    #[serde(default)]
    pub begin_twice: bool,
    /// Milliseconds the clock moves between begin and the callback.
    #[serde(default)]
    pub advance_ms: u64,
    /// The callback's query string; `{state}` is replaced by the first
    /// authorisation's state.
    pub callback: String,
    /// `complete`'s expected connection.
    pub expected_connection: Option<String>,
    /// The token endpoint's answer, when the scenario reaches the exchange.
    pub token_endpoint: Option<Outcome>,
    /// Complete the same callback a second time.
    #[serde(default)]
    pub replay: bool,
    pub expect: Summary,
}

fn default_connection() -> String {
    "c1".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BeginSpec {
    #[serde(default)]
    pub extra_scopes: Vec<String>,
    pub return_to: Option<String>,
}

/// The language-neutral outcome of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Summary {
    /// `completed`, `rejected:<reason>`, `denied:<code>`,
    /// `exchange-failed:<verdict>` or `storage`.
    pub result: String,
    /// `completed.recovered`.
    #[serde(default)]
    pub recovered: bool,
    /// The connection's state afterwards.
    pub state: String,
    /// The reason kept in the status afterwards.
    pub reason: Option<String>,
    /// Requests sent to the token endpoint.
    pub token_requests: usize,
    /// The replay's result, when `replay`.
    pub replay: Option<String>,
    /// Event kinds emitted, in order.
    pub events: Vec<String>,
}

/// The default configuration, a confidential staging client.
pub fn default_config() -> serde_json::Value {
    serde_json::json!({
        "environment": "staging",
        "client-id": "client-123",
        "client-type": "confidential",
        "redirect-uri": "https://app.example/callback",
        "scopes": ["users:read", "export-jobs:write"],
        "issuer": null,
        "require-iss": false,
        "settings": [["ledger", "4000"]]
    })
}

/// Deterministic backends for one run.
pub struct Fixture {
    pub backends: Backends,
    /// The store, with fault injection: in memory unless made
    /// [`over`](Fixture::over) another.
    pub storage: Arc<Faulty>,
    pub http: Arc<ScriptedHttp>,
    pub log: Arc<CollectingLog>,
    pub clock: Arc<ManualClock>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::over(Arc::new(MemoryStorage::default()))
    }

    /// A fixture whose storage is `store` (SQLite, PostgreSQL), so that a
    /// scenario runs on a real backend unchanged.
    pub fn over(store: Arc<dyn Storage>) -> Self {
        let storage = Arc::new(Faulty::new(store));
        let http = Arc::new(ScriptedHttp::default());
        let log = Arc::new(CollectingLog::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let backends = Backends {
            http: http.clone(),
            storage: storage.clone(),
            clock: clock.clone(),
            random: Arc::new(SeededRandom::new(42)),
            log: log.clone(),
        };
        Self {
            backends,
            storage,
            http,
            log,
            clock,
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The calls a scenario makes, natively or through the component.
pub trait Flow {
    fn configure(&mut self, connection: &str, config: &ConnectionConfig);
    fn begin(&mut self, connection: &str, options: &BeginOptions) -> authorize::Authorization;
    fn complete(
        &mut self,
        callback: &str,
        expected: Option<&str>,
    ) -> Result<authorize::Completed, CompleteError>;
    fn status(&mut self, connection: &str) -> connection::StatusView;
    fn access_token(&mut self, connection: &str) -> Result<Bearer, Refusal>;
    fn report(
        &mut self,
        connection: &str,
        token: &str,
        status: u16,
        headers: &[Header],
    ) -> Result<ApiAction, Refusal>;
    fn disconnect(&mut self, connection: &str, revoke: bool)
    -> Result<Revocation, DisconnectError>;
    fn forget(&mut self, connection: &str) -> Result<(), StorageError>;
    fn retry_now(&mut self, connection: &str) -> Result<(), connection::StatusError>;
    fn list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<connection::ConnectionPage, StorageError>;
}

/// The core, natively, over the fixture's backends; time from its clock.
pub struct Native<'a>(pub &'a Fixture);

impl Native<'_> {
    fn now(&self) -> u64 {
        use pleo_oauth::imports::clock::Clock;
        self.0.clock.now_ms()
    }
}

impl Flow for Native<'_> {
    fn configure(&mut self, connection: &str, config: &ConnectionConfig) {
        connection::configure(&mut NativeIo(&self.0.backends), connection, config)
            .expect("configure");
    }

    fn begin(&mut self, connection: &str, options: &BeginOptions) -> authorize::Authorization {
        let now = self.now();
        authorize::begin(&mut NativeIo(&self.0.backends), now, connection, options).expect("begin")
    }

    fn complete(
        &mut self,
        callback: &str,
        expected: Option<&str>,
    ) -> Result<authorize::Completed, CompleteError> {
        let now = self.now();
        authorize::complete(&mut NativeIo(&self.0.backends), now, callback, expected)
    }

    fn status(&mut self, connection: &str) -> connection::StatusView {
        let now = self.now();
        connection::status_view(&mut NativeIo(&self.0.backends), now, connection).expect("status")
    }

    fn access_token(&mut self, connection: &str) -> Result<Bearer, Refusal> {
        let now = self.now();
        connection::access_token(&mut NativeIo(&self.0.backends), now, connection)
    }

    fn report(
        &mut self,
        connection: &str,
        token: &str,
        status: u16,
        headers: &[Header],
    ) -> Result<ApiAction, Refusal> {
        let now = self.now();
        let head = ResponseHead {
            status,
            headers: headers.to_vec(),
        };
        connection::report(
            &mut NativeIo(&self.0.backends),
            now,
            connection,
            token,
            &head,
        )
    }

    fn disconnect(
        &mut self,
        connection: &str,
        revoke: bool,
    ) -> Result<Revocation, DisconnectError> {
        let now = self.now();
        connection::disconnect(&mut NativeIo(&self.0.backends), now, connection, revoke)
    }

    fn forget(&mut self, connection: &str) -> Result<(), StorageError> {
        connection::forget(&mut NativeIo(&self.0.backends), connection)
    }

    fn list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<connection::ConnectionPage, StorageError> {
        let now = self.now();
        connection::list(&mut NativeIo(&self.0.backends), now, after, limit)
    }

    fn retry_now(&mut self, connection: &str) -> Result<(), connection::StatusError> {
        let now = self.now();
        connection::retry_now(&mut NativeIo(&self.0.backends), now, connection)
    }
}

impl Flow for Instance {
    fn configure(&mut self, connection: &str, config: &ConnectionConfig) {
        Instance::configure(self, connection, config)
            .expect("no trap")
            .expect("configure");
    }

    fn begin(&mut self, connection: &str, options: &BeginOptions) -> authorize::Authorization {
        Instance::begin(self, connection, options)
            .expect("no trap")
            .expect("begin")
    }

    fn complete(
        &mut self,
        callback: &str,
        expected: Option<&str>,
    ) -> Result<authorize::Completed, CompleteError> {
        Instance::complete(self, callback, expected).expect("no trap")
    }

    fn status(&mut self, connection: &str) -> connection::StatusView {
        Instance::status(self, connection)
            .expect("no trap")
            .expect("status")
    }

    fn access_token(&mut self, connection: &str) -> Result<Bearer, Refusal> {
        Instance::access_token(self, connection).expect("no trap")
    }

    fn report(
        &mut self,
        connection: &str,
        token: &str,
        status: u16,
        headers: &[Header],
    ) -> Result<ApiAction, Refusal> {
        Instance::report(self, connection, token, status, headers).expect("no trap")
    }

    fn disconnect(
        &mut self,
        connection: &str,
        revoke: bool,
    ) -> Result<Revocation, DisconnectError> {
        Instance::disconnect(self, connection, revoke).expect("no trap")
    }

    fn forget(&mut self, connection: &str) -> Result<(), StorageError> {
        Instance::forget(self, connection).expect("no trap")
    }

    fn list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<connection::ConnectionPage, StorageError> {
        Instance::list(self, after, limit).expect("no trap")
    }

    fn retry_now(&mut self, connection: &str) -> Result<(), connection::StatusError> {
        Instance::retry_now(self, connection).expect("no trap")
    }
}

/// The `state` parameter of an authorisation URL.
pub fn state_of(authorization: &authorize::Authorization) -> String {
    authorization.state().expect("a state").into_exposed()
}

/// The default configuration with a vector's changes merged in.
pub fn config_with(changes: &serde_json::Map<String, serde_json::Value>) -> ConnectionConfig {
    let mut config = default_config();
    for (key, value) in changes {
        config[key] = value.clone();
    }
    serde_json::from_value(config).expect("a valid config in the vector")
}

/// Runs one scenario on `flow` over `fixture`.
pub fn run(case: &CallbackCase, fixture: &Fixture, flow: &mut dyn Flow) -> Summary {
    flow.configure(&case.connection, &config_with(&case.config));
    if let Some(status) = &case.status {
        let bytes = serde_json::to_vec(status).expect("json");
        fixture
            .storage
            .put(&format!("status/{}", case.connection), &bytes, None)
            .expect("preset status");
    }
    let options = BeginOptions {
        extra_scopes: case.begin.extra_scopes.clone(),
        return_to: case.begin.return_to.clone(),
        ..BeginOptions::default()
    };
    let first = flow.begin(&case.connection, &options);
    if case.begin_twice {
        flow.begin(&case.connection, &options);
    }
    fixture.clock.advance(case.advance_ms);
    if let Some(answer) = &case.token_endpoint {
        fixture.http.push(answer.answer());
    }
    let callback = case.callback.replace("{state}", &state_of(&first));
    let result = flow.complete(&callback, case.expected_connection.as_deref());
    let recovered = result.as_ref().is_ok_and(|c| c.recovered);
    let replay = case
        .replay
        .then(|| summarise(&flow.complete(&callback, None)));
    let status = flow.status(&case.connection);
    Summary {
        result: summarise(&result),
        recovered,
        state: kebab(&status.state),
        reason: status.reason.map(|r| kebab(&r)),
        token_requests: fixture.http.sent().len(),
        replay,
        events: fixture.log.events().into_iter().map(|e| e.kind).collect(),
    }
}

fn summarise(result: &Result<authorize::Completed, CompleteError>) -> String {
    match result {
        Ok(_) => "completed".into(),
        Err(CompleteError::Rejected(r)) => format!("rejected:{}", kebab(&r.reason)),
        Err(CompleteError::Denied { error, .. }) => format!("denied:{}", error.code.as_str()),
        Err(CompleteError::ExchangeFailed { failure, .. }) => format!(
            "exchange-failed:{}",
            match failure {
                ExchangeFailure::Reauthenticate(_) => "reauthenticate",
                ExchangeFailure::ClientMisconfigured(_) => "client-misconfigured",
                ExchangeFailure::RequestInvalid(_) => "request-invalid",
                ExchangeFailure::CredentialsMissing => "credentials-missing",
                ExchangeFailure::Transient(_) => "transient",
            }
        ),
        Err(CompleteError::Storage(_)) => "storage".into(),
    }
}

/// A JSON token response.
pub fn token_json(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: vec![Header::new("Content-Type", "application/json")],
        body: body.as_bytes().to_vec(),
    }
}

impl crate::Case for CallbackCase {
    fn name(&self) -> &str {
        &self.name
    }

    fn spec(&self) -> &str {
        &self.spec
    }
}

/// The component driven through its `steps` export: each call is an
/// operation, and every effect is performed by this driver with `backends`
/// (the fixture's), never through an import. The instance may have
/// [`trapping_backends`]: then any import the component called would fail
/// the test.
pub struct Stepped<'a> {
    pub instance: &'a mut Instance,
    pub backends: Backends,
}

impl Stepped<'_> {
    /// Runs one operation to its end, performing each effect.
    pub fn run(&mut self, call: Call) -> StepOutcome {
        let operation = self.instance.start(call).expect("no trap");
        let mut result = None;
        loop {
            let step = self
                .instance
                .next(&operation, result.take())
                .expect("no trap")
                .expect("each effect is answered in its case");
            match step {
                Step::Done(outcome) => {
                    self.instance.finish(operation).expect("no trap");
                    return outcome;
                }
                Step::Effect(effect) => {
                    let answer = pleo_oauth::steps::perform(&self.backends, effect)
                        .expect("an effect within the contract");
                    result = Some(answer);
                }
            }
        }
    }
}

fn other_case(outcome: StepOutcome) -> ! {
    panic!("an outcome of another case: {outcome:?}")
}

impl Flow for Stepped<'_> {
    fn configure(&mut self, connection: &str, config: &ConnectionConfig) {
        let call = Call::Configure {
            connection: connection.to_owned(),
            config: config.clone(),
        };
        match self.run(call) {
            StepOutcome::Configure(result) => result.expect("configure"),
            other => other_case(other),
        }
    }

    fn begin(&mut self, connection: &str, options: &BeginOptions) -> authorize::Authorization {
        let call = Call::Begin {
            connection: connection.to_owned(),
            options: options.clone(),
        };
        match self.run(call) {
            StepOutcome::Begin(result) => result.expect("begin"),
            other => other_case(other),
        }
    }

    fn complete(
        &mut self,
        callback: &str,
        expected: Option<&str>,
    ) -> Result<authorize::Completed, CompleteError> {
        let call = Call::Complete {
            callback: callback.to_owned(),
            connection: expected.map(str::to_owned),
        };
        match self.run(call) {
            StepOutcome::Complete(result) => result,
            other => other_case(other),
        }
    }

    fn status(&mut self, connection: &str) -> connection::StatusView {
        match self.run(Call::Status(connection.to_owned())) {
            StepOutcome::Status(result) => result.expect("status"),
            other => other_case(other),
        }
    }

    fn access_token(&mut self, connection: &str) -> Result<Bearer, Refusal> {
        match self.run(Call::AccessToken(connection.to_owned())) {
            StepOutcome::AccessToken(result) => result,
            other => other_case(other),
        }
    }

    fn report(
        &mut self,
        connection: &str,
        token: &str,
        status: u16,
        headers: &[Header],
    ) -> Result<ApiAction, Refusal> {
        let call = Call::Report {
            connection: connection.to_owned(),
            access_token: token.to_owned(),
            status,
            headers: headers.to_vec(),
        };
        match self.run(call) {
            StepOutcome::Report(result) => result,
            other => other_case(other),
        }
    }

    fn disconnect(
        &mut self,
        connection: &str,
        revoke: bool,
    ) -> Result<Revocation, DisconnectError> {
        let call = Call::Disconnect {
            connection: connection.to_owned(),
            revoke,
        };
        match self.run(call) {
            StepOutcome::Disconnect(result) => result,
            other => other_case(other),
        }
    }

    fn forget(&mut self, connection: &str) -> Result<(), StorageError> {
        match self.run(Call::Forget(connection.to_owned())) {
            StepOutcome::Forget(result) => result,
            other => other_case(other),
        }
    }

    fn list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<connection::ConnectionPage, StorageError> {
        let call = Call::List {
            after: after.map(str::to_owned),
            limit,
        };
        match self.run(call) {
            StepOutcome::List(result) => result,
            other => other_case(other),
        }
    }

    fn retry_now(&mut self, connection: &str) -> Result<(), connection::StatusError> {
        match self.run(Call::RetryNow(connection.to_owned())) {
            StepOutcome::RetryNow(result) => result,
            other => other_case(other),
        }
    }
}

/// Backends that fail the test when used: for an instance driven only
/// through `steps`, whose imports must never be called.
pub fn trapping_backends() -> Backends {
    struct Trap;
    fn called(import: &str) -> ! {
        panic!("the `{import}` import was called on the steps path")
    }
    impl Storage for Trap {
        fn get(&self, _: &str) -> Result<Option<Entry>, StorageError> {
            called("storage.get")
        }
        fn put(&self, _: &str, _: &[u8], _: Option<u64>) -> Result<u64, StorageError> {
            called("storage.put")
        }
        fn delete(&self, _: &str, _: u64) -> Result<(), StorageError> {
            called("storage.delete")
        }
        fn keys(&self, _: &str, _: Option<&str>, _: u32) -> Result<Vec<String>, StorageError> {
            called("storage.keys")
        }
    }
    impl Http for Trap {
        fn send(&self, _: Request) -> Result<Response, TransportError> {
            called("http.send")
        }
    }
    impl Clock for Trap {
        fn now_ms(&self) -> u64 {
            called("clock.now-ms")
        }
        fn sleep_ms(&self, _: u32) {
            called("clock.sleep-ms")
        }
    }
    impl Random for Trap {
        fn fill(&self, _: &mut [u8]) {
            called("random.bytes")
        }
    }
    impl Log for Trap {
        fn emit(&self, _: Event) {
            called("log.emit")
        }
    }
    let trap = Arc::new(Trap);
    Backends {
        http: trap.clone(),
        storage: trap.clone(),
        clock: trap.clone(),
        random: trap.clone(),
        log: trap,
    }
}
