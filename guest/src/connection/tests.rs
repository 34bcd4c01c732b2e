//! The connection state machine, natively, with time as an input: every
//! state and transition of the diagram in `wit/connections.wit`, the
//! classification policy (README) and Pleo's rotation rules. No test waits: the clock is a number.

use super::config::tests::config;
use super::*;
use crate::authorize::{self, BeginOptions};
use crate::effects::drive;
use crate::io::fake::FakeIo;
use crate::secret::Secret;
use crate::types::{Header, Response, ResponseHead, StorageError, TransportError};

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn json(status: u16, body: &str) -> Result<Response, TransportError> {
    Ok(Response {
        status,
        headers: vec![Header::new("Content-Type", "application/json")],
        body: body.as_bytes().to_vec(),
    })
}

fn tokens(
    access: &str,
    refresh: Option<&str>,
    expires_in: u32,
) -> Result<Response, TransportError> {
    let refresh = refresh.map_or(String::new(), |r| format!(r#","refresh_token":"{r}""#));
    json(
        200,
        &format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{expires_in}{refresh}}}"#
        ),
    )
}

fn head(status: u16, challenge: Option<&str>) -> ResponseHead {
    ResponseHead {
        status,
        headers: challenge
            .map(|c| vec![Header::new("WWW-Authenticate", c)])
            .unwrap_or_default(),
    }
}

/// `c1` configured with the test configuration, never authorised.
fn configured() -> FakeIo {
    let mut io = FakeIo {
        clock: NOW,
        ..FakeIo::default()
    };
    configure(&mut io, "c1", &config()).unwrap();
    io
}

/// Connects `c1` through a real authorisation: AT-1 / RT-1, one hour.
fn connected(config: ConnectionConfig) -> FakeIo {
    let mut io = FakeIo {
        clock: NOW,
        ..FakeIo::default()
    };
    configure(&mut io, "c1", &config).unwrap();
    authorize_again(&mut io, NOW, tokens("AT-1", Some("RT-1"), 3600));
    io.events.clear();
    io.sent.clear();
    io
}

fn authorize_again(io: &mut FakeIo, now: u64, answer: Result<Response, TransportError>) {
    let callback = pending_callback(io, now);
    io.respond(answer);
    authorize::complete(io, now, &callback, Some("c1")).unwrap();
}

/// Begins an authorisation of `c1` and returns its callback.
fn pending_callback(io: &mut FakeIo, now: u64) -> String {
    let authorization = authorize::begin(io, now, "c1", &BeginOptions::default()).unwrap();
    let url = ::url::Url::parse(authorization.url.expose()).unwrap();
    let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1;
    format!("code=CODE&state={state}")
}

fn token_of(result: Result<Bearer, Refusal>) -> String {
    result.expect("a token").token.into_exposed()
}

fn status(io: &mut FakeIo, now: u64) -> StatusView {
    status_view(io, now, "c1").unwrap()
}

fn stored_refresh(io: &mut FakeIo) -> Option<String> {
    drive(io, async |fx| {
        store::read::<store::TokensRecord>(fx, "tokens/c1").await
    })
    .unwrap()
    .and_then(|t| t.value.refresh_token.map(|r| r.to_secret().into_exposed()))
}

/// `c1` is disconnected, with no reason, and the gate says so.
fn assert_disconnected(io: &mut FakeIo, now: u64) {
    assert_eq!(
        access_token(io, now, "c1"),
        Err(Refusal::NotConnected(NotConnected::Disconnected))
    );
    let view = status(io, now);
    assert_eq!((view.state, view.reason), (State::Disconnected, None));
}

/// No event field or message carries a secret the test used.
fn assert_no_secrets(io: &FakeIo) {
    for event in &io.events {
        let text = format!("{} {} {:?}", event.kind, event.message, event.fields);
        for secret in ["AT-", "RT-", "CODE"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn hot_path_serves_a_valid_token_without_writing() {
    let mut io = connected(config());
    let version = io.last_version;
    assert_eq!(token_of(access_token(&mut io, NOW + 1000, "c1")), "AT-1");
    assert_eq!(io.last_version, version, "no write");
    assert!(io.sent.is_empty() && io.events.is_empty());
}

/// Pleo: refresh proactively before expiry (default margin 60 s);
/// RFC 6749 §6 request; Pleo rotation: both tokens replaced in one write.
#[test]
fn rfc6749_6_proactive_refresh_rotates_both_tokens() {
    let mut io = connected(config());
    let before_margin = NOW + HOUR - 61_000;
    assert_eq!(token_of(access_token(&mut io, before_margin, "c1")), "AT-1");
    assert!(io.sent.is_empty());

    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    let at = NOW + HOUR - 59_000;
    assert_eq!(token_of(access_token(&mut io, at, "c1")), "AT-2");
    let request = &io.sent[0];
    assert_eq!(request.url, "https://auth.staging.pleo.io/oauth/token");
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        "grant_type=refresh_token&refresh_token=RT-1"
    );
    assert_eq!(request.client_auth.as_deref(), Some("client-123"));
    assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-2"));
    assert_eq!(io.kinds(), ["refresh-succeeded", "tokens-rotated"]);
    let view = status(&mut io, at);
    assert_eq!(view.state, State::Connected);
    assert_eq!(view.last_refresh_at_ms, Some(at));
    assert_eq!(view.access_expires_at_ms, Some(at + HOUR));
    assert!(
        io.store.keys().all(|k| !k.starts_with("lease/")),
        "lease released"
    );
    assert_no_secrets(&io);
}

/// RFC 6749 §6: a response without a refresh token keeps the old one.
#[test]
fn rfc6749_6_refresh_without_new_refresh_token_keeps_the_old() {
    let mut io = connected(config());
    io.respond(tokens("AT-2", None, 3600));
    assert_eq!(token_of(access_token(&mut io, NOW + HOUR, "c1")), "AT-2");
    assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-1"));
    assert_eq!(io.kinds(), ["refresh-succeeded"]);
}

/// The margin is configurable, and never more than half a token's life.
#[test]
fn refresh_margin_is_configurable_and_bounded_by_lifetime() {
    let mut io = connected(ConnectionConfig {
        refresh_margin_seconds: Some(600),
        ..config()
    });
    io.respond(tokens("AT-2", Some("RT-2"), 60));
    assert_eq!(
        token_of(access_token(&mut io, NOW + HOUR - 600_000, "c1")),
        "AT-2"
    );
    // A 60 s token is not due 600 s early (which would refresh on every
    // call) but 30 s early.
    let at = NOW + HOUR - 600_000;
    assert_eq!(token_of(access_token(&mut io, at + 29_000, "c1")), "AT-2");
    assert_eq!(io.sent.len(), 1);
}

/// Pleo: `invalid_grant` on refresh is terminal. Status first, then both
/// tokens wiped; the configuration kept; the gate refuses from then on.
#[test]
fn pleo_invalid_grant_wipes_tokens_and_requires_reauth() {
    let mut io = connected(config());
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
    assert!(!io.store.contains_key("tokens/c1"));
    assert_eq!(get_config(&mut io, "c1").unwrap(), Some(config()));
    assert_eq!(io.kinds(), ["revocation-detected", "reauth-required"]);
    let view = status(&mut io, NOW + HOUR);
    assert_eq!(
        (view.state, view.reason),
        (State::ReauthRequired, Some(Reason::RefreshTokenRejected))
    );
    assert!(view.next_action.contains("settings are kept"));
    // Refused at once, with no request.
    assert_eq!(
        access_token(&mut io, NOW + HOUR + 1, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
    assert_eq!(io.sent.len(), 1);
    assert_no_secrets(&io);
}

/// Pleo answers `invalid_token` to a dead refresh token too.
#[test]
fn pleo_invalid_token_on_refresh_is_terminal_too() {
    let mut io = connected(config());
    io.respond(json(401, r#"{"error":"invalid_token"}"#));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
}

/// Another worker rotates the tokens (to AT-2 / RT-2) while this worker's
/// first request is in flight: a lost race, as a broken lease or a shared
/// store without compare-and-swap would cause.
fn lose_the_race(io: &mut FakeIo) {
    let mut done = false;
    io.on_send = Some(Box::new(move |store, version| {
        if std::mem::replace(&mut done, true) {
            return;
        }
        // A rotation: the same grant.
        let grant = store
            .get("tokens/c1")
            .and_then(|e| store::decode::<store::TokensRecord>("tokens/c1", &e.value).ok())
            .and_then(|t| t.grant);
        let record = store::TokensRecord {
            access_token: Secret::new("AT-2").into(),
            refresh_token: Some(Secret::new("RT-2").into()),
            expires_at_ms: Some(NOW + 2 * HOUR),
            scopes: vec![],
            obtained_at_ms: NOW + HOUR,
            after_unauthorized: false,
            unconfirmed: false,
            grant,
            refused: false,
        };
        *version += 1;
        store.insert(
            "tokens/c1".into(),
            crate::types::Entry {
                value: serde_json::to_vec(&record).unwrap(),
                version: *version,
            },
        );
    }));
}

fn sent_refresh_tokens(io: &FakeIo) -> Vec<String> {
    io.sent
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            body.split('&')
                .find_map(|p| p.strip_prefix("refresh_token=").map(str::to_owned))
                .unwrap_or_default()
        })
        .collect()
}

/// Lost race, grant alive: our request carried a rotated-away refresh
/// token, so a server with reuse detection may have revoked the whole
/// grant. The winner's tokens are not served blindly: one refresh with
/// them confirms the grant, and its tokens are used.
#[test]
fn lost_rotation_race_confirms_the_winners_tokens_before_use() {
    let mut io = connected(config());
    lose_the_race(&mut io);
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    io.respond(tokens("AT-3", Some("RT-3"), 3600));
    assert_eq!(token_of(access_token(&mut io, NOW + HOUR, "c1")), "AT-3");
    assert_eq!(sent_refresh_tokens(&io), ["RT-1", "RT-2"]);
    assert_eq!(
        io.kinds(),
        [
            "rotation-race-detected",
            "rotation-race-recovered",
            "refresh-succeeded",
            "tokens-rotated"
        ]
    );
    assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-3"));
    assert_eq!(status(&mut io, NOW + HOUR).state, State::Connected);
}

/// Lost race, grant dead: the winner's tokens are rejected too. The server
/// revoked the grant for reuse; the reason says so, and blames nobody's
/// revocation.
#[test]
fn lost_rotation_race_with_reuse_detection_is_refresh_token_reused() {
    let mut io = connected(config());
    lose_the_race(&mut io);
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenReused))
    );
    assert!(!io.store.contains_key("tokens/c1"));
    assert_eq!(
        status(&mut io, NOW + HOUR).reason,
        Some(Reason::RefreshTokenReused)
    );
}

/// Lost race, confirmation impossible for now (503): the winner's tokens
/// are kept but marked unconfirmed, and never served, however valid they
/// look, until a refresh confirms them.
#[test]
fn unconfirmed_tokens_are_never_served() {
    let mut io = connected(config());
    lose_the_race(&mut io);
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    io.respond(json(503, "down"));
    assert!(matches!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Wait {
            why: WaitReason::BackingOff,
            ..
        })
    ));
    let later = NOW + HOUR + 10 * 60_000;
    io.respond(tokens("AT-3", Some("RT-3"), 3600));
    assert_eq!(token_of(access_token(&mut io, later, "c1")), "AT-3");
    assert_eq!(sent_refresh_tokens(&io), ["RT-1", "RT-2", "RT-2"]);
    assert!(io.kinds().contains(&"rotation-race-recovered"));
}

