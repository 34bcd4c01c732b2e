//! The connection-lifecycle scenarios of `tests/vectors/lifecycle.json`:
//! steps against one connection (connect, move the clock, script the token
//! endpoint, call the gate, report API responses, disconnect, forget,
//! inject faults), each with its expected outcome in a language-neutral
//! form. Every scenario runs natively and through the component from
//! identical seeded backends; both must meet the expectations and leave the
//! same storage and events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pleo_oauth::connections::Reason;
use pleo_oauth::connections::{ApiAction, Bearer, DisconnectError, Refusal, Revocation};
use pleo_oauth::imports::clock::Clock;
use pleo_oauth::imports::http::{Http, ScriptedHttp};
use pleo_oauth::imports::storage::Storage;
use pleo_oauth::types::{Header, StorageError};
use pleo_oauth::types::{Request, Response, TransportError};
use pleo_oauth::{Backends, Instance};
use pleo_oauth_core::authorize::BeginOptions;
use serde::Deserialize;

use crate::Outcome;
use crate::callback::{Fixture, Flow, config_with, kebab, state_of};

/// One scenario.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LifecycleCase {
    pub name: String,
    pub spec: String,
    /// Changes to the default configuration (as in `callback.json`).
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    pub steps: Vec<Step>,
    pub expect: Final,
}

/// One step. Steps that call the component carry their expected outcome.
#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    deny_unknown_fields
)]
pub enum Step {
    /// `authorize.begin`, then `authorize.complete` with a valid callback
    /// while the token endpoint answers these tokens.
    Connect(Grant),
    /// Moves the clock (negative: backwards).
    AdvanceMs(i64),
    /// Queues token-endpoint (or revocation-endpoint) answers, in order.
    TokenEndpoint(Vec<Outcome>),
    /// `connections.access-token`, and its expected summary.
    AccessToken(String),
    /// `connections.report`.
    Report(ReportStep),
    /// `connections.disconnect`.
    Disconnect(DisconnectStep),
    /// `connections.forget`; must succeed.
    Forget,
    /// `connections.retry-now`; must succeed.
    RetryNow,
    /// `connections.status`: the listed members must match.
    Status(serde_json::Map<String, serde_json::Value>),
    /// Another worker took the refresh lease and crashed: writes
    /// `lease/{id}` as `{"holder":"crashed","until-ms":now+for-ms}`.
    HoldLease { for_ms: u64 },
    /// The next `times` writes to keys starting with `prefix` fail with
    /// `unavailable`.
    FailWrites { prefix: String, times: usize },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReportStep {
    /// The access token the API request carried.
    pub token: String,
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<Header>,
    pub expect: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DisconnectStep {
    pub revoke: bool,
    pub expect: String,
}

/// What must hold after the last step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Final {
    /// Requests sent outside `connect` steps: `"{url} {body}"`.
    pub requests: Vec<String>,
    /// Event kinds, in order (those of `connect` steps included).
    pub events: Vec<String>,
    /// Storage keys left, sorted; `flow/…` keys appear as `flow/*`.
    pub keys: Vec<String>,
}

/// The connection every scenario uses.
pub const CONNECTION: &str = "c1";

/// Runs one scenario; the error names the first step that differed.
pub fn run(case: &LifecycleCase, fixture: &Fixture, flow: &mut dyn Flow) -> Result<Final, String> {
    flow.configure(CONNECTION, &config_with(&case.config));
    let mut connect_requests = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        let now = fixture.clock.now_ms();
        let (got, expected) = match step {
            Step::Connect(grant) => {
                let before = fixture.http.sent().len();
                connect(fixture, flow, grant)?;
                connect_requests.extend(before..fixture.http.sent().len());
                continue;
            }
            Step::AdvanceMs(ms) => {
                let target = now.checked_add_signed(*ms).expect("clock in range");
                fixture.clock.set(target);
                continue;
            }
            Step::TokenEndpoint(answers) => {
                answers.iter().for_each(|a| fixture.http.push(a.answer()));
                continue;
            }
            Step::HoldLease { for_ms } => {
                let lease = serde_json::json!({"holder": "crashed", "until-ms": now + for_ms});
                let key = format!("lease/{CONNECTION}");
                let current = fixture.storage.get(&key).expect("get").map(|e| e.version);
                fixture
                    .storage
                    .put(&key, lease.to_string().as_bytes(), current)
                    .expect("lease");
                continue;
            }
            Step::FailWrites { prefix, times } => {
                for _ in 0..*times {
                    fixture
                        .storage
                        .fail_write(prefix, StorageError::Unavailable("injected".into()));
                }
                continue;
            }
            Step::Forget => {
                flow.forget(CONNECTION)
                    .map_err(|e| format!("step {index}: forget: {e}"))?;
                continue;
            }
            Step::RetryNow => {
                flow.retry_now(CONNECTION)
                    .map_err(|e| format!("step {index}: retry-now: {e}"))?;
                continue;
            }
            Step::AccessToken(expected) => {
                (access(&flow.access_token(CONNECTION)), expected.clone())
            }
            Step::Report(report) => (
                action(
                    &flow.report(CONNECTION, &report.token, report.status, &report.headers),
                    now,
                ),
                report.expect.clone(),
            ),
            Step::Disconnect(step) => (
                revocation(&flow.disconnect(CONNECTION, step.revoke)),
                step.expect.clone(),
            ),
            Step::Status(expected) => {
                let got = status(flow, now);
                for (key, value) in expected {
                    if got.get(key) != Some(value) {
                        return Err(format!(
                            "step {index}: status {key}: got {:?}, expected {value}",
                            got.get(key)
                        ));
                    }
                }
                continue;
            }
        };
        if got != expected {
            return Err(format!("step {index}: got {got:?}, expected {expected:?}"));
        }
    }
    let requests = fixture
        .http
        .sent()
        .iter()
        .enumerate()
        .filter(|(i, _)| !connect_requests.contains(i))
        .map(|(_, r)| format!("{} {}", r.url, String::from_utf8_lossy(&r.body)))
        .collect();
    let mut keys: Vec<String> = fixture
        .storage
        .snapshot()
        .into_keys()
        .map(|k| {
            if k.starts_with("flow/") {
                "flow/*".into()
            } else {
                k
            }
        })
        .collect();
    keys.sort();
    Ok(Final {
        requests,
        events: fixture.log.events().into_iter().map(|e| e.kind).collect(),
        keys,
    })
}

