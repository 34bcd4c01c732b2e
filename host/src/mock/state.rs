//! The mock server's memory: the client, pending consents, codes, grants,
//! tokens, injected faults and counters, behind one mutex.
//!
//! A grant is what one authorisation created. Its tokens stay in the token
//! table after rotation so that a rotated-away refresh token is recognised
//! (reuse detection) and a rotated-away access token is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{Consent, Fault, MockConfig, Stats};
use crate::imports::clock::Clock;

/// An authorisation code lives this long. RFC 6749 §4.1.2 asks for a short
/// lifetime, at most 10 minutes.
const CODE_TTL_MS: u64 = 60_000;
/// A consent page stays answerable this long.
const PENDING_TTL_MS: u64 = 600_000;

/// What the request handlers share.
pub(super) struct Shared {
    pub clock: Arc<dyn Clock>,
    /// The RFC 9207 issuer identifier, the server's base URL.
    pub issuer: String,
    store: Mutex<Store>,
}

impl Shared {
    pub fn new(config: MockConfig, issuer: String) -> Self {
        let mut issued = Vec::new();
        issued.extend(config.client_secret.clone());
        let store = Store {
            client: Client {
                id: config.client_id,
                secret: config.client_secret,
                redirect_uris: config.redirect_uris,
                scopes: config.scopes,
            },
            access_ttl_secs: config.access_ttl_secs,
            refresh_ttl_secs: config.refresh_ttl_secs,
            consent: config.consent,
            pending: HashMap::new(),
            codes: HashMap::new(),
            grants: Vec::new(),
            tokens: HashMap::new(),
            faults: VecDeque::new(),
            stats: Stats::default(),
            issued,
        };
        Self {
            clock: config.clock,
            issuer,
            store: Mutex::new(store),
        }
    }

    /// The store, locked. A handler never holds it across an await.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // Every update leaves the state consistent, so a panic elsewhere
        // does not make it unusable.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// The one registered client.
pub(super) struct Client {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
}

/// A validated authorisation request (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Clone)]
pub(super) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: String,
    pub code_challenge: String,
}

struct Pending {
    request: AuthRequest,
    expires_at: u64,
}

struct Code {
    request: AuthRequest,
    expires_at: u64,
    used: bool,
    /// The grant the code was exchanged for, revoked if the code comes back.
    grant: Option<usize>,
}

/// What happened to one grant: for tests that count refreshes per
/// connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantHistory {
    /// Not revoked (by the user, or by reuse detection).
    pub active: bool,
    /// When each successful refresh happened (the server's clock, Unix ms).
    pub refreshed_at_ms: Vec<u64>,
}

struct Grant {
    client_id: String,
    scopes: Vec<String>,
    active: bool,
    /// The only access token of the grant that still works.
    access: String,
    /// The only refresh token of the grant that still works.
    refresh: String,
    /// When each successful refresh of the grant happened (server clock).
    refreshed_at: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenKind {
    Access,
    Refresh,
}

struct Token {
    kind: TokenKind,
    grant: usize,
    scopes: Vec<String>,
    expires_at: u64,
}

/// Which endpoint a fault is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultTarget {
    Token,
    Api,
}

impl Fault {
    fn target(self) -> FaultTarget {
        match self {
            Fault::TokenServerErrorHtml
            | Fault::TokenRateLimited
            | Fault::TokenDelay(_)
            | Fault::TokenSlowAnswer(_)
            | Fault::TokenErrorIn200
            | Fault::TokenRotateThenGatewayTimeout
            | Fault::TokenRotateThenDrop => FaultTarget::Token,
            Fault::ApiServerError | Fault::ApiUnauthorized => FaultTarget::Api,
        }
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(serde::Serialize)]
pub(super) struct TokenSet {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u32,
    pub refresh_token: String,
    pub scope: String,
}

/// A failed token endpoint request (RFC 6749 §5.2): the error code and a
/// description for the developer.
pub(super) struct OAuthError {
    pub code: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    pub fn invalid_request(description: &'static str) -> Self {
        Self {
            code: "invalid_request",
            description,
        }
    }

    pub fn invalid_grant(description: &'static str) -> Self {
        Self {
            code: "invalid_grant",
            description,
        }
    }

    pub fn invalid_scope(description: &'static str) -> Self {
        Self {
            code: "invalid_scope",
            description,
        }
    }
}

/// What introspection reports about an active token (RFC 7662 §2.2).
pub(super) struct Introspection {
    pub kind: TokenKind,
    pub scope: String,
    pub client_id: String,
    pub exp_secs: u64,
}

/// Why an access token is refused (RFC 6750 §3.1 `error_description`).
pub(super) enum AccessError {
    Unknown,
    Expired,
    Revoked,
}

impl AccessError {
    pub fn description(&self) -> &'static str {
        match self {
            AccessError::Unknown => "The access token is not known",
            AccessError::Expired => "The access token has expired",
            AccessError::Revoked => "The access token has been revoked",
        }
    }
}