/// Pleo: transient failures are retried with back-off, never a reason to
/// re-authenticate, however
/// many. 50 failures: the back-off grows to its cap with full jitter, the
/// token is served until it expires, then callers wait; a success clears it.
#[test]
fn storm_of_transient_failures_never_reauthenticates() {
    let mut io = connected(config());
    let mut now = NOW + HOUR - 59_000;
    let mut waits = Vec::new();
    for attempt in 1..=50u32 {
        io.respond(match attempt % 5 {
            0 => Err(TransportError::Timeout),
            1 => json(503, "<html>down</html>"),
            2 => json(429, "{}"),
            3 => json(200, r#"{"error":"server_error"}"#),
            _ => json(200, "not json"),
        });
        let result = access_token(&mut io, now, "c1");
        let view = status(&mut io, now);
        assert_eq!(view.failures, attempt);
        assert_eq!(view.state, State::Degraded);
        let retry_at = view.next_retry_at_ms.unwrap();
        let wait = retry_at - now;
        let ceiling = backoff::ceiling_ms(attempt, 300_000);
        assert!(
            (backoff::MIN_MS..=ceiling).contains(&wait),
            "{attempt}: {wait}"
        );
        waits.push(wait);
        if now < NOW + HOUR {
            assert_eq!(token_of(result), "AT-1", "served until expiry");
        } else {
            assert_eq!(
                result,
                Err(Refusal::Wait {
                    until_ms: retry_at,
                    why: WaitReason::BackingOff
                })
            );
        }
        // Calls during the back-off send nothing.
        let sent = io.sent.len();
        let _ = access_token(&mut io, retry_at - 1, "c1");
        assert_eq!(io.sent.len(), sent);
        now = retry_at;
    }
    assert!(
        waits[40..].iter().max() > waits[..4].iter().max(),
        "back-off grows"
    );
    assert!(io.store.contains_key("tokens/c1"));
    assert!(!io.kinds().contains(&"reauth-required"));
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, now, "c1")), "AT-2");
    let view = status(&mut io, now);
    assert_eq!(
        (view.state, view.failures, view.next_retry_at_ms),
        (State::Connected, 0, None)
    );
    assert_no_secrets(&io);
}

/// RFC 9110 §10.2.3: `Retry-After` on a token-endpoint 503 is honoured.
#[test]
fn retry_after_from_the_token_endpoint_is_honoured() {
    let mut io = connected(config());
    io.respond(Ok(Response {
        status: 503,
        headers: vec![Header::new("Retry-After", "120")],
        body: vec![],
    }));
    let now = NOW + HOUR;
    assert_eq!(
        access_token(&mut io, now, "c1"),
        Err(Refusal::Wait {
            until_ms: now + 120_000,
            why: WaitReason::BackingOff
        })
    );
}

/// RFC 6749 §5.2: `invalid_client` is an operator problem: a client-error
/// state, tokens kept, served while valid; a later success clears it.
#[test]
fn invalid_client_is_a_client_error_that_keeps_tokens() {
    let mut io = connected(config());
    io.respond(json(401, r#"{"error":"invalid_client"}"#));
    let early = NOW + HOUR - 30_000;
    assert_eq!(token_of(access_token(&mut io, early, "c1")), "AT-1");
    let view = status(&mut io, early);
    assert_eq!(view.state, State::ClientError);
    assert!(view.next_action.contains("client id and secret"));
    assert_eq!(io.kinds(), ["client-misconfigured"]);
    // Still refused after expiry: the token is no longer served.
    io.respond(json(400, r#"{"error":"unauthorized_client"}"#));
    let result = access_token(&mut io, NOW + HOUR, "c1");
    let view = status(&mut io, NOW + HOUR);
    let retry_at = view.next_retry_at_ms.unwrap();
    assert_eq!(
        result,
        Err(Refusal::ClientMisconfigured {
            fault: ClientFault::Rejected(crate::classify::ErrorCode::UnauthorizedClient),
            retry_at_ms: Some(retry_at)
        })
    );
    assert_eq!(view.failures, 2);
    // During the back-off: refused without a request.
    assert!(matches!(
        access_token(&mut io, retry_at - 1, "c1"),
        Err(Refusal::ClientMisconfigured { .. })
    ));
    assert_eq!(io.sent.len(), 2);
    assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-1"));
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, retry_at, "c1")), "AT-2");
    assert_eq!(status(&mut io, retry_at).state, State::Connected);
    assert!(io.events.iter().any(|e| {
        e.kind == "refresh-succeeded"
            && e.fields
                .contains(&("cleared-client-error".into(), "unauthorized_client".into()))
    }));
}

/// RFC 6750 §3.1: a 401 refreshes once and says retry; the
/// next success ends the streak, so a later 401 refreshes again.
#[test]
fn rfc6750_api_401_refreshes_once_then_retry() {
    let mut io = connected(config());
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    let action = report(
        &mut io,
        NOW + 1,
        "c1",
        "AT-1",
        &head(401, Some("Bearer error=\"invalid_token\"")),
    )
    .unwrap();
    assert!(matches!(action, ApiAction::Retry(ref b) if b.token.expose() == "AT-2"));
    assert_eq!(
        report(&mut io, NOW + 2, "c1", "AT-2", &head(200, None)).unwrap(),
        ApiAction::Proceed
    );
    io.respond(tokens("AT-3", Some("RT-3"), 3600));
    let action = report(&mut io, NOW + 3, "c1", "AT-2", &head(401, None)).unwrap();
    assert!(matches!(action, ApiAction::Retry(ref b) if b.token.expose() == "AT-3"));
    assert_eq!(io.sent.len(), 2);
    assert_eq!(
        io.kinds(),
        [
            "api-unauthorized",
            "refresh-succeeded",
            "tokens-rotated",
            "api-unauthorized",
            "refresh-succeeded",
            "tokens-rotated"
        ]
    );
}

/// RFC 6749 §6, RFC 6750 §3.1: a 401 right after a 401-forced refresh does
/// not kill the grant. The authorisation server has just refreshed it, and
/// it is the authority on the grant; the API refusing what it issued is an
/// API-side problem. The tokens are kept, nothing is refreshed again (one
/// refresh per 401 streak), and the answer says so, counted in the status.
#[test]
fn api_401_after_a_fresh_refresh_keeps_the_grant() {
    let mut io = connected(config());
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    report(&mut io, NOW + 1, "c1", "AT-1", &head(401, None)).unwrap();
    for attempt in 1..=2 {
        assert_eq!(
            report(&mut io, NOW + 2, "c1", "AT-2", &head(401, None)),
            Ok(ApiAction::RejectedAfterRefresh)
        );
        assert_eq!(status(&mut io, NOW + 2).fresh_token_rejections, attempt);
    }
    assert_eq!(io.sent.len(), 1, "no second refresh");
    assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-2"));
    let view = status(&mut io, NOW + 2);
    assert_eq!((view.state, view.reason), (State::Connected, None));
    assert_eq!(token_of(access_token(&mut io, NOW + 3, "c1")), "AT-2");
    assert_eq!(
        io.kinds(),
        [
            "api-unauthorized",
            "refresh-succeeded",
            "tokens-rotated",
            "api-rejected-fresh-token",
            "api-rejected-fresh-token"
        ]
    );
}

/// A 401 whose refresh is rejected (`invalid_grant`) stays a revocation.
#[test]
fn api_401_whose_refresh_is_rejected_requires_reauthentication() {
    let mut io = connected(config());
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(
        report(&mut io, NOW + 1, "c1", "AT-1", &head(401, None)),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
    assert!(!io.store.contains_key("tokens/c1"));
}

/// Many workers got 401 with the same stale token: one refresh, and the
/// others retry with the stored token.
#[test]
fn api_401_with_an_already_replaced_token_refreshes_nothing() {
    let mut io = connected(config());
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    report(&mut io, NOW + 1, "c1", "AT-1", &head(401, None)).unwrap();
    let action = report(&mut io, NOW + 2, "c1", "AT-1", &head(401, None)).unwrap();
    assert!(matches!(action, ApiAction::Retry(ref b) if b.token.expose() == "AT-2"));
    assert_eq!(io.sent.len(), 1);
}

/// RFC 6750 §3.1 `insufficient_scope`: connected stays, the missing
/// scopes are recorded and the next authorisation requests them.
#[test]
fn rfc6750_insufficient_scope_upgrades_the_next_authorisation() {
    let mut io = connected(config());
    let challenge = r#"Bearer error="insufficient_scope", scope="users:read expenses:write""#;
    assert_eq!(
        report(&mut io, NOW + 1, "c1", "AT-1", &head(403, Some(challenge))).unwrap(),
        ApiAction::InsufficientScope(vec!["users:read".into(), "expenses:write".into()])
    );
    let view = status(&mut io, NOW + 1);
    assert_eq!(view.state, State::Connected);
    assert_eq!(view.missing_scopes, ["expenses:write"]);
    let authorization = authorize::begin(&mut io, NOW + 2, "c1", &BeginOptions::default()).unwrap();
    assert!(authorization.scopes.contains(&"expenses:write".to_owned()));
    // The gate still serves while the upgrade is pending.
    assert_eq!(token_of(access_token(&mut io, NOW + 3, "c1")), "AT-1");
    assert_eq!(
        report(&mut io, NOW + 4, "c1", "AT-1", &head(403, None)).unwrap(),
        ApiAction::Forbidden
    );
}

#[test]
fn rate_limits_and_outages_are_reported_with_their_time() {
    let mut io = connected(config());
    let limited = ResponseHead {
        status: 429,
        headers: vec![Header::new("Retry-After", "30")],
    };
    assert_eq!(
        report(&mut io, NOW, "c1", "AT-1", &limited).unwrap(),
        ApiAction::RateLimited(Some(NOW + 30_000))
    );
    assert_eq!(
        report(&mut io, NOW, "c1", "AT-1", &head(502, None)).unwrap(),
        ApiAction::Transient(None)
    );
    assert_eq!(status(&mut io, NOW).state, State::Connected);
}

/// Single-flight: while another worker holds the lease, an expired token
/// is never served (wait), a valid one is; a crashed holder's lease lapses.
#[test]
fn lease_held_means_wait_and_a_crashed_holder_lapses() {
    let mut io = connected(config());
    let at = NOW + HOUR;
    let lease::Acquire::Acquired(_crashed) =
        drive(&mut io, async |fx| lease::acquire(fx, "c1", at).await).unwrap()
    else {
        panic!("free");
    };
    assert_eq!(
        access_token(&mut io, at + 1, "c1"),
        Err(Refusal::Wait {
            until_ms: at + 1 + lease::POLL_MS,
            why: WaitReason::RefreshInProgress
        })
    );
    // Honoured past its deadline by the skew bound: our clock may run
    // ahead of the holder's.
    let lapses = at + lease::LEASE_MS + lease::MAX_CLOCK_SKEW_MS;
    assert_eq!(status(&mut io, at + 1).refreshing_until_ms, Some(lapses));
    assert!(matches!(
        access_token(&mut io, lapses - 1, "c1"),
        Err(Refusal::Wait { .. })
    ));
    assert!(io.sent.is_empty());
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, lapses, "c1")), "AT-2");
    // Within the margin but valid: served while another worker refreshes.
    let mut io = connected(config());
    drive(&mut io, async |fx| {
        lease::acquire(fx, "c1", NOW + HOUR - 30_000).await
    })
    .unwrap();
    assert_eq!(
        token_of(access_token(&mut io, NOW + HOUR - 29_000, "c1")),
        "AT-1"
    );
}