fn connect(fixture: &Fixture, flow: &mut dyn Flow, grant: &Grant) -> Result<(), String> {
    let authorization = flow.begin(CONNECTION, &BeginOptions::default());
    let mut body = serde_json::json!({
        "access_token": grant.access_token,
        "token_type": "Bearer",
    });
    if let Some(refresh) = &grant.refresh_token {
        body["refresh_token"] = refresh.clone().into();
    }
    if let Some(expires_in) = grant.expires_in {
        body["expires_in"] = expires_in.into();
    }
    fixture
        .http
        .push(Ok(crate::callback::token_json(200, &body.to_string())));
    let callback = format!("code=CODE-connect&state={}", state_of(&authorization));
    flow.complete(&callback, Some(CONNECTION))
        .map(|_| ())
        .map_err(|e| format!("connect: {e}"))
}

/// `token:<value>` or the refusal.
pub fn access(result: &Result<Bearer, Refusal>) -> String {
    match result {
        Ok(bearer) => format!("token:{}", bearer.token.expose()),
        Err(refusal) => refused(refusal),
    }
}

fn refused(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Reauthenticate(reason) => format!("reauthenticate:{}", kebab(reason)),
        Refusal::Wait { why, .. } => format!("wait:{}", kebab(why)),
        Refusal::ClientMisconfigured { fault, .. } => format!("client-misconfigured:{fault}"),
        Refusal::NotConnected(why) => format!("not-connected:{}", kebab(why)),
        Refusal::Storage(error) => format!("storage:{}", error.kind()),
    }
}

/// A retry time, relative to `now`, when the server gave one.
fn at(time: &Option<u64>, now: u64) -> String {
    time.map_or(String::new(), |t| format!("@+{}", t.saturating_sub(now)))
}

fn action(result: &Result<ApiAction, Refusal>, now: u64) -> String {
    match result {
        Ok(ApiAction::Proceed) => "proceed".into(),
        Ok(ApiAction::Retry(bearer)) => format!("retry:{}", bearer.token.expose()),
        Ok(ApiAction::InsufficientScope(scopes)) => {
            format!("insufficient-scope:{}", scopes.join(" "))
        }
        Ok(ApiAction::Forbidden) => "forbidden".into(),
        Ok(ApiAction::RateLimited(time)) => format!("rate-limited{}", at(time, now)),
        Ok(ApiAction::Transient(time)) => format!("transient{}", at(time, now)),
        Ok(ApiAction::RejectedAfterRefresh) => "rejected-after-refresh".into(),
        Err(refusal) => refused(refusal),
    }
}

fn revocation(result: &Result<Revocation, DisconnectError>) -> String {
    match result {
        Ok(Revocation::Failed(why)) => format!("failed:{why}"),
        Ok(other) => kebab(other),
        Err(DisconnectError::UnknownConnection) => "unknown-connection".into(),
        Err(DisconnectError::Storage(error)) => format!("storage:{}", error.kind()),
    }
}

