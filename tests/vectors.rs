//! Every vector in `tests/vectors/`, run natively against the core and
//! through the component in wasmtime: both must give the expected verdict.

use pleo_oauth::Backends;
use pleo_oauth_conformance::*;
use pleo_oauth_core::{authorize, classify};

fn instance() -> pleo_oauth::Instance {
    runtime()
        .instance(Backends::default())
        .expect("an instance")
}

/// Native and component verdicts must both equal the expected one.
fn both<T: PartialEq + std::fmt::Debug>(
    native: T,
    component: T,
    expected: &T,
) -> Result<(), String> {
    expect_eq(&native, expected).map_err(|e| format!("native: {e}"))?;
    expect_eq(&component, expected).map_err(|e| format!("component: {e}"))
}

#[test]
fn token_response_vectors() {
    let mut instance = instance();
    let suite = load::<TokenCase>(TOKEN_RESPONSE);
    check_all(&suite, |case| {
        let response = case.response();
        let native = classify::token_response(case.grant, response.as_ref(), case.now_ms);
        let component = instance
            .token_response(case.grant, response.as_ref(), case.now_ms)
            .map_err(|e| e.to_string())?;
        both(native, component, &case.expect)
    });
}

#[test]
fn api_response_vectors() {
    let mut instance = instance();
    let suite = load::<ApiCase>(API_RESPONSE);
    check_all(&suite, |case| {
        let response = case.response();
        let native = classify::api_response(response.as_ref(), case.attempt, case.now_ms);
        let component = instance
            .api_response(response.as_ref(), case.attempt, case.now_ms)
            .map_err(|e| e.to_string())?;
        both(native, component, &case.expect)
    });
}

#[test]
fn www_authenticate_vectors() {
    let mut instance = instance();
    let suite = load::<ChallengeCase>(WWW_AUTHENTICATE);
    check_all(&suite, |case| {
        let native = classify::www_authenticate(&case.values).into();
        let component = instance
            .www_authenticate(&case.values)
            .map_err(|e| e.to_string())?
            .into();
        both(native, component, &case.expect)
    });
}

#[test]
fn retry_after_vectors() {
    let mut instance = instance();
    let suite = load::<RetryAfterCase>(RETRY_AFTER);
    check_all(&suite, |case| {
        let native = classify::retry_after(&case.value, case.now_ms);
        let component = instance
            .retry_after(&case.value, case.now_ms)
            .map_err(|e| e.to_string())?;
        both(native, component, &case.expect)
    });
}

#[test]
fn authorize_vectors() {
    let mut instance = instance();
    let suite = load::<AuthorizeCase>(AUTHORIZE);
    check_all(&suite, |case| match case.input() {
        AuthorizeInput::S256Challenge(input) => {
            let native = authorize::Verifier::parse(&input.verifier)
                .map(|v| v.s256_challenge())
                .into();
            let component = instance
                .s256_challenge(&input.verifier)
                .map_err(|e| e.to_string())?
                .into();
            both(native, component, &input.expect)
        }
        AuthorizeInput::BuildUrl(input) => {
            let params = input.params.params();
            let native = authorize::url::build(&params).into();
            let component = instance
                .build_url(&params)
                .map_err(|e| e.to_string())?
                .into();
            both(native, component, &input.expect)
        }
    });
}

/// The suites together hold at least 120 cases, each naming its rule, with
/// unique names.
#[test]
fn vectors_are_many_named_and_cited() {
    let mut names = std::collections::BTreeSet::new();
    let mut count = 0;
    let mut visit = |name: &str, spec: &str| {
        assert!(
            !spec.trim().is_empty(),
            "{name}: every case cites its RFC section or Pleo rule"
        );
        assert!(
            names.insert(name.to_owned()),
            "{name}: case names are unique"
        );
        count += 1;
    };
    load::<TokenCase>(TOKEN_RESPONSE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<ApiCase>(API_RESPONSE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<ChallengeCase>(WWW_AUTHENTICATE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<RetryAfterCase>(RETRY_AFTER)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<AuthorizeCase>(AUTHORIZE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    assert!(count >= 120, "only {count} vector cases");
}
