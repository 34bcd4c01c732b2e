//! `pleo-oauth classify`: the component's pure verdicts on responses given
//! on the command line, and a tour of realistic Pleo samples.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use pleo_oauth::Instance;
use pleo_oauth::classify::{ApiAttempt, GrantKind};
use pleo_oauth::types::{Header, Response, ResponseHead, TransportError};

use crate::describe::{self, Described};

#[derive(Subcommand)]
pub enum Classify {
    /// A token-endpoint response (refresh or code exchange).
    Token {
        /// The grant the request used.
        #[arg(long, value_enum, default_value = "refresh-token")]
        grant: Grant,
        #[command(flatten)]
        response: ResponseArgs,
        /// The response body, as text.
        #[arg(long, default_value = "")]
        body: String,
    },
    /// An API response (status and headers).
    Api {
        #[command(flatten)]
        response: ResponseArgs,
        /// The request used a token refreshed because of a 401 just before.
        #[arg(long)]
        after_refresh: bool,
    },
    /// One or more WWW-Authenticate field values, in order.
    WwwAuthenticate {
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// A tour: a dozen realistic Pleo responses (rotated refresh, expired
    /// refresh token, revoked grant, rotated client secret, HTML outage
    /// page, timeouts, API 401s, a missing scope, rate limiting) and what a
    /// platform should do with each.
    Samples,
    /// A Retry-After value.
    RetryAfter {
        value: String,
        /// The current time in Unix milliseconds (default: now).
        #[arg(long)]
        now_ms: Option<u64>,
    },
}

#[derive(clap::Args)]
pub struct ResponseArgs {
    /// The HTTP status.
    #[arg(long)]
    status: Option<u16>,
    /// A header as `Name: value`; repeat for more.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<Header>,
    /// No response arrived: the transport error instead.
    #[arg(long, value_enum, conflicts_with = "status")]
    transport_error: Option<Transport>,
    /// The current time in Unix milliseconds (default: now).
    #[arg(long)]
    now_ms: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Grant {
    RefreshToken,
    AuthorizationCode,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Timeout,
    ConnectionRefused,
    Dns,
    Tls,
    BodyTooLarge,
    ConnectionLost,
    NoCredentials,
}

fn parse_header(text: &str) -> Result<Header, String> {
    let (name, value) = text.split_once(':').ok_or("a header is `Name: value`")?;
    Ok(Header::new(name.trim(), value.trim()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ResponseArgs {
    fn now(&self) -> u64 {
        self.now_ms.unwrap_or_else(now_ms)
    }

    fn outcome(&self) -> Result<(u16, Vec<Header>), TransportError> {
        match (self.status, self.transport_error) {
            (_, Some(error)) => Err(match error {
                Transport::Timeout => TransportError::Timeout,
                Transport::ConnectionRefused => TransportError::ConnectionRefused,
                Transport::Dns => TransportError::Dns,
                Transport::Tls => TransportError::Tls,
                Transport::BodyTooLarge => TransportError::BodyTooLarge,
                Transport::ConnectionLost => TransportError::ConnectionLost,
                Transport::NoCredentials => TransportError::NoCredentials,
            }),
            (status, None) => Ok((status.unwrap_or(200), self.headers.clone())),
        }
    }
}

pub fn classify(
    instance: &mut Instance,
    command: Classify,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Classify::Token {
            grant,
            response,
            body,
        } => {
            let grant = match grant {
                Grant::RefreshToken => GrantKind::RefreshToken,
                Grant::AuthorizationCode => GrantKind::AuthorizationCode,
            };
            let now = response.now();
            let input = response.outcome().map(|(status, headers)| Response {
                status,
                headers,
                body: body.into_bytes(),
            });
            let outcome = instance.token_response(grant, input.as_ref(), now)?;
            print_described(&describe::token_outcome(&outcome, now));
        }
        Classify::Api {
            response,
            after_refresh,
        } => {
            let attempt = if after_refresh {
                ApiAttempt::AfterRefresh
            } else {
                ApiAttempt::First
            };
            let now = response.now();
            let input = response
                .outcome()
                .map(|(status, headers)| ResponseHead { status, headers });
            let outcome = instance.api_response(input.as_ref(), attempt, now)?;
            print_described(&describe::api_outcome(&outcome, now));
        }
        Classify::Samples => samples_demo(instance)?,
        Classify::WwwAuthenticate { values } => {
            for line in describe::challenges(&instance.www_authenticate(&values)?) {
                println!("{line}");
            }
        }
        Classify::RetryAfter { value, now_ms: now } => {
            let now = now.unwrap_or_else(now_ms);
            match instance.retry_after(&value, now)? {
                Some(at) => println!(
                    "retry at {at} (in {} s)",
                    at.saturating_sub(now).div_ceil(1000)
                ),
                None => println!("not a valid Retry-After value"),
            }
        }
    }
    Ok(())
}

fn print_described(described: &Described) {
    println!("verdict: {}", described.verdict);
    for detail in &described.details {
        println!("  {detail}");
    }
    println!("  what to do: {}", described.action);
}

/// A realistic sample: what happened, and the response it produced.
enum Sample {
    Token(GrantKind, Result<Response, TransportError>),
    Api(ApiAttempt, Result<ResponseHead, TransportError>),
}

fn json(status: u16, body: &str) -> Result<Response, TransportError> {
    let headers = vec![Header::new("Content-Type", "application/json")];
    Ok(Response {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    })
}

fn api(status: u16, headers: &[(&str, &str)]) -> Result<ResponseHead, TransportError> {
    Ok(ResponseHead {
        status,
        headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
    })
}

fn samples() -> Vec<(&'static str, Sample)> {
    use GrantKind::{AuthorizationCode, RefreshToken};
    use Sample::{Api, Token};
    vec![
        (
            "refresh succeeded; Pleo rotated the refresh token",
            Token(
                RefreshToken,
                json(
                    200,
                    r#"{"access_token":"eyJhbGciOi.demo.access","token_type":"Bearer","expires_in":3600,"refresh_token":"demo-rotated-refresh","scope":"users:read export-jobs:write"}"#,
                ),
            ),
        ),
        (
            "refresh token expired or already used",
            Token(
                RefreshToken,
                json(
                    400,
                    r#"{"error":"invalid_grant","error_description":"Refresh token expired"}"#,
                ),
            ),
        ),
        (
            "the user revoked access in Pleo",
            Token(RefreshToken, json(400, r#"{"error":"invalid_token"}"#)),
        ),
        (
            "the authorisation code was used twice",
            Token(AuthorizationCode, json(400, r#"{"error":"invalid_grant"}"#)),
        ),
        (
            "the client secret was rotated",
            Token(RefreshToken, json(401, r#"{"error":"invalid_client"}"#)),
        ),
        (
            "the token endpoint is down behind a load balancer",
            Token(
                RefreshToken,
                Ok(Response {
                    status: 503,
                    headers: vec![
                        Header::new("Content-Type", "text/html"),
                        Header::new("Retry-After", "30"),
                    ],
                    body: b"<html><body>503 Service Unavailable</body></html>".to_vec(),
                }),
            ),
        ),
        (
            "a captive portal answered 200 with a login page",
            Token(
                RefreshToken,
                Ok(Response {
                    status: 200,
                    headers: vec![],
                    body: b"<html>Please log in</html>".to_vec(),
                }),
            ),
        ),
        (
            "an error code this version does not know",
            Token(RefreshToken, json(400, r#"{"error":"account_locked"}"#)),
        ),
        (
            "the network timed out",
            Token(RefreshToken, Err(TransportError::Timeout)),
        ),
        (
            "API: the access token went stale",
            Api(
                ApiAttempt::First,
                api(
                    401,
                    &[("WWW-Authenticate", r#"Bearer error="invalid_token""#)],
                ),
            ),
        ),
        (
            "API: still 401 right after a refresh",
            Api(ApiAttempt::AfterRefresh, api(401, &[])),
        ),
        (
            "API: the feature needs another scope",
            Api(
                ApiAttempt::First,
                api(
                    403,
                    &[(
                        "WWW-Authenticate",
                        r#"Bearer error="insufficient_scope", scope="export-jobs:write""#,
                    )],
                ),
            ),
        ),
        (
            "API: rate limited",
            Api(ApiAttempt::First, api(429, &[("Retry-After", "5")])),
        ),
    ]
}

pub fn samples_demo(instance: &mut Instance) -> Result<(), Box<dyn std::error::Error>> {
    let now = now_ms();
    println!(
        "pleo-oauth {}: classifying sample responses through the component\n",
        env!("CARGO_PKG_VERSION")
    );
    for (index, (situation, sample)) in samples().into_iter().enumerate() {
        let described = match sample {
            Sample::Token(grant, response) => describe::token_outcome(
                &instance.token_response(grant, response.as_ref(), now)?,
                now,
            ),
            Sample::Api(attempt, response) => describe::api_outcome(
                &instance.api_response(response.as_ref(), attempt, now)?,
                now,
            ),
        };
        println!("{:>2}. {situation}", index + 1);
        print_described(&described);
        println!();
    }
    println!("Tokens are never printed: the verdict types redact them.");
    Ok(())
}
