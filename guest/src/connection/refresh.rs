//! The refresh (RFC 6749 §6) under Pleo's rules: single-flight through the
//! lease, rotated tokens stored in one compare-and-swap, a lost rotation
//! race recovered from storage, a dead refresh token acted on at once, and
//! every other failure backed off without touching the tokens (DESIGN §1,
//! classification policy).

use super::backoff;
use super::gate::{self, Bearer, Loaded, Refusal, WaitReason};
use super::lease::{self, Acquire};
use super::request;
use super::status::{self, Reason, Status};
use super::store::{self, CAS_ATTEMPTS, StoreError, TokensRecord, Versioned};
use crate::classify::{
    self, GrantKind, OAuthError, TokenOutcome, TokenSet, Transient, TransientCause,
};
use crate::events::{self, kebab};
use crate::io::Io;
use crate::secret::Secret;
use crate::types::Level;

/// What made the refresh necessary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The access token is within the refresh margin of expiry.
    Expiry,
    /// The API answered 401 to the current access token: it is dead,
    /// whatever its expiry says.
    Unauthorized,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Expiry => "expiry",
            Trigger::Unauthorized => "api-401",
        }
    }
}

/// Refreshes the connection's tokens, or says why the caller gets none.
///
/// While a refresh cannot happen (backing off, or another worker holds the
/// lease) a still-usable access token is served; an expired one, or one the
/// API refused, never is.
pub(super) fn refresh(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    loaded: Loaded,
    trigger: Trigger,
) -> Result<Bearer, Refusal> {
    let Loaded {
        config,
        status,
        tokens,
    } = loaded;
    let usable = trigger == Trigger::Expiry && tokens.value.usable(now_ms);
    let cap = config.max_backoff_ms();
    if let Some(retry_at) =
        backoff::effective_retry_ms(status.next_retry_ms, now_ms, cap).filter(|&at| now_ms < at)
    {
        return serve_or(usable, &tokens.value, || backing_off(&status, retry_at));
    }
    let lease = match lease::acquire(io, connection, now_ms)? {
        Acquire::Acquired(lease) => lease,
        Acquire::Held { retry_at_ms } => {
            return serve_or(usable, &tokens.value, || Refusal::Wait {
                until_ms: retry_at_ms,
                why: WaitReason::RefreshInProgress,
            });
        }
    };
    let attempt = Attempt {
        connection,
        now_ms,
        config: &config,
        trigger,
    };
    let result = attempt.run(io, tokens);
    lease::release(io, lease);
    result
}

/// One refresh, run while holding the lease.
struct Attempt<'a> {
    connection: &'a str,
    now_ms: u64,
    config: &'a super::config::ConnectionConfig,
    trigger: Trigger,
}