/// Faults: the store fails while writing the rotated tokens. Once the
/// server has rotated they are the only live tokens, so the write is
/// retried, spaced by `clock.sleep-ms`, until the lease ends: a store that
/// is down for 25 s loses nothing. Down for longer, they are lost, and the
/// answer says so instead of "try again".
#[test]
fn storage_fault_during_refresh_keeps_rotated_tokens_while_the_lease_lasts() {
    let mut io = connected(config());
    io.clock = NOW + HOUR;
    let down_for = 25_000 / u64::from(refresh::STORE_RETRY_MS);
    for _ in 0..down_for {
        io.write_faults
            .push(("tokens/".into(), StorageError::Unavailable("disk".into())));
    }
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, NOW + HOUR, "c1")), "AT-2");
    assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-2"));
    assert!(io.clock >= NOW + HOUR + 25_000, "it waited, on the clock");
    assert!(io.store.keys().all(|k| !k.starts_with("lease/")));

    let mut io = connected(config());
    io.clock = NOW + HOUR;
    for _ in 0..100 {
        io.write_faults
            .push(("tokens/".into(), StorageError::Unavailable("disk".into())));
    }
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RotationLost))
    );
    assert!(
        io.clock < NOW + HOUR + lease::LEASE_MS,
        "gave up within the lease"
    );
    assert!(io.kinds().contains(&"rotated-tokens-lost"));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RotationLost)),
        "the dead tokens are never served"
    );
    assert_eq!(get_config(&mut io, "c1").unwrap(), Some(config()));

    // A read fault before anything happens: typed, nothing sent.
    let mut io = connected(config());
    io.faults
        .push_back(StorageError::Unavailable("down".into()));
    assert!(matches!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Storage(StorageError::Unavailable(_)))
    ));
    assert!(io.sent.is_empty());
}

/// A dead grant while the wipe fails: the status already refuses, so the
/// lingering tokens are never served.
#[test]
fn a_failed_wipe_still_refuses() {
    let mut io = connected(config());
    io.write_faults
        .push(("tokens/".into(), StorageError::Unavailable("disk".into())));
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert!(matches!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Storage(_))
    ));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
}

/// An access token without a refresh token: served until it expires, then
/// re-authentication.
#[test]
fn no_refresh_token_means_reauth_at_expiry() {
    let mut io = FakeIo::default();
    configure(&mut io, "c1", &config()).unwrap();
    authorize_again(&mut io, NOW, tokens("AT-1", None, 3600));
    assert_eq!(
        token_of(access_token(&mut io, NOW + HOUR - 1000, "c1")),
        "AT-1"
    );
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::NoRefreshToken))
    );
}

/// Pleo's how-to step 4: re-authentication reuses the stored configuration
/// and scopes, shows `authorizing` with the reason, and recovers.
#[test]
fn reauthentication_is_non_destructive_and_recovers() {
    let mut io = connected(config());
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    let _ = access_token(&mut io, NOW + HOUR, "c1");
    let authorization =
        authorize::begin(&mut io, NOW + HOUR, "c1", &BeginOptions::default()).unwrap();
    assert_eq!(authorization.scopes, config().scopes);
    let view = status(&mut io, NOW + HOUR);
    assert_eq!(
        (view.state, view.reason),
        (State::Authorizing, Some(Reason::RefreshTokenRejected))
    );
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
    authorize_again(&mut io, NOW + HOUR, tokens("AT-9", Some("RT-9"), 3600));
    assert_eq!(
        token_of(access_token(&mut io, NOW + HOUR + 1, "c1")),
        "AT-9"
    );
    let view = status(&mut io, NOW + HOUR + 1);
    assert_eq!((view.state, view.reason), (State::Connected, None));
    assert!(io.kinds().contains(&"reauth-completed"));
    assert_eq!(get_config(&mut io, "c1").unwrap(), Some(config()));
}

