//! Every vector, run natively against the core.

use pleo_oauth_conformance::*;
use pleo_oauth_core::classify;

#[test]
fn token_response_vectors() {
    let suite = load::<TokenCase>(TOKEN_RESPONSE);
    check_all(&suite, |case| {
        let response = case.response();
        expect_eq(
            &classify::token_response(case.grant, response.as_ref(), case.now_ms),
            &case.expect,
        )
    });
}

#[test]
fn api_response_vectors() {
    let suite = load::<ApiCase>(API_RESPONSE);
    check_all(&suite, |case| {
        let response = case.response();
        expect_eq(
            &classify::api_response(response.as_ref(), case.attempt, case.now_ms),
            &case.expect,
        )
    });
}

#[test]
fn www_authenticate_vectors() {
    let suite = load::<ChallengeCase>(WWW_AUTHENTICATE);
    check_all(&suite, |case| {
        expect_eq(
            &classify::www_authenticate(&case.values).into(),
            &case.expect,
        )
    });
}

#[test]
fn retry_after_vectors() {
    let suite = load::<RetryAfterCase>(RETRY_AFTER);
    check_all(&suite, |case| {
        expect_eq(
            &classify::retry_after(&case.value, case.now_ms),
            &case.expect,
        )
    });
}