/// Everything the server knows. Tokens and codes are kept after they stop
/// working, so that a second use is recognised.
pub(super) struct Store {
    pub client: Client,
    access_ttl_secs: u32,
    refresh_ttl_secs: u32,
    pub consent: Consent,
    pending: HashMap<String, Pending>,
    codes: HashMap<String, Code>,
    /// Indexed by grant id.
    grants: Vec<Grant>,
    tokens: HashMap<String, Token>,
    faults: VecDeque<(Fault, u32)>,
    pub stats: Stats,
    issued: Vec<String>,
}

impl Store {
    /// Holds a request until the user decides on the consent page; returns
    /// the unguessable id the page posts back.
    pub fn add_pending(&mut self, request: AuthRequest, now: u64) -> String {
        self.pending.retain(|_, p| p.expires_at > now);
        let id = random_string(16);
        self.pending.insert(
            id.clone(),
            Pending {
                request,
                expires_at: now + PENDING_TTL_MS,
            },
        );
        id
    }

    /// The pending request with this id, at most once.
    pub fn take_pending(&mut self, id: &str, now: u64) -> Option<AuthRequest> {
        self.pending
            .remove(id)
            .filter(|p| p.expires_at > now)
            .map(|p| p.request)
    }

    /// A single-use code bound to the request's client, redirect URI, scopes
    /// and code challenge (RFC 6749 §4.1.2, RFC 7636 §4.4).
    pub fn issue_code(&mut self, request: AuthRequest, now: u64) -> String {
        // The client's `state` is a secret too: tests scan logs for it.
        self.issued.push(request.state.clone());
        let code = self.new_secret();
        self.codes.insert(
            code.clone(),
            Code {
                request,
                expires_at: now + CODE_TTL_MS,
                used: false,
                grant: None,
            },
        );
        code
    }

