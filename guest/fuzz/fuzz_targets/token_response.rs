//! `classify::token_response` on arbitrary token-endpoint responses.
//!
//! Input layout:
//! - byte 0: the status, `STATUSES[b % 6]`;
//! - byte 1: bit 0 the grant (0 refresh-token, 1 authorization-code),
//!   bit 1 set when a `Retry-After` header follows;
//! - with bit 1: one length byte `n`, then `n` bytes of the header value
//!   (lossy UTF-8; fewer if the input ends);
//! - the rest: the body, as raw bytes.
//!
//! Beyond "no panic" it checks the classification policy (RFC 6749 §5.2): a
//! success holds only valid tokens, a retry time is never before now and is
//! what `retry_after` says, and re-authentication happens exactly when the
//! body is strictly valid JSON (a byte order mark allowed, RFC 8259 §8.1)
//! whose `error` member is `invalid_grant` or `invalid_token`. Verdicts that
//! keep the tokens may read a body whose unread members a strict parser
//! refuses; where a strict parser reads it, they must agree with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pleo_oauth_core::classify::{
    ErrorCode, GrantKind, MAX_EXPIRES_IN, MAX_TOKEN_BODY, MAX_TOKEN_LEN, OAuthError, GrantRejection,
    TokenOutcome, retry_after, token_response,
};
use pleo_oauth_core::types::{Header, Response};

const NOW: u64 = 1_700_000_000_000;
const STATUSES: [u16; 6] = [200, 400, 401, 429, 500, 503];

fuzz_target!(|data: &[u8]| {
    let [status, flags, rest @ ..] = data else {
        return;
    };
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let grant = if flags & 1 == 0 {
        GrantKind::RefreshToken
    } else {
        GrantKind::AuthorizationCode
    };
    let (retry_value, body) = match rest {
        [len, tail @ ..] if flags & 2 != 0 => {
            let (value, body) = tail.split_at(usize::from(*len).min(tail.len()));
            (Some(String::from_utf8_lossy(value).into_owned()), body)
        }
        _ => (None, rest),
    };
    let mut headers = vec![Header::new("Content-Type", "application/json")];
    if let Some(value) = &retry_value {
        headers.push(Header::new("Retry-After", value.as_str()));
    }
    let response = Response {
        status,
        headers,
        body: body.to_vec(),
    };
    let outcome = token_response(grant, Ok(&response), NOW);

    // Independent reading of the body: the JSON `error` member, if a string.
    let unmarked = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let parsed = serde_json::from_slice::<serde_json::Value>(unmarked).ok();
    let error_member = parsed
        .as_ref()
        .and_then(|v| v.as_object())
        .and_then(|o| o.get("error"))
        .and_then(|e| e.as_str());
    let rejects_grant = body.len() <= MAX_TOKEN_BODY
        && matches!(error_member, Some("invalid_grant" | "invalid_token"));
    let expected_retry = retry_value.as_deref().and_then(|v| retry_after(v, NOW));

    match &outcome {
        TokenOutcome::Success(tokens) => {
            assert_eq!(status, 200, "success from a non-2xx status");
            if parsed.is_some() {
                assert!(error_member.is_none(), "success despite an error member");
            }
            assert_token(tokens.access_token.expose());
            if let Some(refresh) = &tokens.refresh_token {
                assert_token(refresh.expose());
            }
            if let Some(seconds) = tokens.expires_in {
                assert!(
                    (1..=MAX_EXPIRES_IN).contains(&seconds),
                    "expires_in {seconds}"
                );
            }
            for scope in tokens.scope.iter().flatten() {
                assert!(
                    !scope.is_empty()
                        && scope
                            .bytes()
                            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
                    "invalid scope-token {scope:?}"
                );
            }
        }
        TokenOutcome::Reauthenticate(reauth) => {
            assert!(
                rejects_grant,
                "reauthenticate without invalid_grant/invalid_token: {error_member:?}"
            );
            assert_eq!(Some(reauth.error.code.as_str()), error_member);
            let expected = match grant {
                GrantKind::RefreshToken => GrantRejection::RefreshTokenRejected,
                GrantKind::AuthorizationCode => GrantRejection::AuthorizationCodeRejected,
            };
            assert_eq!(reauth.reason, expected);
            assert_error(&reauth.error);
        }
        TokenOutcome::ClientMisconfigured(error) | TokenOutcome::RequestInvalid(error) => {
            assert!(!matches!(error.code, ErrorCode::Other(_)));
            if parsed.is_some() {
                assert_eq!(Some(error.code.as_str()), error_member);
            }
            assert_error(error);
        }
        TokenOutcome::Transient(transient) => {
            if let Some(at) = transient.retry_at_ms {
                assert!(at >= NOW, "retry at {at} is before now");
            }
            assert_eq!(transient.retry_at_ms, expected_retry);
            if let pleo_oauth_core::classify::TransientCause::OAuth(error) = &transient.cause {
                assert_error(error);
            }
        }
        TokenOutcome::CredentialsMissing => panic!("credentials-missing from a response"),
    }
    if rejects_grant {
        assert!(
            matches!(outcome, TokenOutcome::Reauthenticate(_)),
            "invalid_grant/invalid_token not terminal: {outcome:?}"
        );
    }
});

/// RFC 6749 A.12/A.17 as the core narrows it: 1..=4096 visible ASCII chars.
fn assert_token(token: &str) {
    assert!(
        (1..=MAX_TOKEN_LEN).contains(&token.len()),
        "token length {}",
        token.len()
    );
    assert!(
        token.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "token has a byte outside %x21-7E"
    );
}

/// Error codes and descriptions are bounded and free of control characters.
fn assert_error(error: &OAuthError) {
    let code = error.code.as_str();
    assert!(code.chars().count() <= 64 || !matches!(error.code, ErrorCode::Other(_)));
    assert!(
        code.chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')),
        "error code {code:?}"
    );
    if let Some(description) = &error.description {
        assert!(!description.is_empty() && description.chars().count() <= 256);
        assert!(!description.chars().any(char::is_control));
    }
}
