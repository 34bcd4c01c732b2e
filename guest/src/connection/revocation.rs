//! Revoking a grant at the server (RFC 7009): on the user's `disconnect`,
//! and when a code exchange or a refresh brings tokens back after it.

use serde::{Deserialize, Serialize};

use super::config::ConnectionConfig;
use super::request;
use super::status;
use super::store::TokensRecord;
use crate::classify::ErrorCode;
use crate::effects::Effects;
use crate::events::{self, Kind, kebab};
use crate::types::Level;

/// What happened to the grant at the server on disconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Revocation {
    /// Revocation was not asked for.
    NotRequested,
    /// No revocation endpoint is configured (Pleo documents none).
    NotConfigured,
    /// There were no tokens to revoke.
    NoToken,
    /// The server confirmed (RFC 7009 §2.2: also for an already-invalid token).
    Revoked,
    /// The server did not confirm: a status, an error code or a transport
    /// failure, for operators. The local tokens are wiped all the same.
    Failed(String),
}

/// RFC 7009 §2.1: revoking the refresh token revokes the grant (the
/// server SHOULD then invalidate its access tokens too); without one, the
/// access token.
pub(super) async fn revoke_grant(
    fx: &Effects,
    config: &ConnectionConfig,
    url: &str,
    tokens: &TokensRecord,
) -> Revocation {
    let (token, hint) = match &tokens.refresh_token {
        Some(refresh) => (refresh.to_secret(), "refresh_token"),
        None => (tokens.access_token.to_secret(), "access_token"),
    };
    let request = request::form_post(
        config,
        url.to_owned(),
        &[("token", token.expose()), ("token_type_hint", hint)],
    );
    match fx.send(request).await {
        Ok(response) if response.status == 200 => Revocation::Revoked,
        Ok(response) => {
            // RFC 7009 §2.2.1: an error response has an RFC 6749 §5.2 body.
            let code = ErrorCode::of_body(&response.body);
            Revocation::Failed(match code {
                Some(code) => format!("status {}: {}", response.status, code.as_str()),
                None => format!("status {}", response.status),
            })
        }
        Err(error) => Revocation::Failed(error.summary().to_owned()),
    }
}

/// Tokens a code exchange, a refresh or a `begin` came upon after the user
/// disconnected (`by` names which; `flow` is a code exchange's state
/// hash): they are in no record, or about to leave it, so
/// `disconnect` could not revoke them and nobody else can. When that
/// disconnect asked for revocation ([`status::Status::revocation_asked`])
/// and an endpoint is configured, they are revoked here (RFC 7009 §2.1;
/// §2.2: revoking twice is harmless), best effort, with a
/// `late-grant-revoked` event. Otherwise they are left to expire at the
/// server: neither a forget nor a newer authorisation asks for revocation.
pub(crate) async fn revoke_late_grant(
    fx: &Effects,
    config: &ConnectionConfig,
    connection: &str,
    tokens: &TokensRecord,
    by: &str,
    flow: Option<&str>,
) {
    let asked = status::read(fx, connection, 0)
        .await
        .is_ok_and(|(status, _)| status.revocation_asked(flow));
    let Some(url) = config.revocation_url.as_deref().filter(|_| asked) else {
        return;
    };
    let revocation = revoke_grant(fx, config, url, tokens).await;
    let level = match revocation {
        Revocation::Revoked => Level::Info,
        _ => Level::Warn,
    };
    events::emit(
        fx,
        level,
        Kind::LateGrantRevoked,
        connection,
        &[
            ("by", by.to_owned()),
            ("revocation", revocation_name(&revocation)),
        ],
        "tokens brought back after the user disconnected with revocation: revoked at the server",
    )
    .await;
}

pub(super) fn revocation_name(revocation: &Revocation) -> String {
    match revocation {
        Revocation::Failed(_) => "failed".into(),
        other => kebab(other),
    }
}
