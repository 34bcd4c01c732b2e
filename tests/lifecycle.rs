//! The connection lifecycle (the README's policy and states; RFC 6749 §6,
//! RFC 6750 §3.1, RFC 7009) through the component: the scenarios of
//! `tests/vectors/lifecycle.json` natively and through the component, and
//! the scenarios that need more than one worker: a lost rotation race
//! between two instances, and sixteen threads at expiry. Every wait is
//! driven by the manual clock; no test sleeps.

use std::sync::{Arc, Mutex};

use pleo_oauth::connections::{Reason, Refusal, State, WaitReason};
use pleo_oauth::imports::clock::Clock;
use pleo_oauth::imports::http::{Http, ScriptedHttp};
use pleo_oauth::types::{Request, Response, TransportError};
use pleo_oauth::{Backends, Instance};
use pleo_oauth_conformance::callback::{Fixture, Native, token_json};
use pleo_oauth_conformance::lifecycle::{self, CONNECTION, LifecycleCase};
use pleo_oauth_conformance::{check_all, expect_eq, load, runtime};
use pleo_oauth_core::connection::{LEASE_MS, MAX_CLOCK_SKEW_MS};

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn component(backends: &Backends) -> Instance {
    runtime().instance(backends.clone()).expect("an instance")
}

/// Every token value a scenario uses starts `AT-` or `RT-`, and every code
/// `CODE`: none may appear in any event.
fn assert_no_secrets(fixture: &Fixture) -> Result<(), String> {
    for event in fixture.log.events() {
        let text = format!("{event:?}");
        if ["AT-", "RT-", "CODE"].iter().any(|s| text.contains(s)) {
            return Err(format!("a secret in an event: {text}"));
        }
    }
    Ok(())
}

#[test]
fn lifecycle_vectors() {
    let suite = load::<LifecycleCase>("lifecycle.json");
    let count = check_all(&suite, |case| {
        let native = Fixture::new();
        let native_final = lifecycle::run(case, &native, &mut Native(&native))
            .map_err(|e| format!("native: {e}"))?;
        let wasm = Fixture::new();
        let wasm_final = lifecycle::run(case, &wasm, &mut component(&wasm.backends))
            .map_err(|e| format!("component: {e}"))?;
        expect_eq(&native_final, &case.expect).map_err(|e| format!("native: {e}"))?;
        expect_eq(&wasm_final, &case.expect).map_err(|e| format!("component: {e}"))?;
        expect_eq(&wasm.storage.snapshot(), &native.storage.snapshot())
            .map_err(|e| format!("storage: {e}"))?;
        expect_eq(&wasm.log.events(), &native.log.events()).map_err(|e| format!("events: {e}"))?;
        assert_no_secrets(&wasm)
    });
    assert!(count >= 25, "{count} scenarios");
}

/// The token endpoint answers the next refresh with `AT-2`/`RT-2`, and the
/// gate serves `AT-2`.
fn refreshed_to_at_2(fixture: &Fixture, instance: &mut Instance) {
    fixture.http.push(Ok(token_json(
        200,
        r#"{"access_token":"AT-2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}"#,
    )));
    assert_eq!(
        token(instance.access_token(CONNECTION).unwrap()),
        "token:AT-2"
    );
}

fn token(result: Result<pleo_oauth::connections::Bearer, Refusal>) -> String {
    lifecycle::access(&result)
}

