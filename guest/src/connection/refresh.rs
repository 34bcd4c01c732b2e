//! The refresh (RFC 6749 §6) under Pleo's rules: single flight through the
//! lease, a write-ahead record of every request, rotated tokens stored in
//! one compare-and-swap and kept while the lease lasts, a rejection judged
//! by what storage shows, and every other failure backed off without
//! touching the tokens.
//!
//! The order of one attempt, and why:
//!
//! 1. take the lease, then read the tokens again (another worker may have
//!    refreshed meanwhile);
//! 2. read the clock afresh, renew the lease, and read the clock again: a
//!    worker that paused since taking it and lost it, or paused during the
//!    renewal, sends nothing;
//! 3. record in the status that a refresh of this refresh token (its hash)
//!    is in flight: if the response is lost, a later rejection of the same
//!    token is a lost rotation, not a revocation;
//! 4. read the tokens once more: a holder that paused past its lease may
//!    have stored its rotated tokens after all, and sending the old refresh
//!    token now would be reuse;
//! 5. send, and act on the verdict.

use super::backoff;
use super::config::ConnectionConfig;
use super::lease::{self, Acquire, Lease};
use super::outcome::{
    Bearer, ClientFault, Loaded, NO_CREDENTIALS, Refusal, Trigger, WaitReason, without_tokens,
};
use super::request;
use super::revocation;
use super::status::{self, Declined, InFlight, Reason, State, Status};
use super::store::{self, CAS_ATTEMPTS, StorageError, TokensRecord, Versioned};
use crate::classify::{
    self, GrantKind, OAuthError, TokenOutcome, TokenSet, Transient, TransientCause,
};
use crate::effects::Effects;
use crate::events::{self, Kind, kebab};
use crate::secret::{Secret, StoredSecret};
use crate::types::Level;

/// While storage fails, the rotated tokens' write is retried this often
/// until the lease ends.
pub const STORE_RETRY_MS: u32 = 1_000;
/// The longest one storage write may take before it fails (the reference
/// SQLite backend's busy timeout): a retry is started only if it ends
/// before the lease does.
pub const STORE_OP_MS: u64 = 5_000;
/// A stalled connection probes the token endpoint this often.
pub const STALLED_PROBE_MS: u64 = 15 * 60 * 1000;

/// Refreshes the connection's tokens, or says why the caller gets none.
///
/// While a refresh cannot happen (backing off, or another worker holds the
/// lease) a still-usable access token is served; an expired one, or one the
/// API refused, never is.
pub(super) async fn refresh(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    loaded: Loaded,
    trigger: Trigger,
) -> Result<Bearer, Refusal> {
    // Out of line: a refresh's future is large (every step of the attempt),
    // and the gate's, created on every call, would be as large with it
    // inline; a refresh is rare, so its one allocation costs nothing.
    Box::pin(refresh_attempt(fx, now_ms, connection, loaded, trigger)).await
}

async fn refresh_attempt(
    fx: &Effects,
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
    let lease = match lease::acquire(fx, connection, now_ms).await? {
        Acquire::Acquired(lease) => lease,
        Acquire::Held { retry_at_ms } => {
            return serve_or(usable, &tokens.value, || in_progress(retry_at_ms));
        }
    };
    let mut attempt = Attempt {
        connection,
        now_ms,
        config: &config,
        trigger,
        lease,
    };
    let result = attempt.run(fx, tokens).await;
    lease::release(fx, attempt.lease).await;
    result
}

/// One refresh, run while holding the lease.
struct Attempt<'a> {
    connection: &'a str,
    now_ms: u64,
    config: &'a ConnectionConfig,
    trigger: Trigger,
    lease: Lease,
}

/// A refresh request that went out, and what came of it.
struct Sent {
    outcome: TokenOutcome,
    /// The write-ahead record as it was before this request: set when an
    /// earlier request with the same refresh token has no known outcome.
    earlier: Option<InFlight>,
}

