//! The authorisation step every connect pays: a PKCE verifier and its S256
//! challenge (RFC 7636 §4.1, §4.2), a `state` of 256 random bits, and the
//! authorisation URL (RFC 6749 §4.1.1): natively in the core, through the
//! component, and with oauth2-rs 5 (the best-known Rust OAuth client)
//! doing the same work. All three draw their randomness from the same
//! user-space CSPRNG, `rand`'s thread RNG, which oauth2-rs uses: the core
//! takes randomness as an argument, so where it comes from is the caller's
//! choice and not part of what is compared. The core and the component check
//! and encode the client's fixed parameters once (`UrlTemplate`, in the
//! component `authorize.url-template`), as oauth2-rs parses its endpoint
//! once (`AuthUrl`); the `-unprepared` rows check everything per call. Run with `cargo bench
//! --bench authorize`; compare ratios within one run.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use pleo_oauth::{Backends, Runtime, RuntimeConfig};
use pleo_oauth_core::authorize::{UrlTemplate, Verifier, url};
use pleo_oauth_core::secret::Secret;
use std::hint::black_box;

const AUTHORIZE: &str = "https://auth.staging.pleo.io/oauth/authorize";
const CLIENT: &str = "a-pleo-client-id";
const REDIRECT: &str = "https://integration.example/oauth/callback";

fn random32() -> [u8; 32] {
    rand::random()
}

fn params(state: Secret, code_challenge: String) -> url::UrlParams {
    url::UrlParams {
        authorize_url: AUTHORIZE.into(),
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        scopes: vec!["users:read".into(), "expenses:read".into()],
        state,
        code_challenge,
        extra_params: vec![],
    }
}

/// A fresh verifier's challenge, computed by the component, and a state.
fn state_and_challenge(instance: &mut pleo_oauth::Instance) -> (Secret, String) {
    let verifier = Verifier::from_random(&random32());
    let challenge = instance
        .s256_challenge(verifier.secret().expose())
        .unwrap()
        .unwrap();
    (Secret::new(URL_SAFE_NO_PAD.encode(random32())), challenge)
}

fn benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let mut instance = runtime.instance(Backends::default()).expect("instance");
    let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(CLIENT.into()))
        .set_auth_uri(oauth2::AuthUrl::new(AUTHORIZE.into()).unwrap())
        .set_redirect_uri(oauth2::RedirectUrl::new(REDIRECT.into()).unwrap());

    let fixed = params(Secret::new(""), String::new());
    let template = UrlTemplate::new(
        &fixed.authorize_url,
        &fixed.client_id,
        &fixed.redirect_uri,
        &fixed.scopes,
    )
    .unwrap();

    let mut group = c.benchmark_group("pkce-state-url");
    group.bench_function("native", |b| {
        b.iter(|| {
            let verifier = Verifier::from_random(&random32());
            let state = Secret::new(URL_SAFE_NO_PAD.encode(random32()));
            black_box(&template)
                .url(&state, &verifier.s256_challenge(), &[])
                .unwrap()
        })
    });
    group.bench_function("native-unprepared", |b| {
        b.iter(|| {
            let verifier = Verifier::from_random(&random32());
            let state = Secret::new(URL_SAFE_NO_PAD.encode(random32()));
            url::build(black_box(&params(state, verifier.s256_challenge()))).unwrap()
        })
    });
    let mut component_template = instance
        .url_template(
            &fixed.authorize_url,
            &fixed.client_id,
            &fixed.redirect_uri,
            &fixed.scopes,
        )
        .unwrap()
        .unwrap();
    group.bench_function("component", |b| {
        b.iter(|| {
            let (state, challenge) = state_and_challenge(&mut instance);
            instance
                .template_url(black_box(&mut component_template), &state, &challenge, &[])
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("component-unprepared", |b| {
        b.iter(|| {
            let (state, challenge) = state_and_challenge(&mut instance);
            instance
                .build_url(black_box(&params(state, challenge)))
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("oauth2-rs", |b| {
        b.iter(|| {
            let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
            let (url, state) = client
                .authorize_url(oauth2::CsrfToken::new_random)
                .add_scope(oauth2::Scope::new("users:read".into()))
                .add_scope(oauth2::Scope::new("expenses:read".into()))
                .set_pkce_challenge(challenge)
                .url();
            black_box((url, state, verifier))
        })
    });
    group.finish();
}

criterion_group!(authorize_benches, benches);
criterion_main!(authorize_benches);