/// Pleo: transient failures are backed off, never a reason to
/// re-authenticate. Fifty in
/// a row through the component: the back-off ceiling grows to its 5-minute
/// cap, the access token is served until it expires and refused (wait)
/// after, nothing is sent during a back-off, and one success clears it all.
#[test]
fn storm_of_50_transient_failures_never_reauthenticates() {
    let fixture = Fixture::new();
    let mut instance = component(&fixture.backends);
    lifecycle::connected(&fixture, &mut instance);
    let answers = [
        Ok(Response {
            status: 503,
            headers: vec![],
            body: b"<html>maintenance</html>".to_vec(),
        }),
        Ok(token_json(200, r#"{"error":"temporarily_unavailable"}"#)),
        Err(TransportError::Timeout),
        Ok(Response {
            status: 429,
            headers: vec![],
            body: vec![],
        }),
        Ok(token_json(200, "{not json")),
    ];
    fixture.clock.set(NOW + HOUR - 60_000);
    let mut waits = Vec::new();
    for attempt in 1..=50u32 {
        let now = fixture.clock.now_ms();
        fixture
            .http
            .push(answers[attempt as usize % answers.len()].clone());
        let result = instance.access_token(CONNECTION).unwrap();
        let status = instance.status(CONNECTION).unwrap().unwrap();
        assert_eq!(status.state, State::Degraded);
        assert_eq!(status.failures, attempt);
        assert_eq!(status.reason, None);
        let retry_at = status.next_retry_at_ms.unwrap();
        let ceiling = 2_000u64
            .saturating_mul(1 << (attempt - 1).min(20))
            .min(300_000);
        assert!(
            (now + 1_000..=now + ceiling).contains(&retry_at),
            "attempt {attempt}: wait {} outside [1 s, {ceiling} ms]",
            retry_at - now
        );
        waits.push(retry_at - now);
        if now < NOW + HOUR {
            assert_eq!(token(result), "token:AT-1", "served until expiry");
        } else {
            assert_eq!(
                result,
                Err(Refusal::Wait {
                    until_ms: retry_at,
                    why: WaitReason::BackingOff
                })
            );
        }
        fixture.clock.set(retry_at - 1);
        let sent = fixture.http.sent().len();
        let _ = instance.access_token(CONNECTION).unwrap();
        assert_eq!(
            fixture.http.sent().len(),
            sent,
            "nothing sent while backing off"
        );
        fixture.clock.set(retry_at);
    }
    assert!(
        waits[40..].iter().max() > waits[..5].iter().max(),
        "the back-off grows: {waits:?}"
    );
    assert!(waits.iter().all(|&w| w <= 300_000), "capped at 5 minutes");
    let kinds: Vec<String> = fixture.log.events().into_iter().map(|e| e.kind).collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k == "reauth-required" || k == "revocation-detected")
    );
    assert_eq!(kinds.iter().filter(|k| *k == "refresh-failed").count(), 50);

    refreshed_to_at_2(&fixture, &mut instance);
    let status = instance.status(CONNECTION).unwrap().unwrap();
    assert_eq!(
        (status.state, status.failures, status.next_retry_at_ms),
        (State::Connected, 0, None)
    );
    assert_no_secrets(&fixture).unwrap();
}

/// An HTTP backend that lets another worker act while this worker's
/// refresh is in flight, then answers from a script.
struct Interleaved {
    during: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    then: ScriptedHttp,
}

impl Http for Interleaved {
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        if let Some(other) = self.during.lock().unwrap().take() {
            other();
        }
        self.then.send(request)
    }
}

