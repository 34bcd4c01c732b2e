//! Classification natively and through the component, and the cost of a
//! fresh instance. The `*-floor` rows pass an input of the same shape that
//! the guest dismisses at once (a body that is not JSON; a 200), so they
//! measure the boundary alone: lowering the arguments into the guest and
//! the call. Run with `cargo bench --bench classify`; compare ratios within
//! one run, since these machines are noisy.

use criterion::{Criterion, criterion_group, criterion_main};
use pleo_oauth::{Backends, Runtime, RuntimeConfig};
use pleo_oauth_core::classify::{self, ApiAttempt, GrantKind};
use pleo_oauth_core::types::{Header, Response, ResponseHead};
use std::hint::black_box;

const NOW: u64 = 1_700_000_000_000;

fn token_response() -> Response {
    Response {
        status: 200,
        headers: vec![Header::new("Content-Type", "application/json"), Header::new("Cache-Control", "no-store")],
        body: br#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl","token_type":"Bearer","expires_in":3600,"refresh_token":"8xLOxBtZp8","scope":"users:read export-jobs:write"}"#.to_vec(),
    }
}

/// The token response's headers, and a body of its length that is not JSON.
fn token_response_floor() -> Response {
    let mut response = token_response();
    response.body.fill(b'x');
    response
}

fn api_response() -> ResponseHead {
    ResponseHead {
        status: 403,
        headers: vec![Header::new(
            "WWW-Authenticate",
            r#"Bearer realm="pleo", error="insufficient_scope", scope="users:read export-jobs:write""#,
        )],
    }
}

fn benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let mut instance = runtime.instance(Backends::default()).expect("instance");
    let token = token_response();
    let token_floor = token_response_floor();
    let api = api_response();
    let api_floor = ResponseHead {
        status: 200,
        ..api_response()
    };

    let mut group = c.benchmark_group("token-response");
    group.bench_function("native", |b| {
        b.iter(|| classify::token_response(GrantKind::RefreshToken, Ok(black_box(&token)), NOW))
    });
    group.bench_function("component", |b| {
        b.iter(|| {
            instance
                .token_response(GrantKind::RefreshToken, Ok(black_box(&token)), NOW)
                .unwrap()
        })
    });
    group.bench_function("native-floor", |b| {
        b.iter(|| {
            classify::token_response(GrantKind::RefreshToken, Ok(black_box(&token_floor)), NOW)
        })
    });
    group.bench_function("component-floor", |b| {
        b.iter(|| {
            instance
                .token_response(GrantKind::RefreshToken, Ok(black_box(&token_floor)), NOW)
                .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("api-response");
    group.bench_function("native", |b| {
        b.iter(|| classify::api_response(Ok(black_box(&api)), ApiAttempt::First, NOW))
    });
    group.bench_function("component", |b| {
        b.iter(|| {
            instance
                .api_response(Ok(black_box(&api)), ApiAttempt::First, NOW)
                .unwrap()
        })
    });
    group.bench_function("component-floor", |b| {
        b.iter(|| {
            instance
                .api_response(Ok(black_box(&api_floor)), ApiAttempt::First, NOW)
                .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("instance");
    group.bench_function("fresh-from-instance-pre", |b| {
        b.iter(|| runtime.instance(Backends::default()).unwrap())
    });
    group.bench_function("fresh-instance-plus-api-call", |b| {
        b.iter(|| {
            let mut fresh = runtime.instance(Backends::default()).unwrap();
            fresh
                .api_response(Ok(black_box(&api)), ApiAttempt::First, NOW)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(classify_benches, benches);
criterion_main!(classify_benches);