/// The status as the vectors name its members; times relative to `now`.
fn status(flow: &mut dyn Flow, now: u64) -> serde_json::Map<String, serde_json::Value> {
    let view = flow.status(CONNECTION);
    let relative = |t: Option<u64>| t.map(|t| t as i64 - now as i64);
    let value = serde_json::json!({
        "state": kebab(&view.state),
        "reason": view.reason.map(|r| kebab(&r)),
        "failures": view.failures,
        "backing-off": view.next_retry_at_ms.is_some_and(|t| t > now),
        "refreshing": view.refreshing_until_ms.is_some(),
        "missing-scopes": view.missing_scopes,
        "scopes": view.scopes,
        "access-expires-in-ms": relative(view.access_expires_at_ms),
        "last-refresh-ago-ms": view.last_refresh_at_ms.map(|t| now as i64 - t as i64),
        "last-error": view.last_error,
        "outcome-unknown": view.refresh_outcome_unknown_since_ms.is_some(),
        "failing": view.failing_since_ms.is_some(),
        "fresh-token-rejections": view.fresh_token_rejections,
    });
    value.as_object().expect("an object").clone()
}

impl crate::Case for LifecycleCase {
    fn name(&self) -> &str {
        &self.name
    }

    fn spec(&self) -> &str {
        &self.spec
    }
}

/// A connection `c1` with tokens `AT-1`/`RT-1` for an hour, connected
/// through `flow` (the token endpoint scripted on the fixture's HTTP).
pub fn connected(fixture: &Fixture, flow: &mut dyn Flow) {
    flow.configure(CONNECTION, &config_with(&Default::default()));
    let authorization = flow.begin(CONNECTION, &Default::default());
    fixture.http.push(Ok(crate::callback::token_json(
        200,
        r#"{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-1"}"#,
    )));
    let state = state_of(&authorization);
    flow.complete(&format!("code=CODE&state={state}"), Some(CONNECTION))
        .expect("connected");
}

fn component(backends: &Backends) -> pleo_oauth::Instance {
    crate::runtime()
        .instance(backends.clone())
        .expect("an instance")
}

/// Single-flight across instances: 16 threads, each with its own instance
/// over `backends` (the fixture's, or the same with another storage), all
/// asking for a token of an expired connection at once. The one refresh is
/// held open until every other thread has its answer, so they all meet the
/// lease: exactly one request, and every thread gets the rotated token or a
/// wait; after the wait, all get the rotated token.
pub fn sixteen_threads_at_expiry(fixture: &Fixture, backends: &Backends) {
    const THREADS: usize = 16;
    let mut setup = component(backends);
    connected(fixture, &mut setup);
    fixture.clock.set(fixture.clock.now_ms() + 3_600_000 + 1);

    struct Gated {
        answered: Arc<AtomicUsize>,
        inner: ScriptedHttp,
    }
    impl Http for Gated {
        fn send(&self, request: Request) -> Result<Response, TransportError> {
            // A generous real-time guard only against a hang; the test never
            // waits on it when the code is right.
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.answered.load(Ordering::SeqCst) < THREADS - 1 && Instant::now() < deadline {
                std::thread::yield_now();
            }
            self.inner.send(request)
        }
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let http = Arc::new(Gated {
        answered: answered.clone(),
        inner: ScriptedHttp::default(),
    });
    http.inner.push(Ok(crate::callback::token_json(
        200,
        r#"{"access_token":"AT-2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}"#,
    )));
    let backends = Backends {
        http: http.clone(),
        ..backends.clone()
    };
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (backends, barrier, answered) =
                (backends.clone(), barrier.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut instance = component(&backends);
                barrier.wait();
                let first = instance.access_token(CONNECTION).unwrap();
                answered.fetch_add(1, Ordering::SeqCst);
                let first = access(&first);
                barrier.wait();
                (first, access(&instance.access_token(CONNECTION).unwrap()))
            })
        })
        .collect();
    let results: Vec<(String, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(http.inner.sent().len(), 1, "exactly one refresh request");
    let rotated = results
        .iter()
        .filter(|(first, _)| first == "token:AT-2")
        .count();
    let waited = results
        .iter()
        .filter(|(first, _)| first == "wait:refresh-in-progress")
        .count();
    assert_eq!((rotated, waited), (1, THREADS - 1), "{results:?}");
    assert!(results.iter().all(|(_, second)| second == "token:AT-2"));
}

/// A grant that dies while the user's settings stay (Pleo: `invalid_grant`
/// to a refresh is terminal): through the component, on whatever store the
/// fixture has, the refusal says why, the tokens are gone and the
/// configuration is kept.
pub fn dead_refresh_token_keeps_the_configuration(fixture: &Fixture, instance: &mut Instance) {
    connected(fixture, instance);
    fixture.clock.advance(3_600_000);
    fixture.http.push(Ok(crate::callback::token_json(
        400,
        r#"{"error":"invalid_grant","error_description":"revoked"}"#,
    )));
    assert_eq!(
        instance.access_token(CONNECTION).unwrap(),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
    assert_eq!(
        instance.get_config(CONNECTION).unwrap().unwrap(),
        Some(config_with(&Default::default()))
    );
    assert_eq!(fixture.storage.get("tokens/c1").unwrap(), None);
}
