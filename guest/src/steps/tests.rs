//! The loop's rules, and the step path against the synchronous one: the
//! same operations on the same fake world give the same outcomes, the same
//! stored state, the same events and the same requests.

use super::*;
use crate::connection::config::tests::config;
use crate::connection::{LEASE_MS, MAX_CLOCK_SKEW_MS, TokensRecord};
use crate::effects::perform;
use crate::io::fake::FakeIo;
use crate::types::{Response, TransportError};

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn tokens(access: &str, refresh: &str) -> Result<Response, TransportError> {
    Ok(Response {
        status: 200,
        headers: vec![Header::new("Content-Type", "application/json")],
        body: format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":3600,"refresh_token":"{refresh}"}}"#
        )
        .into_bytes(),
    })
}

/// Runs `call` to its end through the step machine, each effect performed
/// by `io`.
fn stepped(io: &mut FakeIo, call: Call) -> Outcome {
    let mut operation = Operation::new(call);
    let mut step = operation.next(None).unwrap();
    loop {
        match step {
            Step::Done(outcome) => return outcome,
            Step::Effect(effect) => step = operation.next(Some(perform(io, effect))).unwrap(),
        }
    }
}

/// Runs `call` through the synchronous functions, at the fake clock's time.
fn synchronous(io: &mut FakeIo, call: Call) -> Outcome {
    let now = io.clock;
    match call {
        Call::Configure { connection, config } => {
            Outcome::Configure(c::configure(io, &connection, &config))
        }
        Call::GetConfig(connection) => Outcome::GetConfig(c::get_config(io, &connection)),
        Call::Status(connection) => Outcome::Status(c::status_view(io, now, &connection)),
        Call::AccessToken(connection) => {
            Outcome::AccessToken(c::access_token(io, now, &connection))
        }
        Call::Report {
            connection,
            access_token,
            status,
            headers,
        } => Outcome::Report(c::report(
            io,
            now,
            &connection,
            &access_token,
            &ResponseHead { status, headers },
        )),
        Call::Disconnect { connection, revoke } => {
            Outcome::Disconnect(c::disconnect(io, now, &connection, revoke))
        }
        Call::RetryNow(connection) => Outcome::RetryNow(c::retry_now(io, now, &connection)),
        Call::Forget(connection) => Outcome::Forget(c::forget(io, &connection)),
        Call::List { after, limit } => Outcome::List(c::list(io, now, after.as_deref(), limit)),
        Call::Begin {
            connection,
            options,
        } => Outcome::Begin(authorize::begin(io, now, &connection, &options)),
        Call::Complete {
            callback,
            connection,
        } => Outcome::Complete(authorize::complete(
            io,
            now,
            &callback,
            connection.as_deref(),
        )),
    }
}

fn begin() -> Call {
    Call::Begin {
        connection: "c1".into(),
        options: BeginOptions::default(),
    }
}

fn complete(authorization: &Outcome) -> Call {
    let Outcome::Begin(Ok(authorization)) = authorization else {
        panic!("begin failed: {authorization:?}");
    };
    let state = authorization.state().unwrap();
    Call::Complete {
        callback: format!("code=CODE&state={}", state.expose()),
        connection: Some("c1".into()),
    }
}

/// `c1` configured and connected (AT-1 / RT-1, one hour), by `run`.
fn connected(run: fn(&mut FakeIo, Call) -> Outcome) -> FakeIo {
    let mut io = FakeIo {
        clock: NOW,
        ..FakeIo::default()
    };
    let configured = run(
        &mut io,
        Call::Configure {
            connection: "c1".into(),
            config: config(),
        },
    );
    assert_eq!(configured, Outcome::Configure(Ok(())));
    let authorization = run(&mut io, begin());
    io.respond(tokens("AT-1", "RT-1"));
    let Outcome::Complete(Ok(_)) = run(&mut io, complete(&authorization)) else {
        panic!("not connected");
    };
    io
}

