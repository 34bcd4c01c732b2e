//! Every input comes from a server that may be broken or hostile. These
//! properties throw arbitrary bytes, headers and statuses at the core (10,000
//! cases each) and at the component (fewer: each is a wasm call): no panic,
//! no trap, bounded output, and the policy holds whatever the input.

use pleo_oauth::Backends;
use pleo_oauth_conformance::runtime;
use pleo_oauth_core::classify::{self, ApiAttempt, ChallengeData, GrantKind, TokenOutcome};
use pleo_oauth_core::types::{Header, Response, ResponseHead};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000_000;

fn grant() -> impl Strategy<Value = GrantKind> {
    prop_oneof![
        Just(GrantKind::AuthorizationCode),
        Just(GrantKind::RefreshToken)
    ]
}

fn attempt() -> impl Strategy<Value = ApiAttempt> {
    prop_oneof![Just(ApiAttempt::First), Just(ApiAttempt::AfterRefresh)]
}

/// Statuses weighted towards the interesting ones.
fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(vec![
            200u16, 201, 204, 301, 400, 401, 403, 404, 408, 429, 500, 502, 503
        ]),
        any::<u16>(),
    ]
}

/// Text built from the characters that matter to the parsers.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ \t,=\"\\\\a-zA-Z0-9_+/.~:;!#-]{0,80}",
        any::<String>(),
        prop::sample::select(vec![
            "Bearer".to_owned(),
            "Bearer error=\"insufficient_scope\", scope=\"a:b c:d\"".to_owned(),
            "120".to_owned(),
            "Sun, 06 Nov 1994 08:49:37 GMT".to_owned(),
        ]),
    ]
}

fn headers() -> impl Strategy<Value = Vec<Header>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "WWW-Authenticate",
            "retry-after",
            "Content-Type",
            "X-Other"
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z-]{1,20}",
    ];
    prop::collection::vec(
        (name, field_text()).prop_map(|(n, v)| Header::new(n, v)),
        0..6,
    )
}

/// A JSON value of token-response shape, with members of any type.
fn json_member() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
        "[ -~]{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "invalid_grant",
            "invalid_token",
            "invalid_client",
            "server_error",
            "Bearer",
            "3600"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        Just(json!([])),
        Just(json!({"nested": {"deep": [1, 2, 3]}})),
    ]
}

fn token_body() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "error",
        "error_description",
        "x",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::btree_map(names, json_member(), 0..8)
            .prop_map(|members| serde_json::to_vec(&members).expect("serialisable")),
        // Truncated JSON.
        prop::collection::btree_map("[a-z_]{1,12}", json_member(), 1..6).prop_flat_map(|members| {
            let bytes = serde_json::to_vec(&members).expect("serialisable");
            let len = bytes.len();
            (Just(bytes), 0..len).prop_map(|(bytes, cut)| bytes[..cut].to_vec())
        }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    (status(), headers(), token_body()).prop_map(|(status, headers, body)| Response {
        status,
        headers,
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// No panic on any token response, and the policy holds: only
    /// `invalid_grant` / `invalid_token` ever lead to re-authentication
    /// (unknown codes never wipe tokens: RFC 6749 §5.2 lets servers add codes), and a success always
    /// carries a header-safe token.
    #[test]
    fn token_responses_never_panic_and_only_dead_grants_reauthenticate(grant in grant(), response in response()) {
        let verdict = classify::token_response(grant, Ok(&response), NOW);
        let error = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
        match &verdict {
            TokenOutcome::Reauthenticate(_) => {
                prop_assert!(matches!(error.as_deref(), Some("invalid_grant" | "invalid_token")), "{verdict:?}");
            }
            TokenOutcome::Success(tokens) => {
                prop_assert!(error.is_none());
                prop_assert!((200..300).contains(&response.status));
                prop_assert!(tokens.access_token.expose().bytes().all(|b| (0x21..=0x7e).contains(&b)));
            }
            TokenOutcome::Transient(transient) => {
                prop_assert!(transient.retry_at_ms.is_none_or(|at| at >= NOW));
            }
            TokenOutcome::ClientMisconfigured(_) | TokenOutcome::RequestInvalid(_) => prop_assert!(error.is_some()),
            // Only a transport error says so; a response never does.
            TokenOutcome::CredentialsMissing => prop_assert!(false, "{verdict:?}"),
        }
    }

    #[test]
    fn api_responses_never_panic(status in status(), headers in headers(), attempt in attempt()) {
        let head = ResponseHead { status, headers };
        let verdict = classify::api_response(Ok(&head), attempt, NOW);
        if status == 401 {
            prop_assert!(matches!(verdict, classify::ApiOutcome::RefreshAndRetry | classify::ApiOutcome::RejectedAfterRefresh));
        }
    }

    /// The parser never panics, and what it returns is no larger than what
    /// it was given (bounded memory whatever the input).
    #[test]
    fn www_authenticate_never_panics_and_output_is_bounded(values in prop::collection::vec(field_text(), 0..4)) {
        let input: usize = values.iter().map(String::len).sum();
        if let Ok(challenges) = classify::www_authenticate(&values) {
            let output: usize = challenges
                .iter()
                .map(|c| c.scheme.len() + match &c.data {
                    ChallengeData::Token68(t) => t.len(),
                    ChallengeData::Params(ps) => ps.iter().map(|p| p.name.len() + p.value.len()).sum(),
                })
                .sum();
            prop_assert!(output <= input);
            prop_assert!(challenges.len() <= classify::MAX_CHALLENGES);
        }
    }

    #[test]
    fn retry_after_never_panics_and_never_goes_back_in_time(value in field_text(), now in any::<u64>()) {
        prop_assert!(classify::retry_after(&value, now).is_none_or(|at| at >= now));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    /// The component never traps on hostile input and agrees with the core.
    #[test]
    fn the_component_agrees_with_the_core_on_hostile_input(
        grant in grant(),
        response in response(),
        attempt in attempt(),
        values in prop::collection::vec(field_text(), 0..4),
    ) {
        thread_local! {
            static INSTANCE: std::cell::RefCell<pleo_oauth::Instance> =
                std::cell::RefCell::new(runtime().instance(Backends::default()).expect("an instance"));
        }
        INSTANCE.with_borrow_mut(|instance| {
            let native = classify::token_response(grant, Ok(&response), NOW);
            prop_assert_eq!(instance.token_response(grant, Ok(&response), NOW).expect("no trap"), native);
            let head = ResponseHead { status: response.status, headers: response.headers.clone() };
            let native = classify::api_response(Ok(&head), attempt, NOW);
            prop_assert_eq!(instance.api_response(Ok(&head), attempt, NOW).expect("no trap"), native);
            let native = classify::www_authenticate(&values);
            prop_assert_eq!(instance.www_authenticate(&values).expect("no trap"), native);
            prop_assert_eq!(instance.instantiations(), 1, "never re-instantiated: no trap");
            Ok(())
        })?;
    }
}