/// Two instances lose a rotation race: worker A's refresh request hangs
/// past its lease (beyond the host's timeout, outside the single-flight
/// bound); worker B, another instance on the same storage, takes the lapsed
/// lease and rotates; A's request with the rotated-away token is refused.
///
/// A does not serve B's tokens blindly (issue: a stale send makes a server
/// with reuse detection revoke the whole grant, B's tokens included): it
/// confirms them with one refresh first. `strict` plays Pleo (the
/// confirmation is refused: the grant died of reuse, and A says so);
/// otherwise the grant survived and A serves the confirmed tokens.
fn lost_rotation_race_between_two_instances(strict: bool) -> Vec<String> {
    let fixture = Fixture::new();
    let mut setup = component(&fixture.backends);
    lifecycle::connected(&fixture, &mut setup);

    let b_http = Arc::new(ScriptedHttp::default());
    b_http.push(Ok(token_json(
        200,
        r#"{"access_token":"AT-B","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-B"}"#,
    )));
    let b_backends = Backends {
        http: b_http.clone(),
        ..fixture.backends.clone()
    };
    let b = Arc::new(Mutex::new(component(&b_backends)));
    let b_result = Arc::new(Mutex::new(None));
    let a_http = Arc::new(Interleaved {
        during: Mutex::new(None),
        then: ScriptedHttp::default(),
    });
    a_http
        .then
        .push(Ok(token_json(400, r#"{"error":"invalid_grant"}"#)));
    a_http.then.push(Ok(if strict {
        token_json(400, r#"{"error":"invalid_grant"}"#)
    } else {
        token_json(
            200,
            r#"{"access_token":"AT-C","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-C"}"#,
        )
    }));
    {
        let (b, b_result, clock) = (b.clone(), b_result.clone(), fixture.clock.clone());
        *a_http.during.lock().unwrap() = Some(Box::new(move || {
            clock.advance(LEASE_MS + MAX_CLOCK_SKEW_MS);
            let result = b.lock().unwrap().access_token(CONNECTION).unwrap();
            *b_result.lock().unwrap() = Some(result);
        }));
    }
    let mut a = component(&Backends {
        http: a_http.clone(),
        ..fixture.backends.clone()
    });
    fixture.clock.set(NOW + HOUR);
    let a_result = a.access_token(CONNECTION).unwrap();
    assert_eq!(
        token(b_result.lock().unwrap().take().unwrap()),
        "token:AT-B"
    );
    // A's lease is gone (B took it over and released it): A sends nothing
    // more, and B's tokens, now marked unconfirmed, are not served.
    assert_eq!(token(a_result), "wait:refresh-in-progress");
    // The next call confirms them, under a lease of its own.
    let confirmed = a.access_token(CONNECTION).unwrap();
    let bodies: Vec<String> = a_http
        .then
        .sent()
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "grant_type=refresh_token&refresh_token=RT-1",
            "grant_type=refresh_token&refresh_token=RT-B"
        ],
        "A confirms B's tokens with one refresh"
    );
    let status = a.status(CONNECTION).unwrap().unwrap();
    if strict {
        assert_eq!(token(confirmed), "reauthenticate:refresh-token-reused");
        assert_eq!(
            (status.state, status.reason),
            (State::ReauthRequired, Some(Reason::RefreshTokenReused))
        );
        assert_eq!(
            token(a.access_token(CONNECTION).unwrap()),
            "reauthenticate:refresh-token-reused",
            "the dead tokens are never served"
        );
    } else {
        assert_eq!(token(confirmed), "token:AT-C");
        assert_eq!((status.state, status.reason), (State::Connected, None));
        assert_eq!(token(a.access_token(CONNECTION).unwrap()), "token:AT-C");
    }
    assert_no_secrets(&fixture).unwrap();
    fixture.log.events().into_iter().map(|e| e.kind).collect()
}

#[test]
fn lost_rotation_race_under_reuse_detection_ends_honestly_in_reauthentication() {
    let kinds = lost_rotation_race_between_two_instances(true);
    assert!(
        kinds.contains(&"rotation-race-detected".to_owned()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"rotation-race-recovered".to_owned()));
    assert!(kinds.contains(&"reauth-required".to_owned()));
}

#[test]
fn lost_rotation_race_with_a_live_grant_recovers_after_confirming() {
    let kinds = lost_rotation_race_between_two_instances(false);
    assert!(
        kinds.contains(&"rotation-race-recovered".to_owned()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"reauth-required".to_owned()));
}

/// Single-flight across instances: 16 threads, each with its own instance,
/// one storage, all asking for a token of an expired connection at once:
/// exactly one refresh request (`lifecycle::sixteen_threads_at_expiry`).
#[test]
fn sixteen_threads_at_expiry_send_one_refresh() {
    let fixture = Fixture::new();
    lifecycle::sixteen_threads_at_expiry(&fixture, &fixture.backends);
}

/// Reuse detection never trips with two workers: Pleo's token endpoint
/// invalidates the grant when a refresh token is presented twice; one
/// worker refreshes, the other sees the rotated tokens.
#[test]
fn two_workers_in_turn_never_reuse_a_refresh_token() {
    let fixture = Fixture::new();
    let mut a = component(&fixture.backends);
    let mut b = component(&fixture.backends);
    lifecycle::connected(&fixture, &mut a);
    let mut expected = 1;
    for round in 2..=6 {
        fixture.clock.set(NOW + (round - 1) * HOUR);
        fixture.http.push(Ok(token_json(
            200,
            &format!(r#"{{"access_token":"AT-{round}","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-{round}"}}"#),
        )));
        let (first, second) = if round % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        assert_eq!(
            token(first.access_token(CONNECTION).unwrap()),
            format!("token:AT-{round}")
        );
        assert_eq!(
            token(second.access_token(CONNECTION).unwrap()),
            format!("token:AT-{round}")
        );
        expected += 1;
    }
    let refresh_tokens: Vec<String> = fixture
        .http
        .sent()
        .iter()
        .skip(1)
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(refresh_tokens.len(), expected - 1);
    let distinct: std::collections::BTreeSet<_> = refresh_tokens.iter().collect();
    assert_eq!(
        distinct.len(),
        refresh_tokens.len(),
        "no refresh token sent twice"
    );
}

/// The guest's heap starts inside its initial memory, so a connection's
/// whole life (configure, authorise, serve, refresh with rotation, report a
/// 401, revocation) never grows linear memory: a host that pools instances
/// pays no `mprotect` to grow and shrink a fresh one (README, "Benchmarks").
#[test]
fn a_connections_whole_life_never_grows_guest_memory() {
    let fixture = Fixture::new();
    let mut instance = component(&fixture.backends);
    let initial = instance.memory_bytes();
    assert!(initial > 0, "the instance reports its memory");
    lifecycle::connected(&fixture, &mut instance);
    assert_eq!(
        token(instance.access_token(CONNECTION).unwrap()),
        "token:AT-1"
    );
    fixture.clock.set(NOW + HOUR + 1);
    refreshed_to_at_2(&fixture, &mut instance);
    fixture.http.push(Ok(token_json(
        400,
        r#"{"error":"invalid_grant","error_description":"revoked"}"#,
    )));
    let _ = instance.report(CONNECTION, "AT-2", 401, &[]).unwrap();
    assert_eq!(
        instance.access_token(CONNECTION).unwrap(),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
    assert_eq!(instance.instantiations(), 1);
    assert_eq!(instance.memory_bytes(), initial, "memory grew");
}

/// A grant that dies while the user's settings stay: `invalid_grant`
/// through the component, with the reason, and the config intact.
#[test]
fn dead_refresh_token_keeps_the_configuration() {
    let fixture = Fixture::new();
    let mut instance = component(&fixture.backends);
    lifecycle::dead_refresh_token_keeps_the_configuration(&fixture, &mut instance);
}