/// A connection's life, every kind of call, with what each returned.
fn lifetime(run: fn(&mut FakeIo, Call) -> Outcome) -> (FakeIo, Vec<Outcome>) {
    let mut io = connected(run);
    let mut outcomes = vec![];
    let id = || "c1".to_owned();
    outcomes.push(run(&mut io, Call::AccessToken(id())));
    outcomes.push(run(&mut io, Call::GetConfig(id())));
    // Due: refreshed, with rotation.
    io.clock = NOW + HOUR;
    io.respond(tokens("AT-2", "RT-2"));
    outcomes.push(run(&mut io, Call::AccessToken(id())));
    // The API refuses the fresh token: refreshed again, then a transient
    // failure is backed off.
    io.respond(tokens("AT-3", "RT-3"));
    outcomes.push(run(
        &mut io,
        Call::Report {
            connection: id(),
            access_token: "AT-2".into(),
            status: 401,
            headers: vec![],
        },
    ));
    io.clock = NOW + 2 * HOUR;
    io.respond(Err(TransportError::Timeout));
    outcomes.push(run(&mut io, Call::AccessToken(id())));
    outcomes.push(run(&mut io, Call::Status(id())));
    outcomes.push(run(&mut io, Call::RetryNow(id())));
    outcomes.push(run(
        &mut io,
        Call::List {
            after: None,
            limit: 10,
        },
    ));
    // A reconnection, then a disconnection with revocation.
    let authorization = run(&mut io, begin());
    outcomes.push(authorization.clone());
    io.respond(tokens("AT-4", "RT-4"));
    outcomes.push(run(&mut io, complete(&authorization)));
    io.respond(Ok(Response {
        status: 200,
        headers: vec![],
        body: vec![],
    }));
    outcomes.push(run(
        &mut io,
        Call::Disconnect {
            connection: id(),
            revoke: true,
        },
    ));
    outcomes.push(run(&mut io, Call::Forget(id())));
    outcomes.push(run(&mut io, Call::Status(id())));
    (io, outcomes)
}

#[test]
fn the_step_path_and_the_synchronous_path_do_the_same() {
    let (sync_io, sync_outcomes) = lifetime(synchronous);
    let (step_io, step_outcomes) = lifetime(stepped);
    assert_eq!(step_outcomes, sync_outcomes);
    assert_eq!(step_io.store, sync_io.store);
    assert_eq!(step_io.events, sync_io.events);
    assert_eq!(step_io.sent, sync_io.sent);
    // The life went where the scenario says, not nowhere.
    assert!(matches!(&step_outcomes[2], Outcome::AccessToken(Ok(b)) if b.token.expose() == "AT-2"));
    assert!(step_io.kinds().contains(&"tokens-rotated"));
    assert!(step_io.kinds().contains(&"forgotten"));
}

#[test]
fn an_operation_asks_for_the_time_first_and_events_come_out_in_order() {
    let mut io = connected(stepped);
    let mut operation = Operation::new(Call::RetryNow("c1".into()));
    assert_eq!(operation.next(None), Ok(Step::Effect(Effect::NowMs)));
    let mut effects = vec![];
    let mut step = operation.next(Some(EffectResult::NowMs(NOW))).unwrap();
    while let Step::Effect(effect) = step {
        effects.push(effect.kind());
        step = operation.next(Some(perform(&mut io, effect))).unwrap();
    }
    assert_eq!(step, Step::Done(Outcome::RetryNow(Ok(()))));
    // The event's time is read, then the event goes out, before the outcome.
    assert_eq!(
        &effects[effects.len() - 2..],
        [EffectKind::NowMs, EffectKind::Emit]
    );
    assert_eq!(io.kinds().last(), Some(&"retry-now"));
}

#[test]
fn a_result_of_another_case_leaves_the_same_effect_outstanding() {
    let mut io = connected(stepped);
    let mut operation = Operation::new(Call::AccessToken("c1".into()));
    assert_eq!(operation.next(None), Ok(Step::Effect(Effect::NowMs)));
    for wrong in [
        None,
        Some(EffectResult::Emit),
        Some(EffectResult::StorageGet(Ok(None))),
        Some(EffectResult::RandomBytes(vec![0; 8])),
    ] {
        assert_eq!(operation.next(wrong), Err(StepError::MismatchedResult));
    }
    let Ok(Step::Effect(effect)) = operation.next(Some(EffectResult::NowMs(NOW))) else {
        panic!("the right result is taken");
    };
    assert_eq!(effect, Effect::StorageGet("config/c1".into()));
    assert_eq!(
        operation.next(Some(EffectResult::StoragePut(Ok(1)))),
        Err(StepError::MismatchedResult)
    );
    let mut step = operation.next(Some(perform(&mut io, effect))).unwrap();
    while let Step::Effect(effect) = step {
        step = operation.next(Some(perform(&mut io, effect))).unwrap();
    }
    assert!(matches!(step, Step::Done(Outcome::AccessToken(Ok(_)))));
}