/// RFC 7009 §2.1: disconnect revokes the refresh token when an endpoint
/// is configured (§2.2: 200 even for an invalid token), wipes the tokens
/// and keeps the configuration.
#[test]
fn rfc7009_disconnect_revokes_wipes_and_keeps_config() {
    let with_revocation = ConnectionConfig {
        revocation_url: Some("https://auth.example/oauth/revoke".into()),
        ..config()
    };
    let mut io = connected(with_revocation.clone());
    io.respond(json(200, ""));
    assert_eq!(
        disconnect(&mut io, NOW, "c1", true).unwrap(),
        Revocation::Revoked
    );
    let request = &io.sent[0];
    assert_eq!(request.url, "https://auth.example/oauth/revoke");
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        "token=RT-1&token_type_hint=refresh_token"
    );
    assert_eq!(request.client_auth.as_deref(), Some("client-123"));
    assert!(!io.store.contains_key("tokens/c1"));
    assert_eq!(
        get_config(&mut io, "c1").unwrap(),
        Some(with_revocation.clone())
    );
    assert_eq!(status(&mut io, NOW).state, State::Disconnected);
    assert_eq!(
        access_token(&mut io, NOW, "c1"),
        Err(Refusal::NotConnected(NotConnected::Disconnected))
    );
    assert_eq!(io.kinds(), ["disconnected"]);

    // RFC 7009 §2.2.1: a 503 is a failure; the local wipe happens anyway.
    let mut io = connected(with_revocation);
    io.respond(json(503, r#"{"error":"temporarily_unavailable"}"#));
    assert_eq!(
        disconnect(&mut io, NOW, "c1", true).unwrap(),
        Revocation::Failed("status 503: temporarily_unavailable".into())
    );
    assert!(!io.store.contains_key("tokens/c1"));

    let mut io = connected(config());
    assert_eq!(
        disconnect(&mut io, NOW, "c1", true).unwrap(),
        Revocation::NotConfigured
    );
    assert_eq!(
        disconnect(&mut io, NOW, "c1", false).unwrap(),
        Revocation::NotRequested
    );
    assert!(io.sent.is_empty());
    assert_eq!(
        disconnect(&mut io, NOW, "nope", false),
        Err(DisconnectError::UnknownConnection)
    );
}

#[test]
fn forget_deletes_everything_of_the_connection() {
    let mut io = connected(config());
    configure(&mut io, "other", &config()).unwrap();
    authorize::begin(&mut io, NOW, "c1", &BeginOptions::default()).unwrap();
    drive(&mut io, async |fx| lease::acquire(fx, "c1", NOW).await).unwrap();
    forget(&mut io, "c1").unwrap();
    assert_eq!(io.store.keys().collect::<Vec<_>>(), ["config/other"]);
    assert_eq!(
        access_token(&mut io, NOW, "c1"),
        Err(Refusal::NotConnected(NotConnected::UnknownConnection))
    );
    forget(&mut io, "c1").unwrap();
}

#[test]
fn gate_refusals_for_connections_without_tokens() {
    let mut io = FakeIo::default();
    assert_eq!(
        access_token(&mut io, NOW, "c1"),
        Err(Refusal::NotConnected(NotConnected::UnknownConnection))
    );
    assert_eq!(
        access_token(&mut io, NOW, "bad/id"),
        Err(Refusal::NotConnected(NotConnected::UnknownConnection))
    );
    configure(&mut io, "c1", &config()).unwrap();
    assert_eq!(
        access_token(&mut io, NOW, "c1"),
        Err(Refusal::NotConnected(NotConnected::NeverAuthorized))
    );
    assert!(report(&mut io, NOW, "c1", "x", &head(401, None)).is_err());
}

/// A clock that jumps backwards cannot stretch a back-off beyond its
/// longest wait; one that jumps forwards just finds the token due.
#[test]
fn clock_jumps_have_defined_behaviour() {
    let mut io = connected(config());
    io.respond(json(503, ""));
    let at = NOW + HOUR;
    let _ = access_token(&mut io, at, "c1");
    let retry = status(&mut io, at).next_retry_at_ms.unwrap();
    // Back by a day: the stored retry time is clamped to now + one hour.
    let back = at - 24 * HOUR;
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(
        token_of(access_token(&mut io, back, "c1")),
        "AT-1",
        "valid then"
    );
    assert!(io.sent.len() == 1);
    let clamp = back + backoff::MAX_RETRY_AFTER_MS;
    assert!(clamp < retry);
    // Forwards by a year: the token is due and refreshed.
    assert_eq!(
        token_of(access_token(&mut io, at + 365 * 24 * HOUR, "c1")),
        "AT-2"
    );
}

/// A response lost after the server rotated (RFC 6749 §6 rotation; Pleo
/// invalidates the old tokens at once): a 504 from a proxy, a connection
/// reset after sending, or a worker that stopped. The next refresh's
/// rejection is a lost rotation, not the user's revocation, and the earlier
/// cause survives in the status and the event.
#[test]
fn a_rejection_after_an_unknown_outcome_is_rotation_lost_with_its_cause() {
    for (lost, cause) in [
        (json(504, "<html>gateway timeout</html>"), "status 504"),
        (
            Err(TransportError::ConnectionLost),
            "connection lost after sending",
        ),
        (Err(TransportError::Timeout), "timeout"),
    ] {
        let mut io = connected(config());
        io.respond(lost);
        assert!(access_token(&mut io, NOW + HOUR - 30_000, "c1").is_ok());
        let view = status(&mut io, NOW + HOUR - 30_000);
        assert_eq!(view.state, State::Degraded);
        assert_eq!(
            view.refresh_outcome_unknown_since_ms,
            Some(NOW + HOUR - 30_000)
        );
        io.respond(json(400, r#"{"error":"invalid_grant"}"#));
        assert_eq!(
            access_token(&mut io, NOW + HOUR, "c1"),
            Err(Refusal::Reauthenticate(Reason::RotationLost)),
            "{cause}"
        );
        let view = status(&mut io, NOW + HOUR);
        assert_eq!(
            view.last_error,
            Some(format!("rotation lost after: {cause}"))
        );
        let event = io
            .events
            .iter()
            .find(|e| e.kind == "rotation-lost")
            .unwrap();
        assert!(
            event
                .fields
                .contains(&("earlier-cause".into(), cause.into())),
            "{event:?}"
        );
        assert_eq!(get_config(&mut io, "c1").unwrap(), Some(config()));
    }
}

/// A worker that stopped after the write-ahead record (killed mid-request):
/// its outcome is unknown, so the rejection that follows is a lost rotation.
#[test]
fn a_worker_that_stopped_mid_refresh_leaves_a_record_that_names_it() {
    let mut io = connected(config());
    io.clock = NOW + HOUR;
    // The crash: the lease and the write-ahead record stay behind.
    let lease::Acquire::Acquired(mut lease) = drive(&mut io, async |fx| {
        lease::acquire(fx, "c1", NOW + HOUR).await
    })
    .unwrap() else {
        panic!("free");
    };
    assert!(
        drive(&mut io, async |fx| lease::renew(fx, &mut lease, NOW + HOUR)
            .await)
        .unwrap()
    );
    drive(&mut io, async |fx| {
        status::update(fx, "c1", NOW + HOUR, async |mut s| {
            s.in_flight = Some(status::InFlight {
                token_hash: Secret::new("RT-1").fingerprint(),
                since_ms: NOW + HOUR,
                cause: None,
            });
            Ok::<_, StorageError>(s)
        })
        .await
    })
    .unwrap();
    let later = NOW + HOUR + lease::LEASE_MS + lease::MAX_CLOCK_SKEW_MS;
    io.clock = later;
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(
        access_token(&mut io, later, "c1"),
        Err(Refusal::Reauthenticate(Reason::RotationLost))
    );
    assert_eq!(
        status(&mut io, later).last_error.as_deref(),
        Some("rotation lost after: no outcome recorded (the worker stopped)")
    );
}

/// A request that certainly never left (connection refused) leaves nothing
/// in doubt: a later rejection is the user's revocation, as usual.
#[test]
fn a_request_that_never_left_is_not_in_doubt() {
    let mut io = connected(config());
    io.respond(Err(TransportError::ConnectionRefused));
    let _ = access_token(&mut io, NOW + HOUR - 30_000, "c1");
    assert_eq!(
        status(&mut io, NOW + HOUR - 30_000).refresh_outcome_unknown_since_ms,
        None
    );
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
    );
}

/// The host holds no client secret: a configuration error found before
/// anything is sent (the http import says so, typed), never an outage. No
/// back-off, so the call right after the operator sets the secret refreshes.
#[test]
fn a_missing_client_secret_is_a_client_error_without_back_off() {
    let mut io = connected(config());
    io.respond(Err(TransportError::NoCredentials));
    assert_eq!(
        access_token(&mut io, NOW + HOUR, "c1"),
        Err(Refusal::ClientMisconfigured {
            fault: ClientFault::NoCredentials,
            retry_at_ms: None
        })
    );
    let view = status(&mut io, NOW + HOUR);
    assert_eq!(view.state, State::ClientError);
    assert_eq!(view.next_retry_at_ms, None);
    assert_eq!(view.refresh_outcome_unknown_since_ms, None);
    assert!(view.next_action.contains("client secret is not configured"));
    assert!(io.kinds().contains(&"client-credentials-missing"));
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(
        token_of(access_token(&mut io, NOW + HOUR + 1, "c1")),
        "AT-2"
    );
    assert_eq!(status(&mut io, NOW + HOUR + 1).state, State::Connected);
}

/// After an operator fixes the client secret, `retry-now` clears the
/// back-off so the next call refreshes at once.
#[test]
fn retry_now_clears_the_back_off() {
    let mut io = connected(config());
    io.respond(json(401, r#"{"error":"invalid_client"}"#));
    let refused = access_token(&mut io, NOW + HOUR, "c1");
    assert!(matches!(
        refused,
        Err(Refusal::ClientMisconfigured { retry_at_ms: Some(at), .. }) if at > NOW + HOUR
    ));
    let sent = io.sent.len();
    let _ = access_token(&mut io, NOW + HOUR + 1, "c1");
    assert_eq!(io.sent.len(), sent, "backing off");
    retry_now(&mut io, NOW + HOUR + 1, "c1").unwrap();
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(
        token_of(access_token(&mut io, NOW + HOUR + 1, "c1")),
        "AT-2"
    );
    assert_eq!(
        retry_now(&mut io, NOW, "nobody"),
        Err(StatusError::UnknownConnection)
    );
}

/// Pleo: back off on transient failures, but do not retry indefinitely.
/// After the stall horizon of failures without a break the connection is
/// `stalled`: one error-level event, tokens and configuration kept, a probe
/// at most every 15 minutes, and the first success heals it. Never
/// re-authentication.
#[test]
fn failing_past_the_horizon_stalls_and_heals() {
    let config = ConnectionConfig {
        stall_after_seconds: Some(3600),
        ..config()
    };
    let mut io = connected(config.clone());
    let mut now = NOW + HOUR - 59_000;
    let mut probes = Vec::new();
    while now < NOW + 4 * HOUR {
        io.respond(json(503, "down"));
        let result = access_token(&mut io, now, "c1");
        let view = status(&mut io, now);
        if view.state == State::Stalled {
            let Err(Refusal::Wait { until_ms, why }) = result else {
                panic!("{result:?}");
            };
            assert_eq!(why, WaitReason::Stalled);
            probes.push(until_ms - now);
        }
        now = view.next_retry_at_ms.unwrap();
    }
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|&wait| wait >= refresh::STALLED_PROBE_MS));
    let stalled = io
        .kinds()
        .iter()
        .filter(|k| **k == "refresh-stalled")
        .count();
    assert_eq!(stalled, 1, "said once");
    assert!(!io.kinds().contains(&"reauth-required"));
    assert!(io.store.contains_key("tokens/c1"));
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, now, "c1")), "AT-2");
    let view = status(&mut io, now);
    assert_eq!(
        (view.state, view.failing_since_ms),
        (State::Connected, None)
    );
    assert_eq!(get_config(&mut io, "c1").unwrap(), Some(config));
}

/// A holder that paused past its lease before sending, with nobody taking
/// over meanwhile, renews it and sends: pausing alone is no reason to fail.
#[test]
fn a_holder_paused_past_its_lease_renews_it_before_sending() {
    let mut io = connected(config());
    io.clock = NOW + HOUR + 61_000;
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, NOW + HOUR, "c1")), "AT-2");
    assert_eq!(sent_refresh_tokens(&io), ["RT-1"]);
}

/// Tokens replaced between a caller's first read and its lease (another
/// worker's refresh, or a holder that stored its rotated tokens after a
/// pause): read again under the lease, they are served, and nothing is
/// sent. (The re-read right before sending is exercised by the
/// interleaving tests.)
#[test]
fn tokens_replaced_since_the_callers_read_are_served_not_refreshed() {
    let mut io = connected(config());
    let record = store::TokensRecord {
        access_token: Secret::new("AT-2").into(),
        refresh_token: Some(Secret::new("RT-2").into()),
        expires_at_ms: Some(NOW + 2 * HOUR),
        scopes: vec![],
        obtained_at_ms: NOW + HOUR,
        after_unauthorized: false,
        unconfirmed: false,
        grant: None,
        refused: false,
    };
    let seen = drive(&mut io, async |fx| {
        store::read::<store::TokensRecord>(fx, "tokens/c1").await
    })
    .unwrap()
    .unwrap();
    drive(&mut io, async |fx| {
        store::replace(fx, "tokens/c1", &record).await
    })
    .unwrap();
    let loaded = outcome::Loaded {
        config: config(),
        status: Status::new(NOW),
        tokens: seen,
    };
    // The caller read RT-1 before the replacement; under the lease the
    // tokens are read again and found fresh.
    assert_eq!(
        token_of(drive(&mut io, async |fx| {
            refresh::refresh(fx, NOW + HOUR, "c1", loaded, outcome::Trigger::Expiry).await
        })),
        "AT-2"
    );
    assert!(io.sent.is_empty());
}

/// An authorisation that was begun and never completed (the command was
/// interrupted, the tab closed) stops showing as in progress once it
/// expires: the status shows the state it left the connection in.
#[test]
fn an_abandoned_authorisation_stops_showing_as_in_progress() {
    let mut io = configured();
    authorize::begin(&mut io, NOW, "c1", &BeginOptions::default()).unwrap();
    let view = status(&mut io, NOW + 1);
    assert_eq!(view.state, State::Authorizing);
    let expires = view.authorization_expires_at_ms.unwrap();
    let view = status(&mut io, expires);
    assert_eq!(view.state, State::New);
    assert_eq!(view.since_ms, expires);
    assert!(
        view.next_action.contains("expired or was abandoned"),
        "{}",
        view.next_action
    );
    assert_eq!(view.authorization_expires_at_ms, None);

    // A re-authentication abandoned: still needs it, with its reason.
    let mut io = connected(config());
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    let _ = access_token(&mut io, NOW + HOUR, "c1");
    authorize::begin(&mut io, NOW + HOUR, "c1", &BeginOptions::default()).unwrap();
    let view = status(&mut io, NOW + 2 * HOUR);
    assert_eq!(
        (view.state, view.reason),
        (State::ReauthRequired, Some(Reason::RefreshTokenRejected))
    );
}

/// The user disconnects while a refresh is in flight, and the server
/// rejects the refresh (the disconnect revoked it): the user's choice
/// stands. Not a revocation, no `reauth-required`.
#[test]
fn a_disconnect_during_a_refresh_is_not_reported_as_a_revocation() {
    let mut io = connected(config());
    io.on_send = Some(Box::new(|store, version| {
        store.remove("tokens/c1");
        let mut status: Status =
            crate::connection::store::decode("status/c1", &store.get("status/c1").unwrap().value)
                .unwrap();
        status.state = State::Disconnected;
        *version += 1;
        store.insert(
            "status/c1".into(),
            crate::types::Entry {
                value: serde_json::to_vec(&status).unwrap(),
                version: *version,
            },
        );
    }));
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_disconnected(&mut io, NOW + HOUR);
    assert!(!io.kinds().contains(&"revocation-detected"));
}