impl Attempt<'_> {
    fn run(&self, io: &mut dyn Io, seen: Versioned<TokensRecord>) -> Result<Bearer, Refusal> {
        // Read again under the lease: another worker may have refreshed
        // between our first read and taking the lease.
        let Some(current) = self.read_tokens(io)? else {
            return Err(self.refusal_without_tokens(io)?);
        };
        let changed = current.value.access_token != seen.value.access_token;
        let fresh = match self.trigger {
            Trigger::Expiry => !current
                .value
                .due(self.now_ms, self.config.refresh_margin_ms()),
            Trigger::Unauthorized => current.value.usable(self.now_ms),
        };
        if changed && fresh {
            return Ok(Bearer::from(&current.value));
        }
        let usable = self.trigger == Trigger::Expiry && current.value.usable(self.now_ms);
        let Some(refresh_token) = current.value.refresh_token.clone() else {
            // Nothing to renew the access token with.
            if usable {
                return Ok(Bearer::from(&current.value));
            }
            return Err(self.grant_dead(io, Reason::NoRefreshToken, None)?);
        };
        let response = io.send(request::form_post(
            self.config,
            self.config.token_url(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ],
        ));
        match classify::token_response(GrantKind::RefreshToken, response.as_ref(), self.now_ms) {
            TokenOutcome::Success(set) => self.rotated(io, current, set),
            TokenOutcome::Reauthenticate(reauth) => {
                self.rejected(io, &refresh_token, &reauth.error)
            }
            TokenOutcome::ClientMisconfigured(error) | TokenOutcome::RequestInvalid(error) => {
                self.client_failure(io, &current.value, usable, &error)
            }
            TokenOutcome::Transient(transient) => {
                self.transient_failure(io, &current.value, usable, &transient)
            }
        }
    }

    fn read_tokens(&self, io: &mut dyn Io) -> Result<Option<Versioned<TokensRecord>>, StoreError> {
        store::read(io, &store::tokens_key(self.connection))
    }

    fn refusal_without_tokens(&self, io: &mut dyn Io) -> Result<Refusal, StoreError> {
        let (status, _) = status::read(io, self.connection, self.now_ms)?;
        Ok(gate::without_tokens(&status))
    }

    /// RFC 6749 §5.1, §6: the new token set replaces the old in one
    /// compare-and-swap. A response without a refresh token keeps the old
    /// one (§6: "the client MAY... the authorization server MAY issue").
    fn rotated(
        &self,
        io: &mut dyn Io,
        mut current: Versioned<TokensRecord>,
        set: TokenSet,
    ) -> Result<Bearer, Refusal> {
        let used_refresh = current.value.refresh_token.clone();
        let record = TokensRecord {
            access_token: set.access_token,
            refresh_token: set.refresh_token.or_else(|| used_refresh.clone()),
            expires_at_ms: set
                .expires_in
                .map(|s| self.now_ms.saturating_add(u64::from(s) * 1000)),
            scopes: set.scope.unwrap_or_else(|| current.value.scopes.clone()),
            obtained_at_ms: self.now_ms,
            after_unauthorized: self.trigger == Trigger::Unauthorized,
        };
        let key = store::tokens_key(self.connection);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match store::write(io, &key, &record, Some(current.version)) {
                Ok(_) => break,
                // The server has rotated: these are now the only live
                // tokens. A store that blips gets a few more tries before
                // the loss is reported.
                Err(StoreError::Unavailable(_)) if attempts < CAS_ATTEMPTS => continue,
                Err(StoreError::Conflict) if attempts < CAS_ATTEMPTS => {
                    match self.read_tokens(io)? {
                        // Only the 401-streak flag changed: same grant.
                        Some(now) if now.value.refresh_token == used_refresh => current = now,
                        // Disconnected or forgotten meanwhile: the user's
                        // choice stands, the new tokens are dropped.
                        None => return Err(self.refusal_without_tokens(io)?),
                        // Another writer stored a different grant (a new
                        // authorisation): theirs stands.
                        Some(theirs) => return Ok(Bearer::from(&theirs.value)),
                    }
                }
                Err(error) => {
                    events::emit(
                        io,
                        Level::Error,
                        "refresh-not-stored",
                        self.connection,
                        &[("trigger", self.trigger.name().into())],
                        "refreshed tokens could not be stored; the next refresh may need re-authentication",
                    );
                    return Err(error.into());
                }
            }
        }
        let mut before = Status::new(self.now_ms);
        status::update(io, self.connection, self.now_ms, |_, mut status| {
            before = status.clone();
            status.clear_failures();
            status.last_refresh_ms = Some(self.now_ms);
            status.enter_token_state(self.now_ms);
            Ok::<_, StoreError>(status)
        })?;
        let mut fields = vec![("trigger", self.trigger.name().to_owned())];
        if let Some(at) = record.expires_at_ms {
            fields.push(("expires-at-ms", at.to_string()));
        }
        if before.failures > 0 {
            fields.push(("after-failures", before.failures.to_string()));
        }
        if let Some(code) = &before.client_error {
            fields.push(("cleared-client-error", code.clone()));
        }
        events::emit(
            io,
            Level::Info,
            "refresh-succeeded",
            self.connection,
            &fields,
            "access token refreshed",
        );
        if record.refresh_token != used_refresh {
            events::emit(
                io,
                Level::Info,
                "tokens-rotated",
                self.connection,
                &[],
                "the refresh token rotated; the new tokens are stored",
            );
        }
        Ok(Bearer::from(&record))
    }

    /// `invalid_grant` or `invalid_token` (Pleo: terminal). First re-read:
    /// when another worker rotated the tokens since this attempt read them,
    /// this was a lost race, not a dead grant.
    fn rejected(
        &self,
        io: &mut dyn Io,
        used: &Secret,
        error: &OAuthError,
    ) -> Result<Bearer, Refusal> {
        if let Some(theirs) = self.read_tokens(io)?
            && theirs.value.refresh_token.as_ref() != Some(used)
        {
            events::emit(
                io,
                Level::Info,
                "rotation-race-recovered",
                self.connection,
                &[("error", error.code.as_str().to_owned())],
                "another worker rotated the tokens first; using theirs",
            );
            return if theirs.value.usable(self.now_ms) {
                Ok(Bearer::from(&theirs.value))
            } else {
                Err(Refusal::Wait {
                    until_ms: self.now_ms.saturating_add(lease::POLL_MS),
                    why: WaitReason::RefreshInProgress,
                })
            };
        }
        Err(self.grant_dead(io, Reason::RefreshTokenRejected, Some(error.code.as_str()))?)
    }

    fn grant_dead(
        &self,
        io: &mut dyn Io,
        reason: Reason,
        error: Option<&str>,
    ) -> Result<Refusal, StoreError> {
        let mut fields = vec![("trigger", self.trigger.name().to_owned())];
        if let Some(code) = error {
            fields.push(("error", code.to_owned()));
        }
        grant_dead(io, self.now_ms, self.connection, reason, &fields)
    }

    /// `invalid_client` and kin (or a request the server calls invalid):
    /// the user re-authenticating does not help, an operator must act.
    /// Tokens are kept; refreshes go on, backed off, until one succeeds.
    fn client_failure(
        &self,
        io: &mut dyn Io,
        tokens: &TokensRecord,
        usable: bool,
        error: &OAuthError,
    ) -> Result<Bearer, Refusal> {
        let code = error.code.as_str().to_owned();
        let status = self.record_failure(io, &code, true, None)?;
        let retry_at = status.next_retry_ms;
        events::emit(
            io,
            Level::Error,
            "client-misconfigured",
            self.connection,
            &[
                ("error", code.clone()),
                ("attempt", status.failures.to_string()),
                ("next-retry-at-ms", retry_at.unwrap_or_default().to_string()),
            ],
            "the token endpoint refused the client: an operator must check the client id and secret (tokens are kept)",
        );
        serve_or(usable, tokens, || Refusal::ClientMisconfigured {
            error: code,
            retry_at_ms: retry_at,
        })
    }

    /// Outages, rate limits, timeouts, garbage: never a reason to discard
    /// tokens, however many. Back off; serve the access token until it
    /// expires.
    fn transient_failure(
        &self,
        io: &mut dyn Io,
        tokens: &TokensRecord,
        usable: bool,
        transient: &Transient,
    ) -> Result<Bearer, Refusal> {
        let cause = describe(&transient.cause);
        let status = self.record_failure(io, &cause, false, transient.retry_at_ms)?;
        let retry_at = status.next_retry_ms.unwrap_or(self.now_ms);
        events::emit(
            io,
            Level::Warn,
            "refresh-failed",
            self.connection,
            &[
                ("cause", cause),
                ("attempt", status.failures.to_string()),
                ("next-retry-at-ms", retry_at.to_string()),
                (
                    "access-token",
                    if usable { "still-valid" } else { "expired" }.into(),
                ),
            ],
            "refresh failed for a transient reason; backing off, tokens kept",
        );
        if !usable {
            events::emit(
                io,
                Level::Warn,
                "access-token-expired",
                self.connection,
                &[("retry-at-ms", retry_at.to_string())],
                "the access token expired while refreshes are failing; API calls wait",
            );
        }
        serve_or(usable, tokens, || Refusal::Wait {
            until_ms: retry_at,
            why: WaitReason::BackingOff,
        })
    }

    fn record_failure(
        &self,
        io: &mut dyn Io,
        what: &str,
        client: bool,
        retry_after_ms: Option<u64>,
    ) -> Result<Status, StoreError> {
        let cap = self.config.max_backoff_ms();
        status::update(io, self.connection, self.now_ms, |io, mut status| {
            status.failures = status.failures.saturating_add(1);
            status.last_error = Some(what.to_owned());
            if client {
                status.client_error = Some(what.to_owned());
            }
            status.next_retry_ms = Some(backoff::next_retry_ms(
                io,
                self.now_ms,
                status.failures,
                cap,
                retry_after_ms,
            ));
            status.enter_token_state(self.now_ms);
            Ok::<_, StoreError>(status)
        })
    }
}

