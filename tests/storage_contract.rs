//! The storage contract of `wit/imports.wit` from the guest's side, natively
//! and through the component: a write whose outcome is unknown is settled
//! by re-reading, a record of a newer format is refused and left alone, a
//! listing pages through connections without the host reading storage, and
//! events carry the instant they describe. (The backends' side of the
//! contract, `imports::storage::contract`, runs in the host's own tests on
//! memory, SQLite, sealed and namespaced stores.)

use pleo_oauth::connections::{Refusal, State, StorageError};
use pleo_oauth::imports::storage::Storage;
use pleo_oauth::types::TransportError;
use pleo_oauth::{Backends, Instance};
use pleo_oauth_conformance::callback::{Fixture, Flow, Native, config_with, token_json};
use pleo_oauth_conformance::lifecycle::CONNECTION;
use pleo_oauth_conformance::runtime;

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn component(backends: &Backends) -> Instance {
    runtime().instance(backends.clone()).expect("an instance")
}

/// Both drivers of the core, each over its own fresh fixture.
fn both(test: impl Fn(&Fixture, &mut dyn Flow)) {
    let native = Fixture::new();
    test(&native, &mut Native(&native));
    let wasm = Fixture::new();
    test(&wasm, &mut component(&wasm.backends));
}

fn connect(fixture: &Fixture, flow: &mut dyn Flow, connection: &str, refresh_token: &str) {
    flow.configure(connection, &config_with(&Default::default()));
    let authorization = flow.begin(connection, &Default::default());
    fixture.http.push(Ok(token_json(
        200,
        &format!(
            r#"{{"access_token":"AT-{connection}","token_type":"Bearer","expires_in":3600,"refresh_token":"{refresh_token}"}}"#
        ),
    )));
    let state = pleo_oauth_conformance::callback::state_of(&authorization);
    flow.complete(&format!("code=CODE&state={state}"), Some(connection))
        .expect("connected");
}

fn rotation() -> Result<pleo_oauth::types::Response, TransportError> {
    Ok(token_json(
        200,
        r#"{"access_token":"AT-2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}"#,
    ))
}

/// Storage contract, outcomes: the reply to the write of the rotated tokens
/// is lost (the write landed). The guest re-reads, finds its own tokens,
/// and serves them: no second refresh, nothing reported lost.
#[test]
fn rotated_tokens_whose_write_reply_was_lost_are_found_by_re_reading() {
    both(|fixture, flow| {
        connect(fixture, flow, CONNECTION, "RT-1");
        fixture.clock.set(NOW + HOUR);
        fixture.http.push(rotation());
        fixture.storage.lose_write_outcome("tokens/");
        let bearer = flow.access_token(CONNECTION).expect("the rotated token");
        assert_eq!(bearer.token.expose(), "AT-2");
        assert_eq!(
            fixture.http.sent().len(),
            2,
            "the code exchange and one refresh"
        );
        let stored = fixture.storage.get("tokens/c1").unwrap().unwrap();
        assert!(String::from_utf8_lossy(&stored.value).contains("RT-2"));
        assert_eq!(flow.status(CONNECTION).state, State::Connected);
        assert_eq!(
            flow.access_token(CONNECTION).unwrap().token.expose(),
            "AT-2"
        );
        assert_eq!(fixture.http.sent().len(), 2, "served from storage");
    });
}

/// Storage contract, outcomes: a configuration write whose reply was lost
/// is settled by re-reading; `configure` succeeds once, and the stored
/// configuration is the one written.
#[test]
fn a_configuration_write_whose_reply_was_lost_is_settled() {
    both(|fixture, flow| {
        fixture.storage.lose_write_outcome("config/");
        flow.configure(CONNECTION, &config_with(&Default::default()));
        assert_eq!(flow.status(CONNECTION).state, State::New);
    });
}

/// Stored records carry their format: a record from a newer release is
/// refused with a clear error, never misread and never overwritten, and
/// the configuration survives.
#[test]
fn a_record_of_a_newer_format_is_refused_and_left_alone() {
    both(|fixture, flow| {
        connect(fixture, flow, CONNECTION, "RT-1");
        let status = fixture.storage.get("status/c1").unwrap().unwrap();
        let text = String::from_utf8(status.value).unwrap();
        assert!(text.starts_with(r#"{"format":1,"record":{"#), "{text}");
        let newer = text.replacen(r#"{"format":1,"#, r#"{"format":2,"#, 1);
        let version = fixture
            .storage
            .put("status/c1", newer.as_bytes(), Some(status.version))
            .unwrap();
        fixture.clock.set(NOW + HOUR);
        match flow.access_token(CONNECTION) {
            Err(Refusal::Storage(StorageError::Corrupt(why))) => {
                assert!(
                    why.contains("status/c1") && why.contains("format 2"),
                    "{why}"
                );
            }
            other => panic!("expected a refusal naming the format, got {other:?}"),
        }
        assert!(fixture.http.sent().len() == 1, "no refresh was sent");
        let after = fixture.storage.get("status/c1").unwrap().unwrap();
        assert_eq!((after.version, after.value), (version, newer.into_bytes()));
        assert!(fixture.storage.get("config/c1").unwrap().is_some());
        assert!(fixture.storage.get("tokens/c1").unwrap().is_some());
    });
}

/// `connections.list`: every configured connection, in id order, a page at
/// a time, with its state; forgotten ones gone. No host reads storage.
#[test]
fn list_pages_through_the_connections_in_id_order() {
    both(|fixture, flow| {
        for id in ["b", "a", "d", "c", "e"] {
            flow.configure(id, &config_with(&Default::default()));
        }
        connect(fixture, flow, "c", "RT-c");
        flow.forget("d").unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = flow.list(after.as_deref(), 2).unwrap();
            assert!(page.connections.len() <= 2);
            seen.extend(
                page.connections
                    .iter()
                    .map(|c| (c.connection.clone(), c.state)),
            );
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<(String, State)> = [
            ("a", State::New),
            ("b", State::New),
            ("c", State::Connected),
            ("e", State::New),
        ]
        .into_iter()
        .map(|(id, state)| (id.to_owned(), state))
        .collect();
        assert_eq!(seen, expected);
        assert_eq!(
            flow.list(None, 0).unwrap().connections.len(),
            1,
            "a limit of 0 is 1"
        );
        assert!(flow.list(Some("e"), 10).unwrap().connections.is_empty());
    });
}

/// `log.event.at-ms`: the instant an event describes, by the clock import,
/// also when the clock moved since the call began.
#[test]
fn events_carry_the_instant_they_describe() {
    both(|fixture, flow| {
        connect(fixture, flow, CONNECTION, "RT-1");
        assert!(fixture.log.events().iter().all(|e| e.at_ms == NOW));
        fixture.clock.set(NOW + HOUR);
        fixture.http.push(rotation());
        flow.access_token(CONNECTION).unwrap();
        let refreshed = fixture
            .log
            .events()
            .into_iter()
            .find(|e| e.kind == "refresh-succeeded")
            .expect("a refresh event");
        assert_eq!(refreshed.at_ms, NOW + HOUR);
    });
}
