//! The component as a platform sees it: what it imports and exports, and
//! how the runtime contains a misbehaving guest.

use pleo_oauth::classify::{GrantKind, TokenOutcome};
use pleo_oauth::secret::Secret;
use pleo_oauth::types::Response;
use pleo_oauth::{Backends, GuestError};
use pleo_oauth_conformance::runtime;

/// The component imports only the project's own interfaces: no WASI, no
/// filesystem, sockets, environment or stdio, so it can leak nothing except
/// through imports the host controls.
#[test]
fn imports_are_exactly_the_projects_own() {
    let imports = runtime().imports();
    let allowed = ["types", "http", "storage", "clock", "random", "log"]
        .map(|i| format!("pleo:oauth/{i}@0.3.0"));
    for import in &imports {
        assert!(allowed.contains(import), "unexpected import {import}");
    }
    assert_eq!(imports, allowed);
}

#[test]
fn exports_are_classify_connections_authorize_and_steps() {
    let exports =
        ["classify", "connections", "authorize", "steps"].map(|i| format!("pleo:oauth/{i}@0.3.0"));
    assert_eq!(runtime().exports(), exports);
}

/// A 200 with no headers and `body`.
fn ok_with_body(body: Vec<u8>) -> Response {
    Response {
        status: 200,
        headers: vec![],
        body,
    }
}

fn invalid_grant() -> Response {
    Response {
        status: 400,
        headers: vec![],
        body: br#"{"error":"invalid_grant"}"#.to_vec(),
    }
}

/// A body larger than the instance's memory cap cannot even be copied into
/// the guest: the call fails with a typed error, the instance is dropped,
/// and the next call gets a fresh instance that works.
#[test]
fn memory_limit_is_a_typed_error_and_the_next_call_recovers() {
    let mut instance = runtime().instance(Backends::default()).unwrap();
    let huge = ok_with_body(vec![b'{'; runtime().config().memory_limit + 1]);
    let error = instance
        .token_response(GrantKind::RefreshToken, Ok(&huge), 0)
        .unwrap_err();
    assert!(matches!(error, GuestError::MemoryLimit(_)), "{error:?}");
    assert_eq!(instance.instantiations(), 1);
    let verdict = instance
        .token_response(GrantKind::RefreshToken, Ok(&invalid_grant()), 0)
        .unwrap();
    assert!(
        matches!(verdict, TokenOutcome::Reauthenticate(_)),
        "{verdict:?}"
    );
    assert_eq!(
        instance.instantiations(),
        2,
        "a fresh instance after the failure"
    );
}

/// A body over the guest's parse cap (but within memory) is a clear
/// verdict, not a failure.
#[test]
fn body_over_the_parse_cap_is_a_transient_verdict() {
    let mut instance = runtime().instance(Backends::default()).unwrap();
    let big = ok_with_body(vec![b' '; 1 << 20]);
    let verdict = instance
        .token_response(GrantKind::RefreshToken, Ok(&big), 0)
        .unwrap();
    assert_eq!(
        format!("{verdict:?}"),
        "Transient(Transient { cause: InvalidResponse(BodyTooLarge), retry_at_ms: None })"
    );
    assert_eq!(instance.instantiations(), 1);
}

/// Many instances at once, each in its own thread, all answering the same.
#[test]
fn instances_are_independent_across_threads() {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                let mut instance = runtime().instance(Backends::default()).unwrap();
                (0..50)
                    .map(|_| {
                        instance
                            .token_response(GrantKind::RefreshToken, Ok(&invalid_grant()), 0)
                            .unwrap()
                    })
                    .all(|v| matches!(v, TokenOutcome::Reauthenticate(_)))
            })
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()));
}

/// The verdict's `Debug` never shows a token (the host uses the core's
/// redacting types, not the generated ones).
#[test]
fn verdict_debug_redacts_tokens() {
    let mut instance = runtime().instance(Backends::default()).unwrap();
    let body = br#"{"access_token":"AT-SECRET-1","refresh_token":"RT-SECRET-2","token_type":"Bearer","expires_in":60}"#;
    let response = Response {
        status: 200,
        headers: vec![],
        body: body.to_vec(),
    };
    let verdict = instance
        .token_response(GrantKind::RefreshToken, Ok(&response), 0)
        .unwrap();
    let printed = format!("{verdict:?}");
    assert!(
        printed.contains("Success") && !printed.contains("SECRET"),
        "{printed}"
    );
}

/// The guest's heap hands out a bump arena for each call's allocations and
/// takes it back whole once nothing in it is live. What outlives a call (a
/// URL template here) is made outside the arena, so holding it does not
/// keep the arena from being taken back: after 30,000 calls a call with a
/// 160 KiB argument still fits, and memory has not grown by a byte.
#[test]
fn a_resource_kept_across_calls_never_grows_guest_memory() {
    let mut instance = runtime().instance(Backends::default()).unwrap();
    let initial = instance.memory_bytes();
    assert!(initial > 0, "the instance reports its memory");
    let mut template = instance
        .url_template(
            "https://auth.example/oauth/authorize",
            "client-1",
            "https://app.example/callback",
            &["users:read".to_owned(), "expenses:read".to_owned()],
        )
        .unwrap()
        .unwrap();
    let state = Secret::new("s".repeat(43));
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    // Were the template in the arena, the blocks each call frees out of
    // order would pile up and fill it after a few thousand calls, and the
    // large argument below would need memory from `memory.grow`.
    for _ in 0..30_000 {
        let url = instance.template_url(&mut template, &state, challenge, &[]);
        assert!(matches!(url, Ok(Ok(_))), "{url:?}");
    }
    let large = ok_with_body(vec![b' '; 160 << 10]);
    let verdict = instance
        .token_response(GrantKind::RefreshToken, Ok(&large), 0)
        .unwrap();
    assert!(matches!(verdict, TokenOutcome::Transient(_)), "{verdict:?}");
    assert_eq!(instance.memory_bytes(), initial, "memory grew");
    assert_eq!(instance.instantiations(), 1);
}