/// Random bytes of another length than asked for do not answer the effect:
/// a state or a verifier made of them would be weaker than the contract.
#[test]
fn random_bytes_of_the_wrong_length_leave_the_effect_outstanding() {
    let mut io = connected(stepped);
    let mut operation = Operation::new(begin());
    let mut step = operation.next(None).unwrap();
    loop {
        match step {
            Step::Effect(Effect::RandomBytes(len)) => {
                let short = EffectResult::RandomBytes(vec![7; len as usize - 1]);
                assert_eq!(
                    operation.next(Some(short)),
                    Err(StepError::MismatchedResult)
                );
                step = operation
                    .next(Some(perform(&mut io, Effect::RandomBytes(len))))
                    .unwrap();
                break;
            }
            Step::Effect(effect) => step = operation.next(Some(perform(&mut io, effect))).unwrap(),
            Step::Done(outcome) => panic!("no random bytes asked for: {outcome:?}"),
        }
    }
    while let Step::Effect(effect) = step {
        step = operation.next(Some(perform(&mut io, effect))).unwrap();
    }
    assert!(matches!(step, Step::Done(Outcome::Begin(Ok(_)))));
}

#[test]
fn next_is_not_waiting_before_the_first_step_and_after_the_outcome() {
    let mut operation = Operation::new(Call::GetConfig("c1".into()));
    assert_eq!(
        operation.next(Some(EffectResult::NowMs(NOW))),
        Err(StepError::NotWaiting)
    );
    // Nothing changed: the operation starts as usual.
    assert_eq!(
        operation.next(None),
        Ok(Step::Effect(Effect::StorageGet("config/c1".into())))
    );
    assert_eq!(
        operation.next(Some(EffectResult::StorageGet(Ok(None)))),
        Ok(Step::Done(Outcome::GetConfig(Ok(None))))
    );
    assert_eq!(operation.next(None), Err(StepError::NotWaiting));
    assert_eq!(
        operation.next(Some(EffectResult::StorageGet(Ok(None)))),
        Err(StepError::NotWaiting)
    );
}

/// A host that drops an operation mid-refresh (its process stopping, a
/// cancelled request) loses no more than a crash would: the tokens are
/// the ones stored before, the lease lapses, and the next refresh works.
#[test]
fn dropping_an_operation_mid_refresh_leaves_storage_consistent() {
    let mut io = connected(stepped);
    // Within the refresh margin, still valid.
    let at = NOW + HOUR - 30_000;
    io.clock = at;
    let before: TokensRecord =
        crate::connection::store::decode("tokens/c1", &io.store["tokens/c1"].value).unwrap();
    let mut operation = Operation::new(Call::AccessToken("c1".into()));
    let mut step = operation.next(None).unwrap();
    loop {
        match step {
            Step::Effect(Effect::HttpSend(request)) => {
                assert!(request.url.ends_with("/oauth/token"), "{}", request.url);
                break;
            }
            Step::Effect(effect) => step = operation.next(Some(perform(&mut io, effect))).unwrap(),
            Step::Done(outcome) => panic!("no refresh: {outcome:?}"),
        }
    }
    drop(operation);
    let after: TokensRecord =
        crate::connection::store::decode("tokens/c1", &io.store["tokens/c1"].value).unwrap();
    assert_eq!(after, before);
    assert!(
        io.store.contains_key("lease/c1"),
        "the lease lapses on its own"
    );
    // Another worker is served the valid token while the lease holds, and
    // refreshes once it has lapsed.
    assert!(matches!(
        stepped(&mut io, Call::AccessToken("c1".into())),
        Outcome::AccessToken(Ok(bearer)) if bearer.token.expose() == "AT-1"
    ));
    io.clock = at + LEASE_MS + MAX_CLOCK_SKEW_MS;
    io.respond(tokens("AT-2", "RT-2"));
    assert!(matches!(
        stepped(&mut io, Call::AccessToken("c1".into())),
        Outcome::AccessToken(Ok(bearer)) if bearer.token.expose() == "AT-2"
    ));
}

#[test]
fn debug_shows_no_secret() {
    let call = Call::Complete {
        callback: "code=SECRET-CODE&state=SECRET-STATE".into(),
        connection: Some("c1".into()),
    };
    let report = Call::Report {
        connection: "c1".into(),
        access_token: "SECRET-AT".into(),
        status: 401,
        headers: vec![],
    };
    let put = Effect::StoragePut {
        key: "tokens/c1".into(),
        value: b"SECRET-RT".to_vec(),
        expected: None,
    };
    let random = EffectResult::RandomBytes(b"SECRET-BYTES".to_vec());
    let got = EffectResult::StorageGet(Ok(Some(crate::types::Entry {
        value: b"SECRET-RT".to_vec(),
        version: 1,
    })));
    let text = format!("{call:?} {report:?} {put:?} {random:?} {got:?}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("c1"), "{text}");
}

/// The gate's future is made on every call (and moved, by both drivers):
/// the refresh, large and rare, stays out of line so the hot path does not
/// copy kilobytes of state it never uses.
#[test]
fn the_gate_future_stays_small() {
    let fx = Effects::default();
    let gate = std::mem::size_of_val(&c::access_token_async(&fx, NOW, "c1"));
    assert!(gate <= 2048, "the gate's future is {gate} bytes");
}