/// Acts on a dead grant at once (Pleo's how-to, step 2): the status says
/// re-authentication is required, with its reason, so every gate refuses
/// from now on; then both tokens are wiped. The configuration is kept.
pub(super) fn grant_dead(
    io: &mut dyn Io,
    now_ms: u64,
    connection: &str,
    reason: Reason,
    fields: &[(&str, String)],
) -> Result<Refusal, StoreError> {
    status::update(io, connection, now_ms, |_, mut status| {
        status.reason = Some(reason);
        status.clear_failures();
        if status.state != status::State::Authorizing {
            status.enter(status::State::ReauthRequired, now_ms);
        }
        Ok::<_, StoreError>(status)
    })?;
    store::remove(io, &store::tokens_key(connection))?;
    events::emit(
        io,
        Level::Warn,
        "revocation-detected",
        connection,
        fields,
        "the grant is no longer valid; tokens wiped, configuration kept",
    );
    events::emit(
        io,
        Level::Warn,
        "reauth-required",
        connection,
        &[("reason", kebab(&reason))],
        "API calls stop until the user re-authorises",
    );
    Ok(Refusal::Reauthenticate(reason))
}

fn serve_or(
    usable: bool,
    tokens: &TokensRecord,
    refusal: impl FnOnce() -> Refusal,
) -> Result<Bearer, Refusal> {
    if usable {
        Ok(Bearer::from(tokens))
    } else {
        Err(refusal())
    }
}

fn backing_off(status: &Status, retry_at_ms: u64) -> Refusal {
    match &status.client_error {
        Some(code) => Refusal::ClientMisconfigured {
            error: code.clone(),
            retry_at_ms: Some(retry_at_ms),
        },
        None => Refusal::Wait {
            until_ms: retry_at_ms,
            why: WaitReason::BackingOff,
        },
    }
}

/// A transient cause in words for operators: a status, an error code, what
/// was wrong with the body, or the transport failure. Never a body.
fn describe(cause: &TransientCause) -> String {
    match cause {
        TransientCause::Status(status) => format!("status {status}"),
        TransientCause::OAuth(error) => error.code.as_str().to_owned(),
        TransientCause::InvalidResponse(invalid) => format!("invalid response: {invalid:?}"),
        TransientCause::Transport(error) => error.summary().to_owned(),
    }
}