    /// The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6).
    ///
    /// A code is spent by its first presentation, whatever the outcome, so
    /// a wrong verifier cannot be retried. A code presented again revokes
    /// the grant it was exchanged for (RFC 6749 §4.1.2).
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now: u64,
    ) -> Result<TokenSet, OAuthError> {
        // The client's verifier, for the tests' secret scans.
        if !verifier.is_empty() && !self.issued.iter().any(|s| s == verifier) {
            self.issued.push(verifier.to_owned());
        }
        let Some(entry) = self.codes.get_mut(code) else {
            return Err(OAuthError::invalid_grant("unknown authorization code"));
        };
        if entry.used {
            if let Some(grant) = entry.grant {
                self.revoke_grant(grant);
            }
            return Err(OAuthError::invalid_grant(
                "authorization code already used; its grant is revoked",
            ));
        }
        entry.used = true;
        if entry.expires_at <= now {
            return Err(OAuthError::invalid_grant("authorization code expired"));
        }
        let request = entry.request.clone();
        if request.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "authorization code was issued to another client",
            ));
        }
        if request.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if !is_valid_verifier(verifier) {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]",
            ));
        }
        if s256(verifier) != request.code_challenge {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let grant = self.grants.len();
        self.grants.push(Grant {
            client_id: request.client_id,
            scopes: request.scopes.clone(),
            active: true,
            access: String::new(),
            refresh: String::new(),
            refreshed_at: Vec::new(),
        });
        if let Some(entry) = self.codes.get_mut(code) {
            entry.grant = Some(grant);
        }
        self.stats.code_exchanges += 1;
        Ok(self.issue_tokens(grant, request.scopes, now))
    }

    /// The `refresh_token` grant (RFC 6749 §6) with Pleo's rotation: the new
    /// pair replaces the old one at once. A refresh token that was already
    /// rotated away revokes the whole grant (reuse detection, RFC 9700
    /// §4.14.2).
    pub fn refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
        scope: Option<&str>,
        now: u64,
    ) -> Result<TokenSet, OAuthError> {
        self.stats.refresh_attempts += 1;
        let Some(token) = self
            .tokens
            .get(refresh_token)
            .filter(|t| t.kind == TokenKind::Refresh)
        else {
            return Err(OAuthError::invalid_grant("unknown refresh token"));
        };
        let (grant_id, expires_at) = (token.grant, token.expires_at);
        let grant = &self.grants[grant_id];
        if grant.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        if grant.refresh != refresh_token {
            self.stats.reuse_detections += 1;
            self.revoke_grant(grant_id);
            return Err(OAuthError::invalid_grant(
                "refresh token was already used; every token of the grant is revoked",
            ));
        }
        if !grant.active {
            return Err(OAuthError::invalid_grant("refresh token has been revoked"));
        }
        if expires_at <= now {
            return Err(OAuthError::invalid_grant("refresh token has expired"));
        }
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one;
        // without one the scope originally granted applies.
        let scopes = match scope {
            None => grant.scopes.clone(),
            Some(scope) => {
                let asked = split_scope(scope);
                if asked.is_empty() || !asked.iter().all(|s| grant.scopes.contains(s)) {
                    return Err(OAuthError::invalid_scope(
                        "scope exceeds the scope originally granted",
                    ));
                }
                asked
            }
        };
        self.stats.refreshes += 1;
        self.grants[grant_id].refreshed_at.push(now);
        Ok(self.issue_tokens(grant_id, scopes, now))
    }

    /// The scopes of a working access token (RFC 6750 §3.1 `invalid_token`
    /// otherwise).
    pub fn check_access(&self, token: &str, now: u64) -> Result<&[String], AccessError> {
        let Some(entry) = self
            .tokens
            .get(token)
            .filter(|t| t.kind == TokenKind::Access)
        else {
            return Err(AccessError::Unknown);
        };
        let grant = &self.grants[entry.grant];
        if !grant.active || grant.access != token {
            return Err(AccessError::Revoked);
        }
        if entry.expires_at <= now {
            return Err(AccessError::Expired);
        }
        Ok(&entry.scopes)
    }

    /// What RFC 7662 §2.2 reports about a token, or `None` when it is not
    /// active.
    pub fn introspect(&self, token: &str, now: u64) -> Option<Introspection> {
        let entry = self.tokens.get(token)?;
        let grant = &self.grants[entry.grant];
        let current = match entry.kind {
            TokenKind::Access => &grant.access,
            TokenKind::Refresh => &grant.refresh,
        };
        (grant.active && current == token && entry.expires_at > now).then(|| Introspection {
            kind: entry.kind,
            scope: entry.scopes.join(" "),
            client_id: grant.client_id.clone(),
            exp_secs: entry.expires_at / 1000,
        })
    }

    /// Revokes the grant of any token this client was issued, current or not
    /// (RFC 7009 §2.1). An unknown token is not an error (RFC 7009 §2.2).
    pub fn revoke_token(&mut self, client_id: &str, token: &str) {
        let Some(grant) = self.tokens.get(token).map(|t| t.grant) else {
            return;
        };
        if self.grants[grant].client_id == client_id {
            self.revoke_grant(grant);
        }
    }

    /// The user revokes access: every grant dies.
    pub fn revoke_all(&mut self) {
        for grant in &mut self.grants {
            grant.active = false;
        }
    }

    /// Every access token issued so far expires now.
    pub fn expire_access_tokens(&mut self, now: u64) {
        for token in self.tokens.values_mut() {
            if token.kind == TokenKind::Access {
                token.expires_at = token.expires_at.min(now);
            }
        }
    }

    /// Replaces the client secret; the old one stops working at once.
    pub fn rotate_client_secret(&mut self, new: &str) {
        self.client.secret = Some(new.to_owned());
        self.issued.push(new.to_owned());
    }

    /// Queues `count` occurrences of a fault after the ones already queued.
    pub fn inject(&mut self, fault: Fault, count: u32) {
        if count > 0 {
            self.faults.push_back((fault, count));
        }
    }

    /// Drops every queued fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Each grant, in the order issued: whether it still works, and when
    /// it was refreshed.
    pub fn grants(&self) -> Vec<GrantHistory> {
        self.grants
            .iter()
            .map(|g| GrantHistory {
                active: g.active,
                refreshed_at_ms: g.refreshed_at.clone(),
            })
            .collect()
    }

    /// The next queued fault for this endpoint, if any, counted as served.
    pub fn take_fault(&mut self, target: FaultTarget) -> Option<Fault> {
        let index = self.faults.iter().position(|(f, _)| f.target() == target)?;
        let (fault, left) = &mut self.faults[index];
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            self.faults.remove(index);
        }
        self.stats.faults_served += 1;
        Some(fault)
    }

    /// Every token, code and client secret ever issued, and every `state`
    /// and PKCE verifier a client presented.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.issued.clone()
    }

    fn revoke_grant(&mut self, grant: usize) {
        self.grants[grant].active = false;
    }

    /// A new access and refresh token for the grant; the previous ones stop
    /// working.
    fn issue_tokens(&mut self, grant: usize, scopes: Vec<String>, now: u64) -> TokenSet {
        let access = self.new_secret();
        let refresh = self.new_secret();
        let access_ms = u64::from(self.access_ttl_secs) * 1000;
        let refresh_ms = u64::from(self.refresh_ttl_secs) * 1000;
        self.tokens.insert(
            access.clone(),
            Token {
                kind: TokenKind::Access,
                grant,
                scopes: scopes.clone(),
                expires_at: now + access_ms,
            },
        );
        self.tokens.insert(
            refresh.clone(),
            Token {
                kind: TokenKind::Refresh,
                grant,
                scopes: scopes.clone(),
                expires_at: now + refresh_ms,
            },
        );
        let entry = &mut self.grants[grant];
        entry.access.clone_from(&access);
        entry.refresh.clone_from(&refresh);
        TokenSet {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.access_ttl_secs,
            refresh_token: refresh,
            scope: scopes.join(" "),
        }
    }

    /// 32 random bytes, base64url: a code or a token, recorded as issued.
    fn new_secret(&mut self) -> String {
        let secret = random_string(32);
        self.issued.push(secret.clone());
        secret
    }
}

/// `len` bytes from the OS CSPRNG, base64url without padding.
fn random_string(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
pub(super) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 43-128 unreserved characters (RFC 7636 §4.1).
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A space-delimited scope list without empty entries or duplicates
/// (RFC 6749 §3.3).
pub(super) fn split_scope(scope: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|seen| seen == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}
