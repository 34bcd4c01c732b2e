//! `classify::api_response` and `classify::www_authenticate` on arbitrary
//! API response heads.
//!
//! Input layout:
//! - byte 0: the status, `STATUSES[b % 6]`;
//! - byte 1: bit 0 the attempt (0 first, 1 after-refresh);
//! - the rest, as lossy UTF-8, split into field lines at `\n`. A line's
//!   first character names the field: `W` `WWW-Authenticate`, `w`
//!   `www-authenticate`, `R` `Retry-After`, `r` `retry-after`, anything else
//!   `X-Other` (with the whole line as value). The value is the rest.
//!
//! Beyond "no panic" it checks that the verdict is the one the policy gives
//! for the status (RFC 6750 §3.1, Pleo's API statuses), that retry times are never
//! before now and come from the first `Retry-After`, that parsed challenges
//! respect the parser's limits and lowercase/unique names, that errors point
//! inside the values, and that challenges written back out parse the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pleo_oauth_core::classify::{
    ApiAttempt, ApiOutcome, Challenge, ChallengeData, MAX_CHALLENGES, MAX_FIELD_BYTES, MAX_PARAMS,
    api_response, retry_after, www_authenticate,
};
use pleo_oauth_core::types::{Header, ResponseHead};

const NOW: u64 = 1_700_000_000_000;
const STATUSES: [u16; 6] = [401, 403, 429, 503, 200, 408];

fuzz_target!(|data: &[u8]| {
    let [status, flags, rest @ ..] = data else {
        return;
    };
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let attempt = if flags & 1 == 0 {
        ApiAttempt::First
    } else {
        ApiAttempt::AfterRefresh
    };
    let text = String::from_utf8_lossy(rest);
    let mut headers = Vec::new();
    if !text.is_empty() {
        for line in text.split('\n') {
            let mut chars = line.chars();
            let name = match chars.next() {
                Some('W') => "WWW-Authenticate",
                Some('w') => "www-authenticate",
                Some('R') => "Retry-After",
                Some('r') => "retry-after",
                _ => {
                    headers.push(Header::new("X-Other", line));
                    continue;
                }
            };
            headers.push(Header::new(name, chars.as_str()));
        }
    }
    let www_values: Vec<&str> = headers
        .iter()
        .filter(|h| h.is("www-authenticate"))
        .map(|h| h.value.as_str())
        .collect();
    let first_retry = headers
        .iter()
        .find(|h| h.is("retry-after"))
        .map(|h| h.value.as_str());

    let challenges = www_authenticate(&www_values);
    match &challenges {
        Ok(challenges) => {
            check_challenges(challenges);
            let rendered = render(challenges);
            if rendered.len() <= MAX_FIELD_BYTES {
                assert_eq!(
                    www_authenticate(&[rendered.as_str()]).as_ref(),
                    Ok(challenges),
                    "re-rendered challenges parse differently: {rendered:?}"
                );
            }
        }
        Err(error) => {
            let index = error.value_index as usize;
            assert!(
                index < www_values.len(),
                "error in value {index} of {}",
                www_values.len()
            );
            assert!(
                error.offset as usize <= www_values[index].len(),
                "{error:?}"
            );
        }
    }

    let outcome = api_response(
        Ok(&ResponseHead {
            status,
            headers: headers.clone(),
        }),
        attempt,
        NOW,
    );
    let retry = first_retry.and_then(|v| retry_after(v, NOW));
    if let Some(at) = retry {
        assert!(at >= NOW);
    }
    let expected = match status {
        401 => match attempt {
            ApiAttempt::First => ApiOutcome::RefreshAndRetry,
            ApiAttempt::AfterRefresh => ApiOutcome::RejectedAfterRefresh,
        },
        403 => {
            let bearer = challenges.as_ref().ok().and_then(|cs| {
                cs.iter()
                    .find(|c| c.scheme == "bearer" && matches!(c.data, ChallengeData::Params(_)))
            });
            match bearer {
                Some(c) if c.param("error") == Some("insufficient_scope") => {
                    let scopes: Vec<String> = c
                        .param("scope")
                        .unwrap_or("")
                        .split(' ')
                        .filter(|t| {
                            !t.is_empty()
                                && t.bytes()
                                    .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
                        })
                        .map(str::to_owned)
                        .collect();
                    ApiOutcome::InsufficientScope(scopes)
                }
                _ => ApiOutcome::Forbidden,
            }
        }
        429 => ApiOutcome::RateLimited(retry),
        408 | 503 => ApiOutcome::Transient(retry),
        _ => ApiOutcome::Ok,
    };
    assert_eq!(outcome, expected, "status {status}, attempt {attempt:?}");
});

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_challenges(challenges: &[Challenge]) {
    assert!(challenges.len() <= MAX_CHALLENGES);
    for challenge in challenges {
        let scheme = challenge.scheme.as_bytes();
        assert!(
            !scheme.is_empty()
                && scheme
                    .iter()
                    .all(|&b| is_tchar(b) && !b.is_ascii_uppercase())
        );
        match &challenge.data {
            ChallengeData::Token68(token) => {
                let body = token.trim_end_matches('=');
                assert!(!body.is_empty(), "empty token68");
                assert!(
                    body.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
                );
            }
            ChallengeData::Params(params) => {
                assert!(params.len() <= MAX_PARAMS);
                for (i, param) in params.iter().enumerate() {
                    let name = param.name.as_bytes();
                    assert!(
                        !name.is_empty()
                            && name.iter().all(|&b| is_tchar(b) && !b.is_ascii_uppercase())
                    );
                    assert!(
                        params[..i].iter().all(|p| p.name != param.name),
                        "duplicate {}",
                        param.name
                    );
                    assert!(
                        !param
                            .value
                            .chars()
                            .any(|c| c != '\t' && c.is_ascii_control()),
                        "control character in a parameter value"
                    );
                }
            }
        }
    }
}

/// Writes challenges back as one field value, every parameter value quoted.
fn render(challenges: &[Challenge]) -> String {
    let mut out = String::new();
    for (i, challenge) in challenges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&challenge.scheme);
        match &challenge.data {
            ChallengeData::Token68(token) => {
                out.push(' ');
                out.push_str(token);
            }
            ChallengeData::Params(params) => {
                for (j, param) in params.iter().enumerate() {
                    out.push_str(if j == 0 { " " } else { ", " });
                    out.push_str(&param.name);
                    out.push_str("=\"");
                    for c in param.value.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
        }
    }
    out
}