/// A refresh whose answer was lost (a 504), then `invalid_client` (the
/// secret was rotated meanwhile): the client error says nothing about the
/// lost request, so once the secret is fixed a rejection is still a lost
/// rotation.
#[test]
fn a_client_error_keeps_an_earlier_unknown_outcome() {
    let mut io = connected(config());
    io.respond(json(504, "<html>gateway timeout</html>"));
    let _ = access_token(&mut io, NOW + HOUR - 30_000, "c1");
    io.respond(json(401, r#"{"error":"invalid_client"}"#));
    let _ = access_token(&mut io, NOW + HOUR + 600_000, "c1");
    assert!(
        status(&mut io, NOW + HOUR + 600_000)
            .refresh_outcome_unknown_since_ms
            .is_some()
    );
    retry_now(&mut io, NOW + HOUR + 600_000, "c1").unwrap();
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(
        access_token(&mut io, NOW + HOUR + 600_001, "c1"),
        Err(Refusal::Reauthenticate(Reason::RotationLost))
    );
}

/// Pleo rotates the refresh token on every refresh, so a refresh answer
/// whose tokens are usable is stored whatever its describing members say:
/// `3600.0` and `3.6e3` are the number 3600 (RFC 8259 §6), an `expires_in`
/// or `scope` that is out of range or malformed is dropped, and a missing
/// `token_type` is taken as the Bearer the code exchange checked.
/// Refusing the answer would re-send RT-1 at the next refresh, which reuse
/// detection answers by revoking the grant.
#[test]
fn pleo_rotation_a_usable_refresh_answer_is_stored_whatever_describes_it() {
    for (members, expires_at_ms) in [
        (r#""expires_in":3600.0"#, Some(HOUR)),
        (r#""expires_in":3.6e3"#, Some(HOUR)),
        (r#""expires_in":0"#, None),
        (r#""expires_in":"soon""#, None),
        (
            r#""expires_in":3600,"scope":"users:read\texport-jobs:write""#,
            Some(HOUR),
        ),
        (r#""expires_in":3600,"note":"\ud800","x":1e400"#, Some(HOUR)),
        // A repeated name counts last: no token type.
        (r#""expires_in":3600,"token_type":null"#, Some(HOUR)),
    ] {
        let mut io = connected(config());
        let at = NOW + HOUR - 30_000;
        io.respond(json(
            200,
            &format!(r#"{{"access_token":"AT-2","token_type":"Bearer","refresh_token":"RT-2",{members}}}"#),
        ));
        assert_eq!(
            token_of(access_token(&mut io, at, "c1")),
            "AT-2",
            "{members}"
        );
        assert_eq!(
            stored_refresh(&mut io).as_deref(),
            Some("RT-2"),
            "{members}"
        );
        let stored = drive(&mut io, async |fx| {
            store::read::<store::TokensRecord>(fx, "tokens/c1").await
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            stored
                .value
                .expires_at_ms
                .map(|ms| ms - stored.value.obtained_at_ms),
            expires_at_ms,
            "{members}"
        );
        assert_eq!(sent_refresh_tokens(&io), ["RT-1"], "{members}");
    }
}

/// Connected `c1` (AT-1), whose next request, a refresh at `at`, is
/// answered only after a re-authorisation (AT-9 / RT-9) has completed.
fn reauthorised_during_the_next_refresh(at: u64) -> FakeIo {
    let mut io = connected(config());
    let callback = pending_callback(&mut io, at);
    io.meanwhile(move |other| {
        other.respond(tokens("AT-9", Some("RT-9"), 3600));
        authorize::complete(other, at, &callback, Some("c1")).unwrap();
    });
    io
}

/// A re-authorisation that completes while a refresh of the old grant is
/// out is a new grant, not another worker's rotation (Pleo's reuse
/// detection makes the difference matter): when the old refresh token is
/// then rejected, the new grant is served as it is, and none of its tokens
/// is sent to "confirm" it.
#[test]
fn pleo_rotation_a_new_authorisation_during_a_refresh_is_not_a_rotation() {
    let at = NOW + HOUR - 30_000;
    let mut io = reauthorised_during_the_next_refresh(at);
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_eq!(token_of(access_token(&mut io, at, "c1")), "AT-9");
    assert_eq!(sent_refresh_tokens(&io), ["RT-1"]);
    assert_eq!(status(&mut io, at).state, State::Connected);
    assert_eq!(token_of(access_token(&mut io, at + 1_000, "c1")), "AT-9");
    assert_eq!(io.sent.len(), 1);
}

/// The same race, when the old refresh fails for a transient reason: the
/// failure is the old grant's, so the new grant starts with a clean
/// history (no back-off, no failure count).
#[test]
fn a_new_authorisation_during_a_refresh_does_not_inherit_its_failure() {
    let at = NOW + HOUR - 30_000;
    let mut io = reauthorised_during_the_next_refresh(at);
    io.respond(json(503, "<html>busy</html>"));
    assert!(matches!(
        access_token(&mut io, at, "c1"),
        Err(Refusal::Wait { .. })
    ));
    let view = status(&mut io, at);
    assert_eq!(
        (view.state, view.failures, view.next_retry_at_ms),
        (State::Connected, 0, None)
    );
    assert_eq!(token_of(access_token(&mut io, at + 1_000, "c1")), "AT-9");
}

/// `disconnect` while a refresh is out, which then fails (a timeout, or the
/// client refused): the user's choice stands. The connection stays
/// disconnected, holds no tokens, and the caller gets none.
#[test]
fn a_disconnect_during_a_refresh_stands_whatever_the_refresh_ends_in() {
    for answer in [
        Err(TransportError::Timeout),
        json(401, r#"{"error":"invalid_client"}"#),
        json(400, r#"{"error":"invalid_grant"}"#),
    ] {
        let mut io = connected(config());
        let at = NOW + HOUR - 30_000;
        io.meanwhile(move |other| disconnect(other, at, "c1", false).map(drop).unwrap());
        io.respond(answer);
        let first = access_token(&mut io, at, "c1");
        assert!(
            first.is_err(),
            "{:?}",
            first.map(|b| b.token.into_exposed())
        );
        let view = status(&mut io, at);
        assert_eq!((view.state, view.failures), (State::Disconnected, 0));
        assert!(!io.store.contains_key("tokens/c1"));
        assert_eq!(
            access_token(&mut io, at + 1, "c1"),
            Err(Refusal::NotConnected(NotConnected::Disconnected))
        );
    }
}

/// `disconnect` after a rejected refresh re-read the tokens and before it
/// wiped them: the user's choice stands over the verdict.
#[test]
fn a_disconnect_before_a_rejection_is_acted_on_stands() {
    let mut io = connected(config());
    io.meanwhile_after_reading("tokens/c1", |other| {
        disconnect(other, NOW + HOUR, "c1", false)
            .map(drop)
            .unwrap();
    });
    io.respond(json(400, r#"{"error":"invalid_grant"}"#));
    assert_disconnected(&mut io, NOW + HOUR);
    assert!(!io.kinds().contains(&"reauth-required"), "{:?}", io.kinds());
}

/// `forget` while a refresh is out, which then times out: nothing of the
/// connection comes back, or a connection configured later under the same
/// id would start with this one's failures.
#[test]
fn a_forget_during_a_refresh_stands() {
    let mut io = connected(config());
    let at = NOW + HOUR - 30_000;
    io.meanwhile(|other| forget(other, "c1").unwrap());
    io.respond(Err(TransportError::Timeout));
    assert!(access_token(&mut io, at, "c1").is_err());
    let left: Vec<&String> = io.store.keys().collect();
    assert!(left.is_empty(), "left after forget: {left:?}");
}

/// Overwrites `key` with bytes that are not a record.
fn damage(io: &mut FakeIo, key: &str) {
    let entry = io.store.get_mut(key).expect("the record to damage");
    entry.value = br#"{"format":1,"record":{"#.to_vec();
}

/// A damaged record never locks a connection up, and never costs the
/// configuration: `configure` replaces a damaged configuration, an
/// authorisation replaces damaged tokens (the code is not spent for
/// nothing), `disconnect` gets past damaged tokens and a damaged status, and
/// `forget` past a damaged status. A record of a newer format is still
/// refused: it is not damaged, and overwriting it would lose a newer
/// release's data.
#[test]
fn a_damaged_record_is_replaced_or_removed_never_a_dead_end() {
    let mut io = connected(config());
    damage(&mut io, "config/c1");
    configure(&mut io, "c1", &config()).unwrap();
    assert_eq!(token_of(access_token(&mut io, NOW + 1_000, "c1")), "AT-1");

    let mut io = connected(config());
    damage(&mut io, "tokens/c1");
    authorize_again(&mut io, NOW, tokens("AT-9", Some("RT-9"), 3600));
    assert_eq!(token_of(access_token(&mut io, NOW + 1_000, "c1")), "AT-9");

    let mut io = connected(config());
    damage(&mut io, "tokens/c1");
    damage(&mut io, "status/c1");
    assert_eq!(
        disconnect(&mut io, NOW, "c1", false),
        Ok(Revocation::NotRequested)
    );
    assert_eq!(status(&mut io, NOW).state, State::Disconnected);
    assert!(!io.store.contains_key("tokens/c1"));
    authorize_again(&mut io, NOW, tokens("AT-9", Some("RT-9"), 3600));
    assert_eq!(token_of(access_token(&mut io, NOW + 1_000, "c1")), "AT-9");

    let mut io = connected(config());
    damage(&mut io, "status/c1");
    forget(&mut io, "c1").unwrap();
    let left: Vec<&String> = io.store.keys().collect();
    assert!(left.is_empty(), "left after forget: {left:?}");

    let mut io = connected(config());
    io.store.get_mut("config/c1").unwrap().value = br#"{"format":2,"record":{}}"#.to_vec();
    assert!(matches!(
        configure(&mut io, "c1", &config()),
        Err(ConfigureError::Storage(StorageError::Corrupt(_)))
    ));
}

/// `access-token` never returns a token known to be dead: when the API
/// refuses the access token (401) and no refresh can replace it yet
/// (backing off after an outage), the gate stops serving it, though it has
/// not expired, and serves the refreshed one once the back-off ends.
#[test]
fn rfc6750_3_1_a_token_the_api_refused_is_not_served_while_backing_off() {
    let mut io = connected(config());
    let at = NOW + HOUR - 30_000;
    io.respond(json(503, "<html>down</html>"));
    assert_eq!(token_of(access_token(&mut io, at, "c1")), "AT-1");
    let action = report(&mut io, at + 10, "c1", "AT-1", &head(401, None));
    let Err(Refusal::Wait { until_ms, .. }) = action else {
        panic!("{action:?}");
    };
    assert!(matches!(
        access_token(&mut io, at + 20, "c1"),
        Err(Refusal::Wait { .. })
    ));
    assert_eq!(io.sent.len(), 1, "nothing sent while backing off");
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert_eq!(token_of(access_token(&mut io, until_ms, "c1")), "AT-2");
}

/// WIT `report`: any response to a token a 401 refreshed that shows it
/// authenticated ends the 401 streak; a 403 refuses the user, not the
/// token. A later 401 to it is a new streak: refresh once again.
#[test]
fn a_403_to_a_token_a_401_refreshed_ends_the_streak() {
    let mut io = connected(config());
    let at = NOW + 1_000;
    io.respond(tokens("AT-2", Some("RT-2"), 3600));
    assert!(matches!(
        report(&mut io, at, "c1", "AT-1", &head(401, None)),
        Ok(ApiAction::Retry(_))
    ));
    assert_eq!(
        report(&mut io, at + 1, "c1", "AT-2", &head(403, None)),
        Ok(ApiAction::Forbidden)
    );
    io.respond(tokens("AT-3", Some("RT-3"), 3600));
    let later = report(&mut io, at + 60_000, "c1", "AT-2", &head(401, None));
    assert!(matches!(later, Ok(ApiAction::Retry(_))), "{later:?}");
}

/// Scopes an API names in `insufficient_scope` are asked for by the next
/// authorisation only when they are Pleo scopes (`resource:permission`):
/// any other would make every authorisation fail.
#[test]
fn rfc6750_3_1_only_pleo_scopes_an_api_names_are_asked_for() {
    let mut io = connected(config());
    let challenge = r#"Bearer error="insufficient_scope", scope="openid export-jobs:write""#;
    report(&mut io, NOW + 1, "c1", "AT-1", &head(403, Some(challenge))).unwrap();
    let authorization = authorize::begin(&mut io, NOW + 2, "c1", &BeginOptions::default()).unwrap();
    assert!(
        authorization
            .scopes
            .iter()
            .all(|s| config::is_pleo_scope(s))
    );
    assert!(
        authorization
            .scopes
            .contains(&"export-jobs:write".to_owned())
    );
    assert!(!authorization.scopes.contains(&"openid".to_owned()));
}

/// Races run one storage or HTTP step at a time through `steps`, so that
/// two calls interleave exactly where a window opens.
mod stepwise {
    use super::*;
    use crate::effects::{Effect, EffectResult, perform};
    use crate::steps::{Call, Operation, Outcome, Step};

    /// One call, driven an effect at a time on a shared `FakeIo`.
    struct Op {
        op: Operation,
        pending: Option<Step>,
    }

    impl Op {
        fn start(call: Call) -> Self {
            let mut op = Operation::new(call);
            let pending = Some(op.next(None).unwrap());
            Op { op, pending }
        }

        fn effect(&self) -> &Effect {
            match self.pending.as_ref().unwrap() {
                Step::Effect(effect) => effect,
                Step::Done(outcome) => panic!("already done: {outcome:?}"),
            }
        }

        fn answer(&mut self, result: EffectResult) {
            self.pending = Some(self.op.next(Some(result)).unwrap());
        }

        fn step(&mut self, io: &mut FakeIo) {
            let result = perform(io, self.effect().clone());
            self.answer(result);
        }

        /// Performs effects until the next one matches (not performed).
        fn until(&mut self, io: &mut FakeIo, matches: impl Fn(&Effect) -> bool) {
            while !matches(self.effect()) {
                self.step(io);
            }
        }

        fn finish(&mut self, io: &mut FakeIo) -> Outcome {
            loop {
                match self.pending.take().unwrap() {
                    Step::Done(outcome) => return outcome,
                    Step::Effect(effect) => {
                        let result = perform(io, effect);
                        self.pending = Some(self.op.next(Some(result)).unwrap());
                    }
                }
            }
        }
    }

    fn is_send(effect: &Effect) -> bool {
        matches!(effect, Effect::HttpSend(_))
    }

    fn is_put(key: &'static str) -> impl Fn(&Effect) -> bool {
        move |effect| matches!(effect, Effect::StoragePut { key: k, .. } if k == key)
    }

    fn is_delete(key: &'static str) -> impl Fn(&Effect) -> bool {
        move |effect| matches!(effect, Effect::StorageDelete { key: k, .. } if k == key)
    }

    fn is_get(key: &'static str) -> impl Fn(&Effect) -> bool {
        move |effect| matches!(effect, Effect::StorageGet(k) if k == key)
    }

    fn complete(callback: String) -> Op {
        Op::start(Call::Complete {
            callback,
            connection: Some("c1".into()),
        })
    }

    /// A code exchange that has claimed its flow and is about to store its
    /// tokens (AT-2), on a connected `c1`.
    fn claimed_exchange() -> (FakeIo, Op) {
        claimed_exchange_of(config())
    }

    /// A first authorisation's code exchange that has claimed its flow and
    /// is about to store its tokens (AT-2), on a configured `c1`.
    fn claimed_first_exchange() -> (FakeIo, Op) {
        let mut io = configured();
        let callback = pending_callback(&mut io, NOW);
        io.respond(tokens("AT-2", Some("RT-2"), 3600));
        let mut exchange = complete(callback);
        exchange.until(&mut io, is_put("tokens/c1"));
        (io, exchange)
    }

    /// [`claimed_exchange`] on a connection with this configuration.
    fn claimed_exchange_of(config: ConnectionConfig) -> (FakeIo, Op) {
        let mut io = connected(config);
        let callback = pending_callback(&mut io, NOW);
        io.respond(tokens("AT-2", Some("RT-2"), 3600));
        let mut exchange = complete(callback);
        exchange.until(&mut io, is_put("tokens/c1"));
        (io, exchange)
    }

    /// `disconnect` between a code exchange's claim and its token write:
    /// the exchange takes its tokens back, and the gate refuses.
    #[test]
    fn a_disconnect_between_the_claim_and_the_tokens_stands() {
        let (mut io, mut exchange) = claimed_exchange();
        disconnect(&mut io, NOW + 1, "c1", false).unwrap();
        let completed = exchange.finish(&mut io);
        assert!(
            matches!(completed, Outcome::Complete(Err(_))),
            "{completed:?}"
        );
        assert!(!io.store.contains_key("tokens/c1"));
        assert_eq!(status(&mut io, NOW + 2).state, State::Disconnected);
        assert_eq!(
            access_token(&mut io, NOW + 2, "c1"),
            Err(Refusal::NotConnected(NotConnected::Disconnected))
        );
    }

    /// The same with `forget`: a connection configured later under the same
    /// id starts with nothing.
    #[test]
    fn a_forget_between_the_claim_and_the_tokens_stands() {
        let (mut io, mut exchange) = claimed_exchange();
        forget(&mut io, "c1").unwrap();
        let completed = exchange.finish(&mut io);
        assert!(
            matches!(completed, Outcome::Complete(Err(_))),
            "{completed:?}"
        );
        let left: Vec<&String> = io.store.keys().collect();
        assert!(left.is_empty(), "left after forget: {left:?}");
        configure(&mut io, "c1", &config()).unwrap();
        assert_eq!(
            access_token(&mut io, NOW + 2, "c1"),
            Err(Refusal::NotConnected(NotConnected::NeverAuthorized))
        );
    }

    /// A code exchange finishing while `disconnect` or `forget` is under
    /// way, on either side of it: afterwards nothing is served, and a
    /// connection configured again under the same id starts with nothing.
    #[test]
    fn a_code_exchange_finishing_during_a_disconnect_or_forget_keeps_nothing() {
        for forgetting in [false, true] {
            let mut io = connected(config());
            let callback = pending_callback(&mut io, NOW);
            io.respond(tokens("AT-2", Some("RT-2"), 3600));
            let mut exchange = complete(callback);
            exchange.until(&mut io, is_send);
            exchange.step(&mut io);
            let mut ending = Op::start(if forgetting {
                Call::Forget("c1".into())
            } else {
                Call::Disconnect {
                    connection: "c1".into(),
                    revoke: false,
                }
            });
            ending.until(&mut io, is_get("status/c1"));
            let _ = exchange.finish(&mut io);
            let _ = ending.finish(&mut io);
            if forgetting {
                configure(&mut io, "c1", &config()).unwrap();
            }
            let expected = if forgetting {
                NotConnected::NeverAuthorized
            } else {
                NotConnected::Disconnected
            };
            assert_eq!(
                access_token(&mut io, NOW + 20, "c1"),
                Err(Refusal::NotConnected(expected)),
                "forgetting: {forgetting}"
            );
        }
    }

    /// An exchange that claimed its flow before a `disconnect` (or a
    /// `forget` and a new `configure`), and writes its tokens after the user
    /// began again: the new flow's status does not name its grant, so it
    /// writes nothing, and nothing is served while the new flow is pending.
    #[test]
    fn an_overtaken_claim_writes_nothing_even_after_a_new_begin() {
        for forgetting in [true, false] {
            let (mut io, mut exchange) = claimed_exchange();
            if forgetting {
                forget(&mut io, "c1").unwrap();
                configure(&mut io, "c1", &config()).unwrap();
            } else {
                disconnect(&mut io, NOW + 1, "c1", false).unwrap();
            }
            pending_callback(&mut io, NOW + 2);
            let completed = exchange.finish(&mut io);
            assert!(
                matches!(completed, Outcome::Complete(Err(_))),
                "{completed:?}"
            );
            assert!(
                !io.store.contains_key("tokens/c1"),
                "forgetting: {forgetting}"
            );
            assert_eq!(
                access_token(&mut io, NOW + 3, "c1"),
                Err(Refusal::NotConnected(NotConnected::NeverAuthorized)),
                "forgetting: {forgetting}"
            );
        }
    }

    /// A scope upgrade: a refresh of the old grant ends, rejected or failed,
    /// after the new authorisation claimed the connection and before its
    /// tokens are written. The old grant's death or failure is not the
    /// connection's: the new grant is stored, connected with a clean
    /// history, and served.
    #[test]
    fn a_refresh_of_the_old_grant_ending_after_a_claim_spares_the_new_one() {
        for answer in [json(400, r#"{"error":"invalid_grant"}"#), json(503, "{}")] {
            let mut io = connected(config());
            let upgrade = pending_callback(&mut io, NOW + HOUR - 1_000);
            io.clock = NOW + HOUR;
            let mut refresh = Op::start(Call::AccessToken("c1".into()));
            refresh.until(&mut io, is_send);
            let mut exchange = complete(upgrade);
            exchange.until(&mut io, is_send);
            io.respond(tokens("AT-2", Some("RT-2"), 3600));
            exchange.step(&mut io);
            exchange.until(&mut io, is_put("tokens/c1"));
            io.respond(answer);
            let refreshed = refresh.finish(&mut io);
            assert!(
                matches!(refreshed, Outcome::AccessToken(Err(_))),
                "{refreshed:?}"
            );
            let completed = exchange.finish(&mut io);
            assert!(
                matches!(completed, Outcome::Complete(Ok(_))),
                "{completed:?}"
            );
            let view = status(&mut io, NOW + HOUR + 1);
            assert_eq!(
                (view.state, view.reason, view.failures),
                (State::Connected, None, 0)
            );
            assert_eq!(
                token_of(access_token(&mut io, NOW + HOUR + 1, "c1")),
                "AT-2"
            );
        }
    }

    /// Re-authorising a dead grant while storage fails the token write: the
    /// connection goes back to needing re-authentication, with its reason,
    /// as after a failed exchange.
    #[test]
    fn a_failed_token_write_returns_to_the_state_before() {
        let mut io = connected(config());
        io.respond(json(400, r#"{"error":"invalid_grant"}"#));
        assert!(access_token(&mut io, NOW + HOUR, "c1").is_err());
        let callback = pending_callback(&mut io, NOW + HOUR);
        io.clock = NOW + HOUR;
        io.respond(tokens("AT-2", Some("RT-2"), 3600));
        let mut exchange = complete(callback);
        exchange.until(&mut io, is_put("tokens/c1"));
        exchange.answer(EffectResult::StoragePut(Err(StorageError::Unavailable(
            "down".into(),
        ))));
        let completed = exchange.finish(&mut io);
        assert!(
            matches!(completed, Outcome::Complete(Err(_))),
            "{completed:?}"
        );
        assert!(!io.store.contains_key("tokens/c1"));
        let view = status(&mut io, NOW + HOUR + 1);
        assert_eq!(
            (view.state, view.reason),
            (State::ReauthRequired, Some(Reason::RefreshTokenRejected))
        );
    }

    /// A token write whose outcome was unknown, landed, and was rotated by
    /// a refresh of the new grant before the exchange looked again: the
    /// exchange takes it as landed and never writes its own, rotated-away
    /// refresh token back (reuse detection would revoke the grant).
    #[test]
    fn pleo_rotation_a_landed_write_is_never_repeated_over_a_rotation() {
        let (mut io, mut exchange) = claimed_exchange();
        let put = exchange.effect().clone();
        let _ = perform(&mut io, put);
        exchange.answer(EffectResult::StoragePut(Err(StorageError::OutcomeUnknown(
            "timeout".into(),
        ))));
        io.clock = NOW + HOUR;
        io.respond(tokens("AT-3", Some("RT-3"), 3600));
        assert_eq!(token_of(access_token(&mut io, NOW + HOUR, "c1")), "AT-3");
        assert!(matches!(exchange.finish(&mut io), Outcome::Complete(Ok(_))));
        assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-3"));
    }

    /// A claim whose tokens never came (its worker stopped, or storage
    /// failed the write and the way back) binds the grant still stored for
    /// a bounded time only: after it, that grant's rejection is reported
    /// and its tokens wiped, and its transient failures back off.
    #[test]
    fn an_abandoned_claim_does_not_silence_the_grant_still_stored() {
        let (mut io, exchange) = claimed_exchange();
        drop(exchange);
        let after = NOW + status::CLAIM_BINDS_MS;
        io.respond(json(400, r#"{"error":"invalid_grant"}"#));
        assert_eq!(
            access_token(&mut io, after + HOUR, "c1"),
            Err(Refusal::Reauthenticate(Reason::RefreshTokenRejected))
        );
        assert!(!io.store.contains_key("tokens/c1"));

        let (mut io, mut exchange) = claimed_exchange();
        let down = || StorageError::Unavailable("down".into());
        exchange.answer(EffectResult::StoragePut(Err(down())));
        exchange.until(&mut io, is_put("status/c1"));
        exchange.answer(EffectResult::StoragePut(Err(down())));
        assert!(matches!(
            exchange.finish(&mut io),
            Outcome::Complete(Err(_))
        ));
        io.respond(json(503, "{}"));
        let _ = access_token(&mut io, after + HOUR, "c1");
        let view = status(&mut io, after + HOUR);
        assert_eq!(view.failures, 1, "the failure is recorded");
        assert!(view.next_retry_at_ms.is_some(), "and backed off");
    }

    /// A first authorisation whose claim was abandoned (its worker
    /// stopped after claiming): while the claim binds the connection shows
    /// connected, its tokens may yet come; after, it is new again, in the
    /// status view and, once the gate has seen it, in listings; nothing is
    /// served, and connecting again works.
    #[test]
    fn an_abandoned_first_claim_leaves_the_connection_new() {
        let (mut io, exchange) = claimed_first_exchange();
        drop(exchange);
        let listed = |io: &mut FakeIo, now| list(io, now, None, 10).unwrap().connections[0].state;
        assert_eq!(status(&mut io, NOW + 1).state, State::Connected);
        let after = NOW + status::CLAIM_BINDS_MS;
        let view = status(&mut io, after);
        assert_eq!((view.state, view.reason), (State::New, None));
        assert!(
            view.next_action.contains("abandoned"),
            "{}",
            view.next_action
        );
        assert_eq!(listed(&mut io, after), State::Connected, "not yet settled");
        assert_eq!(
            access_token(&mut io, after, "c1"),
            Err(Refusal::NotConnected(NotConnected::NeverAuthorized))
        );
        assert_eq!(listed(&mut io, after), State::New);
        authorize_again(&mut io, after, tokens("AT-3", Some("RT-3"), 3600));
        assert_eq!(token_of(access_token(&mut io, after + 1, "c1")), "AT-3");
        assert_eq!(listed(&mut io, after + 1), State::Connected);
    }

    /// A first authorisation's code exchange overtaken by a `disconnect`
    /// after its write, whose taking back storage refused: AT-2 / RT-2 left
    /// on a disconnected `c1`.
    fn left_after_a_disconnect() -> FakeIo {
        let (mut io, mut exchange) = claimed_first_exchange();
        disconnect(&mut io, NOW + 1, "c1", false).unwrap();
        exchange.step(&mut io);
        exchange.until(&mut io, is_delete("tokens/c1"));
        exchange.answer(EffectResult::StorageDelete(Err(StorageError::Unavailable(
            "down".into(),
        ))));
        assert!(matches!(
            exchange.finish(&mut io),
            Outcome::Complete(Err(_))
        ));
        assert!(io.store.contains_key("tokens/c1"), "the fault left them");
        io
    }

    /// When taking the tokens back fails too, a disconnected connection
    /// still never serves them, and never refreshes them: no request goes
    /// out however often it is asked.
    #[test]
    fn tokens_left_on_a_disconnected_connection_are_never_served_or_refreshed() {
        let mut io = left_after_a_disconnect();
        let sent = io.sent.len();
        for minute in 0..3 {
            let at = NOW + 2 * HOUR + minute * 60_000;
            assert_eq!(
                access_token(&mut io, at, "c1"),
                Err(Refusal::NotConnected(NotConnected::Disconnected))
            );
        }
        assert_eq!(io.sent.len(), sent);
    }

    /// Tokens a fault left on a disconnected connection (the exchange's
    /// taking back refused, or the disconnect's own wipe) are the grant the
    /// user ended: `begin` removes them before the connection leaves
    /// `disconnected`, so they are neither served while the new
    /// authorisation is pending nor settled back onto when the user denies
    /// it.
    #[test]
    fn tokens_a_disconnect_left_never_come_back_when_the_user_reconnects() {
        let mut wipe_refused = connected(config());
        let down = StorageError::Unavailable("down".into());
        wipe_refused.write_faults.push(("tokens/c1".into(), down));
        assert!(disconnect(&mut wipe_refused, NOW + 1, "c1", false).is_err());
        assert_disconnected(&mut wipe_refused, NOW + 2);
        let cases = [
            (left_after_a_disconnect(), false),
            (left_after_a_disconnect(), true),
            (wipe_refused, true),
        ];
        for (mut io, deny) in cases {
            assert!(io.store.contains_key("tokens/c1"));
            let callback = pending_callback(&mut io, NOW + 3);
            assert!(!io.store.contains_key("tokens/c1"), "deny: {deny}");
            let never = Err(Refusal::NotConnected(NotConnected::NeverAuthorized));
            assert_eq!(access_token(&mut io, NOW + 4, "c1"), never);
            if deny {
                let denied = callback.replace("code=CODE", "error=access_denied");
                assert!(authorize::complete(&mut io, NOW + 5, &denied, Some("c1")).is_err());
                assert_eq!(status(&mut io, NOW + 6).state, State::New);
                assert_eq!(access_token(&mut io, NOW + 6, "c1"), never);
            }
        }
    }

    /// A `begin` on a disconnected connection that read the tokens a fault
    /// left while, in another tab, the user began and completed an
    /// authorisation: the new grant's tokens stay; only the ended grant's
    /// would have gone.
    #[test]
    fn a_begin_spares_tokens_an_authorisation_stored_since_it_looked() {
        let mut io = left_after_a_disconnect();
        let mut slow = Op::start(Call::Begin {
            connection: "c1".into(),
            options: BeginOptions::default(),
        });
        slow.until(&mut io, is_get("tokens/c1"));
        slow.step(&mut io);
        authorize_again(&mut io, NOW + 3, tokens("AT-9", Some("RT-9"), 3600));
        assert!(matches!(slow.finish(&mut io), Outcome::Begin(Ok(_))));
        assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-9"));
    }

    /// A refresh that stored its tokens before a disconnect, and writes its
    /// status after it, does not bring the connection back.
    #[test]
    fn a_refresh_finishing_after_a_disconnect_does_not_revive_it() {
        let mut io = connected(config());
        io.respond(tokens("AT-2", Some("RT-2"), 3600));
        io.meanwhile_after_reading("status/c1", |other| {
            disconnect(other, NOW + HOUR, "c1", false)
                .map(drop)
                .unwrap();
        });
        assert_eq!(
            access_token(&mut io, NOW + HOUR, "c1"),
            Err(Refusal::NotConnected(NotConnected::Disconnected))
        );
        assert!(!io.store.contains_key("tokens/c1"));
        assert_eq!(status(&mut io, NOW + HOUR + 1).state, State::Disconnected);
    }

    /// A superseded flow's exchange never writes tokens, so a refresh of the
    /// live grant running at the same time keeps its rotation (Pleo's reuse
    /// detection would revoke the grant if the old refresh token came back).
    #[test]
    fn pleo_rotation_a_superseded_exchange_never_undoes_a_rotation() {
        let mut io = connected(config());
        let superseded = pending_callback(&mut io, NOW + HOUR - 1_000);
        io.clock = NOW + HOUR;
        let mut refresh = Op::start(Call::AccessToken("c1".into()));
        refresh.until(&mut io, is_send);
        io.respond(tokens("AT-R", Some("RT-R"), 3600));
        refresh.step(&mut io);
        refresh.until(&mut io, is_put("tokens/c1"));
        let mut exchange = complete(superseded);
        exchange.until(&mut io, is_send);
        pending_callback(&mut io, NOW + HOUR);
        io.respond(tokens("AT-2", Some("RT-2"), 3600));
        exchange.step(&mut io);
        exchange.until(&mut io, is_get("status/c1"));
        let served = refresh.finish(&mut io);
        assert!(matches!(
            exchange.finish(&mut io),
            Outcome::Complete(Err(_))
        ));
        assert!(matches!(served, Outcome::AccessToken(Ok(_))), "{served:?}");
        assert_eq!(stored_refresh(&mut io).as_deref(), Some("RT-R"));
        io.respond(tokens("AT-S", Some("RT-S"), 3600));
        assert_eq!(
            token_of(access_token(&mut io, NOW + 3 * HOUR, "c1")),
            "AT-S"
        );
        assert_eq!(
            sent_refresh_tokens(&io).last().map(String::as_str),
            Some("RT-R")
        );
    }

    /// The test configuration with a revocation endpoint.
    fn revocable() -> ConnectionConfig {
        ConnectionConfig {
            revocation_url: Some("https://auth.example/oauth/revoke".into()),
            ..config()
        }
    }

    /// The tokens sent to the revocation endpoint, in order.
    fn revoked_tokens(io: &FakeIo) -> Vec<String> {
        io.sent
            .iter()
            .filter(|r| r.url.ends_with("/oauth/revoke"))
            .map(|r| {
                let body = String::from_utf8_lossy(&r.body).into_owned();
                let pairs: Vec<(String, String)> = ::url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                pairs.into_iter().find(|(k, _)| k == "token").unwrap().1
            })
            .collect()
    }

    /// The `late-grant-revoked` events' `by` and `revocation` fields.
    fn late_revocations(io: &FakeIo) -> Vec<(String, String)> {
        let field = |e: &crate::types::Event, name: &str| {
            e.fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        io.events
            .iter()
            .filter(|e| e.kind == "late-grant-revoked")
            .map(|e| (field(e, "by"), field(e, "revocation")))
            .collect()
    }

    /// RFC 7009 §2.1: a `disconnect` with revocation that a code exchange
    /// or a refresh overtakes, at each point where it can (the request
    /// out; between the exchange's claim and its write; between the
    /// refresh's token write and its status write), revokes the grant it
    /// knows, and the call that brings tokens back revokes those: they are
    /// in no record, so nobody else could. The user asked that no grant
    /// stay alive at the server. Without revocation asked, nothing is sent.
    #[test]
    fn rfc7009_tokens_brought_back_after_a_disconnect_with_revocation_are_revoked() {
        for revoke in [true, false] {
            let ending = move |other: &mut FakeIo| {
                disconnect(other, NOW + 1, "c1", revoke).map(drop).unwrap();
            };
            // A code exchange, with the disconnect during its request.
            let mut io = connected(revocable());
            let callback = pending_callback(&mut io, NOW);
            io.respond(tokens("AT-2", Some("RT-2"), 3600));
            io.respond(json(200, ""));
            io.meanwhile(ending);
            let completed = authorize::complete(&mut io, NOW, &callback, Some("c1"));
            assert!(completed.is_err(), "{revoke}");
            // A code exchange, with the disconnect after its claim.
            let (mut claimed, mut exchange) = claimed_exchange_of(revocable());
            disconnect(&mut claimed, NOW + 1, "c1", revoke).unwrap();
            claimed.sent.clear();
            claimed.respond(json(200, ""));
            let completed = exchange.finish(&mut claimed);
            assert!(matches!(completed, Outcome::Complete(Err(_))), "{revoke}");
            // A refresh, with the disconnect during its request (its write
            // then finds no tokens), or between its two writes.
            let mut during = connected(revocable());
            during.respond(tokens("AT-3", Some("RT-3"), 3600));
            during.respond(json(200, ""));
            during.meanwhile(ending);
            let mut between = connected(revocable());
            between.respond(tokens("AT-3", Some("RT-3"), 3600));
            between.respond(json(200, ""));
            between.meanwhile_after_reading("status/c1", ending);
            for io in [&mut during, &mut between] {
                assert_eq!(
                    access_token(io, NOW + HOUR, "c1"),
                    Err(Refusal::NotConnected(NotConnected::Disconnected))
                );
                assert!(!io.store.contains_key("tokens/c1"));
            }
            // A refresh, with the disconnect and the user's next `begin`
            // during its request: the request stands until a new grant is
            // claimed.
            let mut reconnecting = connected(revocable());
            reconnecting.respond(tokens("AT-3", Some("RT-3"), 3600));
            reconnecting.respond(json(200, ""));
            reconnecting.meanwhile(move |other| {
                ending(other);
                pending_callback(other, NOW + 2);
            });
            assert_eq!(
                access_token(&mut reconnecting, NOW + HOUR, "c1"),
                Err(Refusal::NotConnected(NotConnected::NeverAuthorized))
            );
            for (io, token, by) in [
                (&io, "RT-2", "code-exchange"),
                (&claimed, "RT-2", "code-exchange"),
                (&during, "RT-3", "refresh"),
                (&between, "RT-3", "refresh"),
                (&reconnecting, "RT-3", "refresh"),
            ] {
                let (expected, events) = match revoke {
                    true => (vec![token.to_owned()], vec![(by.into(), "revoked".into())]),
                    false => (vec![], vec![]),
                };
                assert_eq!(revoked_tokens(io), expected, "{by}, revoke: {revoke}");
                assert_eq!(late_revocations(io), events, "{by}, revoke: {revoke}");
                assert_no_secrets(io);
            }
            assert_disconnected(&mut io, NOW + 2);
        }
    }

    /// A `begin` between a revoking `disconnect`'s status write and its
    /// read of the tokens: the begin removes them, so it revokes them, as
    /// the disconnect, finding none, no longer can (RFC 7009 §2.1).
    #[test]
    fn rfc7009_a_begin_during_a_revoking_disconnect_revokes_what_it_removes() {
        let mut io = connected(revocable());
        let mut ending = Op::start(Call::Disconnect {
            connection: "c1".into(),
            revoke: true,
        });
        ending.until(&mut io, is_get("tokens/c1"));
        io.respond(json(200, ""));
        pending_callback(&mut io, NOW + 1);
        let outcome = ending.finish(&mut io);
        assert!(
            matches!(outcome, Outcome::Disconnect(Ok(Revocation::NoToken))),
            "{outcome:?}"
        );
        assert_eq!(revoked_tokens(&io), ["RT-1"]);
        assert_eq!(
            late_revocations(&io),
            [("begin".to_owned(), "revoked".to_owned())]
        );
        assert!(!io.store.contains_key("tokens/c1"));
    }

    /// A `begin` that read the status before a `disconnect` whose wipe
    /// storage refused: it still clears the ended grant's tokens as it
    /// moves the connection on, and nothing is served.
    #[test]
    fn a_begin_that_looked_before_a_disconnect_does_not_bring_its_grant_back() {
        let mut io = connected(config());
        let mut slow = Op::start(Call::Begin {
            connection: "c1".into(),
            options: BeginOptions::default(),
        });
        slow.until(
            &mut io,
            |e| matches!(e, Effect::StoragePut { key, .. } if key.starts_with("flow/")),
        );
        let down = StorageError::Unavailable("down".into());
        io.write_faults.push(("tokens/c1".into(), down));
        assert!(disconnect(&mut io, NOW + 1, "c1", false).is_err());
        assert_disconnected(&mut io, NOW + 2);
        assert!(matches!(slow.finish(&mut io), Outcome::Begin(Ok(_))));
        assert_eq!(status(&mut io, NOW + 3).state, State::Authorizing);
        assert!(!io.store.contains_key("tokens/c1"));
        assert_eq!(
            access_token(&mut io, NOW + 3, "c1"),
            Err(Refusal::NotConnected(NotConnected::NeverAuthorized))
        );
    }

    /// A `begin` between a revoking `disconnect`'s status write and its
    /// read of the tokens, whose own status write then fails: what it
    /// removed is still revoked, by it, since the disconnect finds nothing.
    #[test]
    fn rfc7009_a_failed_begin_still_revokes_what_it_removed() {
        let mut io = connected(revocable());
        let mut ending = Op::start(Call::Disconnect {
            connection: "c1".into(),
            revoke: true,
        });
        ending.until(&mut io, is_get("tokens/c1"));
        let mut begin = Op::start(Call::Begin {
            connection: "c1".into(),
            options: BeginOptions::default(),
        });
        begin.until(&mut io, is_put("status/c1"));
        assert!(!io.store.contains_key("tokens/c1"), "begin removed them");
        let down = StorageError::Unavailable("down".into());
        io.write_faults.push(("status/c1".into(), down));
        io.respond(json(200, ""));
        assert!(matches!(begin.finish(&mut io), Outcome::Begin(Err(_))));
        let outcome = ending.finish(&mut io);
        assert!(
            matches!(outcome, Outcome::Disconnect(Ok(Revocation::NoToken))),
            "{outcome:?}"
        );
        assert_eq!(revoked_tokens(&io), ["RT-1"]);
    }

    /// Whether a code exchange's flow is the one a revoking `disconnect`
    /// ended does not depend on the workers' clocks (30 s apart at most):
    /// a flow begun before the disconnect on a clock 20 s ahead is revoked;
    /// one begun after it on a clock 20 s behind, then superseded by a
    /// newer `begin` while its code is exchanged, is not. Its tokens are
    /// not kept, and not revoked either: they are not the grant the user
    /// ended, and a server that revokes per user and client would take the
    /// newer authorisation with them.
    #[test]
    fn rfc7009_which_flows_a_disconnect_ended_is_not_a_matter_of_clocks() {
        let mut io = connected(revocable());
        let callback = pending_callback(&mut io, NOW + 20_000);
        io.respond(tokens("AT-5", Some("RT-5"), 3600));
        let mut exchange = complete(callback);
        exchange.until(&mut io, is_send);
        exchange.step(&mut io);
        io.respond(json(200, ""));
        disconnect(&mut io, NOW + 1, "c1", true).unwrap();
        io.respond(json(200, ""));
        assert!(matches!(
            exchange.finish(&mut io),
            Outcome::Complete(Err(_))
        ));
        assert_eq!(revoked_tokens(&io), ["RT-1", "RT-5"]);

        let mut io = connected(revocable());
        io.respond(json(200, ""));
        disconnect(&mut io, NOW + 30_000, "c1", true).unwrap();
        let callback = pending_callback(&mut io, NOW + 10_000);
        io.respond(tokens("AT-5", Some("RT-5"), 3600));
        let mut exchange = complete(callback);
        exchange.until(&mut io, is_send);
        exchange.step(&mut io);
        pending_callback(&mut io, NOW + 30_001);
        assert!(matches!(
            exchange.finish(&mut io),
            Outcome::Complete(Err(_))
        ));
        assert_eq!(revoked_tokens(&io), ["RT-1"], "the disconnect's only");
    }
}