impl Attempt<'_> {
    async fn run(
        &mut self,
        fx: &Effects,
        seen: Versioned<TokensRecord>,
    ) -> Result<Bearer, Refusal> {
        // Read again under the lease: another worker may have refreshed
        // between our first read and taking the lease.
        let Some(current) = self.read_tokens(fx).await? else {
            return Err(self.refusal_without_tokens(fx).await?);
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
        let Some(refresh_token) = current
            .value
            .refresh_token
            .as_ref()
            .map(StoredSecret::to_secret)
        else {
            // Nothing to renew the access token with.
            if self.usable(&current.value) {
                return Ok(Bearer::from(&current.value));
            }
            return Err(self
                .grant_dead(fx, Judged::of(&current), Reason::NoRefreshToken, &[])
                .await?);
        };
        // Tokens left unconfirmed by an earlier race (see `rejected`) are
        // being confirmed by this refresh.
        let confirming = current.value.unconfirmed;
        self.exchange(fx, current, &refresh_token, confirming).await
    }

    /// Sends one refresh with `refresh_token` (the one in `current`) and
    /// acts on the verdict. `confirming`: `current` was found in storage
    /// after our own refresh was rejected, and this refresh decides whether
    /// the grant survived.
    async fn exchange(
        &mut self,
        fx: &Effects,
        current: Versioned<TokensRecord>,
        refresh_token: &Secret,
        confirming: bool,
    ) -> Result<Bearer, Refusal> {
        let usable = self.usable(&current.value);
        let sent = match self.send(fx, &current, refresh_token).await? {
            Send::Sent(sent) => sent,
            // The lease was taken over while we paused: the other worker
            // refreshes; we send nothing.
            Send::LeaseLost => {
                return serve_or(usable, &current.value, || self.holder_busy());
            }
            // Someone stored other tokens since we read them: ours are
            // stale, theirs stand.
            Send::Superseded(theirs) => {
                return serve_or(self.usable(&theirs), &theirs, || self.holder_busy());
            }
        };
        match sent.outcome {
            TokenOutcome::Success(set) => {
                if confirming {
                    events::emit(
                        fx,
                        Level::Info,
                        Kind::RotationRaceRecovered,
                        self.connection,
                        &[],
                        "the tokens another worker stored were confirmed by a refresh; the grant is alive",
                    ).await;
                }
                self.rotated(fx, current, set).await
            }
            TokenOutcome::Reauthenticate(reauth) => {
                let used = Used {
                    refresh_token,
                    grant: current.value.grant.as_deref(),
                };
                self.rejected(fx, used, &reauth.error, sent.earlier, confirming)
                    .await
            }
            TokenOutcome::ClientMisconfigured(error) | TokenOutcome::RequestInvalid(error) => {
                self.client_failure(fx, &current.value, usable, &error, sent.earlier)
                    .await
            }
            TokenOutcome::CredentialsMissing => {
                self.credentials_missing(fx, &current.value, usable, sent.earlier)
                    .await
            }
            TokenOutcome::Transient(transient) => {
                let in_flight = if never_sent(&transient) {
                    InFlightAfter::Restore(sent.earlier)
                } else {
                    InFlightAfter::Unknown(describe(&transient.cause))
                };
                self.transient_failure(fx, &current.value, usable, &transient, in_flight)
                    .await
            }
        }
    }

    /// Steps 2 to 5 of the module's order.
    async fn send(
        &mut self,
        fx: &Effects,
        current: &Versioned<TokensRecord>,
        refresh_token: &Secret,
    ) -> Result<Send, Refusal> {
        let at_ms = self.clock(fx).await;
        if !lease::renew(fx, &mut self.lease, at_ms).await?
            || !self.lease.covers_a_request(self.clock(fx).await)
        {
            return Ok(Send::LeaseLost);
        }
        let token_hash = refresh_token.fingerprint();
        let mut earlier = None;
        status::update(fx, self.connection, self.now_ms, async |mut status| {
            earlier = status
                .in_flight
                .take()
                .filter(|record| record.token_hash == token_hash);
            status.in_flight = Some(earlier.clone().unwrap_or_else(|| InFlight {
                token_hash: token_hash.clone(),
                since_ms: at_ms,
                cause: None,
            }));
            Ok::<_, StorageError>(status)
        })
        .await?;
        match self.read_tokens(fx).await? {
            // The same tokens (at most the 401-streak flag changed).
            Some(now) if now.value.refresh_token == current.value.refresh_token => {}
            Some(theirs) => return Ok(Send::Superseded(theirs.value)),
            None => return Err(self.refusal_without_tokens(fx).await?),
        }
        let response = fx
            .send(request::form_post(
                self.config,
                self.config.token_url(),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                ],
            ))
            .await;
        let outcome = classify::token_response(
            GrantKind::RefreshToken,
            response.as_ref(),
            self.clock(fx).await,
        );
        Ok(Send::Sent(Sent { outcome, earlier }))
    }

    /// Wait: another worker holds the lease or changed the tokens; look
    /// again shortly.
    fn holder_busy(&self) -> Refusal {
        in_progress(self.now_ms.saturating_add(lease::POLL_MS))
    }

    /// The clock now. A clock stepped back during the call reads as the
    /// call's start: time never runs backwards within one attempt.
    async fn clock(&self, fx: &Effects) -> u64 {
        fx.now_ms().await.max(self.now_ms)
    }

    fn usable(&self, tokens: &TokensRecord) -> bool {
        self.trigger == Trigger::Expiry && tokens.usable(self.now_ms)
    }

    async fn read_tokens(
        &self,
        fx: &Effects,
    ) -> Result<Option<Versioned<TokensRecord>>, StorageError> {
        store::read(fx, &store::tokens_key(self.connection)).await
    }

    /// Rotated tokens that reached no record, or a disconnected one:
    /// revoked when the user's disconnect asked for it.
    async fn revoke_late(&self, fx: &Effects, record: &TokensRecord) {
        revocation::revoke_late_grant(fx, self.config, self.connection, record, "refresh", None)
            .await;
    }

    async fn refusal_without_tokens(&self, fx: &Effects) -> Result<Refusal, StorageError> {
        let (status, _) = status::read(fx, self.connection, self.now_ms).await?;
        Ok(without_tokens(&status))
    }

    /// RFC 6749 §5.1, §6: the new token set replaces the old in one
    /// compare-and-swap. A response without a refresh token keeps the old
    /// one (§6: the server MAY issue a new one).
    ///
    /// Once the server has rotated, these are the only live tokens, so the
    /// write is retried while storage fails, every [`STORE_RETRY_MS`],
    /// until the lease ends; only then are they given up, and the refusal
    /// says so.
    async fn rotated(
        &self,
        fx: &Effects,
        current: Versioned<TokensRecord>,
        set: TokenSet,
    ) -> Result<Bearer, Refusal> {
        let used_refresh = current.value.refresh_token.clone();
        let record = TokensRecord {
            access_token: set.access_token.into(),
            refresh_token: set
                .refresh_token
                .map(StoredSecret::from)
                .or_else(|| used_refresh.clone()),
            expires_at_ms: set
                .expires_in
                .map(|s| self.now_ms.saturating_add(u64::from(s) * 1000)),
            scopes: set.scope.unwrap_or_else(|| current.value.scopes.clone()),
            obtained_at_ms: self.now_ms,
            after_unauthorized: self.trigger == Trigger::Unauthorized,
            unconfirmed: false,
            grant: current.value.grant.clone(),
            refused: false,
        };
        let judged = Judged::of(&current);
        match self
            .store_rotated(fx, current, &record, used_refresh.as_ref())
            .await
        {
            Ok(Stored::Ours) => {}
            Ok(Stored::Theirs(theirs)) => {
                return serve_or(self.usable(&theirs), &theirs, || self.holder_busy());
            }
            Ok(Stored::Gone) => {
                self.revoke_late(fx, &record).await;
                return Err(self.refusal_without_tokens(fx).await?);
            }
            Err(error) => return Err(self.rotated_tokens_lost(fx, judged, &error).await),
        }
        let mut before = Status::new(self.now_ms);
        let recorded = status::update(fx, self.connection, self.now_ms, async |mut status| {
            // Disconnected since the tokens were read: the user's choice
            // stands (the gate refuses, and `disconnect` removes them). Or
            // a new authorisation claimed the connection: its tokens replace
            // these.
            if status.moved_on_from(record.grant.as_deref(), self.now_ms) {
                return Err(Declined::Moved);
            }
            before = status.clone();
            status.clear_failures();
            status.in_flight = None;
            status.last_refresh_ms = Some(self.now_ms);
            status.enter_token_state(self.now_ms);
            Ok(status)
        })
        .await;
        if let Err(Declined::Moved) = recorded {
            let (status, _) = status::read(fx, self.connection, self.now_ms).await?;
            return Err(match status.state {
                State::Disconnected => {
                    // `disconnect` may have read the tokens before this
                    // write, and revoked the refresh token this one replaced.
                    self.revoke_late(fx, &record).await;
                    without_tokens(&status)
                }
                _ => self.holder_busy(),
            });
        }
        if let Err(Declined::Storage(error)) = recorded {
            // The tokens are safe; only the history is stale. The write-ahead
            // record names the old refresh token, which is never sent again.
            events::emit(
                fx,
                Level::Warn,
                Kind::StatusNotStored,
                self.connection,
                &[("error", error.kind().into())],
                "the refreshed tokens are stored, but the status could not be updated",
            )
            .await;
        }
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
            fx,
            Level::Info,
            Kind::RefreshSucceeded,
            self.connection,
            &fields,
            "access token refreshed",
        )
        .await;
        if record.refresh_token != used_refresh {
            events::emit(
                fx,
                Level::Info,
                Kind::TokensRotated,
                self.connection,
                &[],
                "the refresh token rotated; the new tokens are stored",
            )
            .await;
        }
        Ok(Bearer::from(&record))
    }

    /// The compare-and-swap loop behind [`Self::rotated`].
    async fn store_rotated(
        &self,
        fx: &Effects,
        mut current: Versioned<TokensRecord>,
        record: &TokensRecord,
        used_refresh: Option<&StoredSecret>,
    ) -> Result<Stored, StorageError> {
        let key = store::tokens_key(self.connection);
        let mut conflicts = 0;
        let mut retrying = false;
        loop {
            let error = match store::write(fx, &key, record, Some(current.version)).await {
                Ok(_) => return Ok(Stored::Ours),
                // A conflict, or a write whose outcome is unknown (the
                // storage contract: re-read before acting again).
                Err(error @ (StorageError::Conflict | StorageError::OutcomeUnknown(_)))
                    if conflicts < CAS_ATTEMPTS =>
                {
                    conflicts += 1;
                    match self.read_tokens(fx).await {
                        // Our write landed after all.
                        Ok(Some(now)) if now.value == *record => return Ok(Stored::Ours),
                        // Not written: try again from what is stored.
                        Ok(Some(now))
                            if matches!(error, StorageError::OutcomeUnknown(_))
                                && now.value.refresh_token.as_ref() == used_refresh =>
                        {
                            current = now;
                            error
                        }
                        // Only the 401-streak flag changed: same grant.
                        Ok(Some(now)) if now.value.refresh_token.as_ref() == used_refresh => {
                            current = now;
                            continue;
                        }
                        // Disconnected or forgotten meanwhile: the user's
                        // choice stands, the new tokens are dropped.
                        Ok(None) => return Ok(Stored::Gone),
                        // Another writer stored a different grant (a new
                        // authorisation): theirs stands.
                        Ok(Some(theirs)) => return Ok(Stored::Theirs(theirs.value)),
                        Err(error) => error,
                    }
                }
                Err(error) => error,
            };
            if !matches!(
                error,
                StorageError::Unavailable(_) | StorageError::OutcomeUnknown(_)
            ) {
                return Err(error);
            }
            // The next attempt must finish, storage's own wait included,
            // before the lease ends: after that another worker may send.
            let now = self.clock(fx).await;
            let attempt_ends = now
                .saturating_add(u64::from(STORE_RETRY_MS))
                .saturating_add(STORE_OP_MS);
            if attempt_ends >= self.lease.until_ms() {
                return Err(error);
            }
            if !retrying {
                retrying = true;
                events::emit(
                    fx,
                    Level::Warn,
                    Kind::TokensStoreRetrying,
                    self.connection,
                    &[
                        ("error", error.kind().into()),
                        ("until-ms", self.lease.until_ms().to_string()),
                    ],
                    "storage refused the rotated tokens; retrying until the lease ends",
                )
                .await;
            }
            fx.sleep_ms(STORE_RETRY_MS).await;
        }
    }

    /// The server rotated, and storage refused the new tokens until the
    /// lease ran out: they are lost, and with them the grant. Say so; record
    /// it if storage lets us.
    async fn rotated_tokens_lost(
        &self,
        fx: &Effects,
        judged: Judged,
        error: &StorageError,
    ) -> Refusal {
        events::emit(
            fx,
            Level::Error,
            Kind::RotatedTokensLost,
            self.connection,
            &[
                ("trigger", self.trigger.name().to_owned()),
                ("error", error.kind().into()),
            ],
            "the server rotated the tokens but storage refused them until the lease ended: the grant is lost and the user must reconnect",
        ).await;
        let cause = format!("rotated tokens not stored: {error}");
        match self
            .grant_dead_with(fx, judged, Reason::RotationLost, Some(cause), &[])
            .await
        {
            Ok(refusal) => refusal,
            // Storage is still down: the write-ahead record stays, so the
            // next refresh is rejected and recognised as a lost rotation.
            Err(_) => Refusal::Reauthenticate(Reason::RotationLost),
        }
    }

    /// `invalid_grant` or `invalid_token` (Pleo: terminal). What it means
    /// depends on what storage shows:
    ///
    /// - newer tokens from another worker: our request carried a
    ///   rotated-away token, and the server may have revoked the whole
    ///   grant for it. Theirs are confirmed by one refresh before anyone
    ///   uses them; rejected too, the grant died of reuse.
    /// - an earlier request with this same token had no known outcome: the
    ///   server rotated then, and the new tokens were lost.
    /// - otherwise: the grant was revoked or expired.
    async fn rejected(
        &mut self,
        fx: &Effects,
        used: Used<'_>,
        error: &OAuthError,
        earlier: Option<InFlight>,
        confirming: bool,
    ) -> Result<Bearer, Refusal> {
        let code = ("error", error.code.as_str().to_owned());
        // Disconnected or forgotten meanwhile: the user's choice stands.
        let Some(mut stored) = self.read_tokens(fx).await? else {
            return Err(self.refusal_without_tokens(fx).await?);
        };
        if !stored
            .value
            .refresh_token
            .as_ref()
            .is_some_and(|token| token.holds(used.refresh_token))
        {
            if stored.value.grant.is_some() && stored.value.grant.as_deref() != used.grant {
                // A new authorisation stored its grant while our request was
                // out: not a rotation, and our stale request, made with
                // another grant's token, cannot have harmed it.
                return serve_or(stored.value.usable(self.now_ms), &stored.value, || {
                    self.holder_busy()
                });
            }
            if confirming {
                // Changed again while we confirmed: whoever changed it
                // decides; the next call judges afresh.
                return Err(self.holder_busy());
            }
            events::emit(
                fx,
                Level::Warn,
                Kind::RotationRaceDetected,
                self.connection,
                &[code],
                "our refresh token was rejected while storage held newer tokens; confirming them before use",
            ).await;
            let Some(their_refresh) = stored
                .value
                .refresh_token
                .as_ref()
                .map(StoredSecret::to_secret)
            else {
                // Only an authorisation stores tokens without a refresh
                // token (a refresh keeps the old one): a new grant, which
                // our stale request cannot have harmed.
                return serve_or(stored.value.usable(self.now_ms), &stored.value, || {
                    self.holder_busy()
                });
            };
            if !stored.value.unconfirmed {
                stored.value.unconfirmed = true;
                let key = store::tokens_key(self.connection);
                match store::write(fx, &key, &stored.value, Some(stored.version)).await {
                    Ok(version) => stored.version = version,
                    // Changed again: whoever changed it holds the lease now.
                    Err(StorageError::Conflict) => {
                        return Err(self.holder_busy());
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            // Boxed: `exchange` can lead back here (a confirmation that is
            // rejected in turn), and a recursive future needs a box.
            return Box::pin(self.exchange(fx, stored, &their_refresh, true)).await;
        }
        // Storage still holds the token that was rejected: the grant is
        // dead. Which way it died decides the reason; an earlier request
        // with no known outcome comes first (the rotation it made was lost).
        let judged = Judged::of(&stored);
        match (earlier, confirming) {
            (Some(lost), _) => {
                let cause = lost
                    .cause
                    .unwrap_or_else(|| "no outcome recorded (the worker stopped)".into());
                events::emit(
                    fx,
                    Level::Error,
                    Kind::RotationLost,
                    self.connection,
                    &[
                        code,
                        ("earlier-cause", cause.clone()),
                        ("earlier-at-ms", lost.since_ms.to_string()),
                    ],
                    "an earlier refresh had no known outcome and the server has since rotated the tokens: the new tokens never reached storage",
                ).await;
                let last = format!("rotation lost after: {cause}");
                Err(self
                    .grant_dead_with(fx, judged, Reason::RotationLost, Some(last), &[])
                    .await?)
            }
            (None, true) => Err(self
                .grant_dead(fx, judged, Reason::RefreshTokenReused, &[code])
                .await?),
            (None, false) => Err(self
                .grant_dead(fx, judged, Reason::RefreshTokenRejected, &[code])
                .await?),
        }
    }

    /// The grant whose tokens are at version `judged` is dead.
    async fn grant_dead(
        &self,
        fx: &Effects,
        judged: Judged,
        reason: Reason,
        fields: &[(&str, String)],
    ) -> Result<Refusal, StorageError> {
        self.grant_dead_with(fx, judged, reason, None, fields).await
    }

    async fn grant_dead_with(
        &self,
        fx: &Effects,
        judged: Judged,
        reason: Reason,
        last_error: Option<String>,
        fields: &[(&str, String)],
    ) -> Result<Refusal, StorageError> {
        let mut all = vec![("trigger", self.trigger.name().to_owned())];
        all.extend(fields.iter().cloned());
        grant_dead(
            fx,
            self.now_ms,
            self.connection,
            judged,
            reason,
            last_error,
            &all,
        )
        .await
    }

    /// `invalid_client` and kin (or a request the server calls invalid):
    /// the user re-authenticating does not help, an operator must act.
    /// Tokens are kept; refreshes go on, backed off, until one succeeds.
    async fn client_failure(
        &self,
        fx: &Effects,
        tokens: &TokensRecord,
        usable: bool,
        error: &OAuthError,
        earlier: Option<InFlight>,
    ) -> Result<Bearer, Refusal> {
        // The server refused the client before looking at the token: an
        // earlier request's unknown outcome is still unknown.
        let code = error.code.as_str().to_owned();
        let Some(status) = self
            .record_failure(
                fx,
                tokens,
                Failure::Client(&code),
                None,
                InFlightAfter::Restore(earlier),
            )
            .await?
        else {
            return Err(self.holder_busy());
        };
        let retry_at = status.next_retry_ms;
        events::emit(
            fx,
            Level::Error,
            Kind::ClientMisconfigured,
            self.connection,
            &[
                ("error", code.clone()),
                ("attempt", status.failures.to_string()),
                ("next-retry-at-ms", retry_at.unwrap_or_default().to_string()),
            ],
            "the token endpoint refused the client: an operator must check the client id and secret (tokens are kept)",
        ).await;
        serve_or(usable, tokens, || Refusal::ClientMisconfigured {
            fault: ClientFault::from_recorded(&code),
            retry_at_ms: retry_at,
        })
    }

    /// The host holds no secret for this confidential client, so nothing
    /// was sent. A configuration error, not an outage: no back-off (the
    /// next call costs nothing and succeeds as soon as the secret is there).
    async fn credentials_missing(
        &self,
        fx: &Effects,
        tokens: &TokensRecord,
        usable: bool,
        earlier: Option<InFlight>,
    ) -> Result<Bearer, Refusal> {
        let Some(status) = self
            .record_failure(
                fx,
                tokens,
                Failure::NoCredentials,
                None,
                InFlightAfter::Restore(earlier),
            )
            .await?
        else {
            return Err(self.holder_busy());
        };
        events::emit(
            fx,
            Level::Error,
            Kind::ClientCredentialsMissing,
            self.connection,
            &[("attempt", status.failures.to_string())],
            "the host holds no client secret for this confidential client; nothing was sent (tokens are kept)",
        ).await;
        serve_or(usable, tokens, || Refusal::ClientMisconfigured {
            fault: ClientFault::NoCredentials,
            retry_at_ms: None,
        })
    }

    /// Outages, rate limits, timeouts, garbage: never a reason to discard
    /// tokens, however many. Back off; serve the access token until it
    /// expires. Past the stall horizon, say so once, loudly, and probe
    /// slowly.
    async fn transient_failure(
        &self,
        fx: &Effects,
        tokens: &TokensRecord,
        usable: bool,
        transient: &Transient,
        in_flight: InFlightAfter,
    ) -> Result<Bearer, Refusal> {
        let cause = describe(&transient.cause);
        let unknown = matches!(in_flight, InFlightAfter::Unknown(_));
        let mut was_stalled = false;
        let Some(status) = self
            .record_failure(
                fx,
                tokens,
                Failure::Transient(&cause, &mut was_stalled),
                transient.retry_at_ms,
                in_flight,
            )
            .await?
        else {
            return Err(self.holder_busy());
        };
        let retry_at = status.next_retry_ms.unwrap_or(self.now_ms);
        events::emit(
            fx,
            Level::Warn,
            Kind::RefreshFailed,
            self.connection,
            &[
                ("cause", cause),
                ("attempt", status.failures.to_string()),
                ("next-retry-at-ms", retry_at.to_string()),
                (
                    "access-token",
                    if usable { "still-valid" } else { "expired" }.into(),
                ),
                (
                    "outcome",
                    if unknown { "unknown" } else { "not-sent" }.into(),
                ),
            ],
            "refresh failed for a transient reason; backing off, tokens kept",
        )
        .await;
        if status.stalled && !was_stalled {
            let since = status.failing_since_ms.unwrap_or(self.now_ms);
            events::emit(
                fx,
                Level::Error,
                Kind::RefreshStalled,
                self.connection,
                &[
                    ("failing-since-ms", since.to_string()),
                    ("attempt", status.failures.to_string()),
                    ("probe-every-ms", STALLED_PROBE_MS.to_string()),
                ],
                "refreshes have failed without a break for longer than the stall horizon: an operator should look (tokens and configuration are kept)",
            ).await;
        }
        if !usable {
            events::emit(
                fx,
                Level::Warn,
                Kind::AccessTokenExpired,
                self.connection,
                &[("retry-at-ms", retry_at.to_string())],
                "the access token expired while refreshes are failing; API calls wait",
            )
            .await;
        }
        serve_or(usable, tokens, || backing_off(&status, retry_at))
    }

    /// Records a failed refresh of the grant `tokens` belong to, and
    /// returns the status; `None` when that grant ended while the request
    /// was out (a disconnect, a forget, a new authorisation): its failure is
    /// then not the connection's, and nothing is recorded.
    async fn record_failure(
        &self,
        fx: &Effects,
        tokens: &TokensRecord,
        failure: Failure<'_>,
        retry_after_ms: Option<u64>,
        in_flight: InFlightAfter,
    ) -> Result<Option<Status>, StorageError> {
        match self.read_tokens(fx).await? {
            Some(stored) if stored.value.grant == tokens.grant => {}
            _ => return Ok(None),
        }
        let cap = self.config.max_backoff_ms();
        let stall_after = self.config.stall_after_ms();
        let mut failure = failure;
        let updated = status::update(fx, self.connection, self.now_ms, async |mut status| {
            if status.moved_on_from(tokens.grant.as_deref(), self.now_ms) {
                return Err(Declined::Moved);
            }
            status.failures = status.failures.saturating_add(1);
            let since = *status.failing_since_ms.get_or_insert(self.now_ms);
            match &mut failure {
                Failure::Client(code) => {
                    status.last_error = Some((*code).to_owned());
                    status.client_error = Some((*code).to_owned());
                }
                Failure::NoCredentials => {
                    status.last_error = Some(NO_CREDENTIALS.to_owned());
                    status.client_error = Some(NO_CREDENTIALS.to_owned());
                }
                Failure::Transient(cause, was_stalled) => {
                    status.last_error = Some((*cause).to_owned());
                    **was_stalled = status.stalled;
                    if self.now_ms.saturating_sub(since) >= stall_after {
                        status.stalled = true;
                    }
                }
            }
            status.next_retry_ms = match &failure {
                Failure::NoCredentials => None,
                _ if status.stalled => Some(
                    backoff::next_retry_ms(fx, self.now_ms, status.failures, cap, retry_after_ms)
                        .await
                        .max(self.now_ms.saturating_add(STALLED_PROBE_MS)),
                ),
                _ => Some(
                    backoff::next_retry_ms(fx, self.now_ms, status.failures, cap, retry_after_ms)
                        .await,
                ),
            };
            status.in_flight = match &in_flight {
                InFlightAfter::Restore(earlier) => earlier.clone(),
                InFlightAfter::Unknown(cause) => status.in_flight.take().map(|mut record| {
                    record.cause.get_or_insert_with(|| cause.clone());
                    record
                }),
            };
            status.enter_token_state(self.now_ms);
            Ok(status)
        })
        .await;
        match updated {
            Ok(status) => Ok(Some(status)),
            Err(Declined::Moved) => Ok(None),
            Err(Declined::Storage(error)) => Err(error),
        }
    }
}

/// The refresh token a rejected request carried, and its grant.
struct Used<'a> {
    refresh_token: &'a Secret,
    grant: Option<&'a str>,
}

/// Tokens judged dead: their version (only that one is wiped) and their
/// grant.
pub(super) struct Judged {
    version: u64,
    grant: Option<String>,
}

impl Judged {
    fn of(tokens: &Versioned<TokensRecord>) -> Self {
        Self {
            version: tokens.version,
            grant: tokens.value.grant.clone(),
        }
    }
}

/// What came of trying to send a refresh.
enum Send {
    Sent(Sent),
    /// The lease was taken over: nothing sent.
    LeaseLost,
    /// Other tokens were stored meanwhile: nothing sent.
    Superseded(TokensRecord),
}

/// What the store loop made of the rotated tokens.
enum Stored {
    Ours,
    /// Another authorisation's tokens stand.
    Theirs(TokensRecord),
    /// The connection was disconnected or forgotten meanwhile.
    Gone,
}

/// The kinds of failed refresh the status records.
enum Failure<'a> {
    /// The token endpoint refused the client: its error code.
    Client(&'a str),
    /// The host holds no client secret.
    NoCredentials,
    /// Transient: the cause, and (out) whether the connection had stalled
    /// already.
    Transient(&'a str, &'a mut bool),
}

/// What becomes of the write-ahead record after a failed request.
enum InFlightAfter {
    /// The request never left: back to what it was before.
    Restore(Option<InFlight>),
    /// The server may have acted: keep it, with the first cause seen.
    Unknown(String),
}

/// Acts on a dead grant at once (Pleo's how-to, step 2): the status says
/// re-authentication is required, with its reason, so every gate refuses
/// from now on; then both tokens are wiped. The configuration is kept.
/// `last_error` keeps what led here, when it was not the user's doing.
///
/// Only the tokens judged dead (at version `judged`) are wiped: when an
/// authorisation stored a new grant meanwhile, it stands, and the status
/// goes back to what its tokens say.
pub(super) async fn grant_dead(
    fx: &Effects,
    now_ms: u64,
    connection: &str,
    judged: Judged,
    reason: Reason,
    last_error: Option<String>,
    fields: &[(&str, String)],
) -> Result<Refusal, StorageError> {
    let judged_dead = status::update(fx, connection, now_ms, async |mut status| {
        // Disconnected meanwhile, or claimed by a new authorisation whose
        // tokens are on their way: the user's choice stands.
        if status.moved_on_from(judged.grant.as_deref(), now_ms) {
            return Err(Declined::Moved);
        }
        status.reason = Some(reason);
        status.clear_failures();
        status.in_flight = None;
        status.last_error = last_error.clone();
        if status.state != State::Authorizing {
            status.enter(State::ReauthRequired, now_ms);
        }
        Ok(status)
    })
    .await;
    match judged_dead {
        Ok(_) => {}
        Err(Declined::Moved) => {
            let (status, _) = status::read(fx, connection, now_ms).await?;
            return Ok(without_tokens(&status));
        }
        Err(Declined::Storage(error)) => return Err(error),
    }
    let key = store::tokens_key(connection);
    match fx.delete(&key, judged.version).await {
        Ok(()) => {}
        Err(crate::types::StorageError::Conflict) => {
            if store::read::<TokensRecord>(fx, &key).await?.is_some() {
                // A new grant arrived while this one was judged: undo.
                status::update(fx, connection, now_ms, async |mut status| {
                    if status.reason == Some(reason) {
                        status.reason = None;
                        status.last_error = None;
                        status.enter(status.token_state(), now_ms);
                    }
                    Ok::<_, StorageError>(status)
                })
                .await?;
                return Ok(in_progress(now_ms.saturating_add(lease::POLL_MS)));
            }
        }
        Err(error) => return Err(error),
    }
    events::emit(
        fx,
        Level::Warn,
        Kind::RevocationDetected,
        connection,
        fields,
        "the grant is no longer valid; tokens wiped, configuration kept",
    )
    .await;
    events::emit(
        fx,
        Level::Warn,
        Kind::ReauthRequired,
        connection,
        &[("reason", kebab(&reason))],
        "API calls stop until the user re-authorises",
    )
    .await;
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

fn in_progress(until_ms: u64) -> Refusal {
    Refusal::Wait {
        until_ms,
        why: WaitReason::RefreshInProgress,
    }
}

/// The refusal while a back-off runs.
pub(super) fn backing_off(status: &Status, retry_at_ms: u64) -> Refusal {
    match &status.client_error {
        Some(code) => Refusal::ClientMisconfigured {
            fault: ClientFault::from_recorded(code),
            retry_at_ms: Some(retry_at_ms),
        },
        None => Refusal::Wait {
            until_ms: retry_at_ms,
            why: if status.stalled {
                WaitReason::Stalled
            } else {
                WaitReason::BackingOff
            },
        },
    }
}

/// Whether a transient failure proves the request never reached the server.
fn never_sent(transient: &Transient) -> bool {
    matches!(&transient.cause, TransientCause::Transport(error) if error.never_sent())
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
