//! The authorisation flow (RFC 6749 §4.1, RFC 7636, RFC 9207) through the
//! component and natively: the scenarios of `tests/vectors/callback.json`,
//! and checks on what is sent, stored and logged.

use pleo_oauth::Backends;
use pleo_oauth::authorize::BeginOptions;
use pleo_oauth::connections::{ConnectionConfig, State};
use pleo_oauth::imports::storage::Storage;
use pleo_oauth::imports::storage::StorageError;
use pleo_oauth_conformance::callback::{
    self, CallbackCase, Fixture, Flow, Native, default_config, state_of, token_json,
};
use pleo_oauth_conformance::{check_all, expect_eq, load, runtime};

fn component(fixture: &Fixture) -> pleo_oauth::Instance {
    runtime()
        .instance(fixture.backends.clone())
        .expect("an instance")
}

/// Every scenario gives the expected summary natively and through the
/// component, and both leave identical storage and events.
#[test]
fn callback_vectors() {
    let suite = load::<CallbackCase>("callback.json");
    check_all(&suite, |case| {
        let native = Fixture::new();
        let native_summary = callback::run(case, &native, &mut Native(&native));
        let wasm = Fixture::new();
        let wasm_summary = callback::run(case, &wasm, &mut component(&wasm));
        expect_eq(&native_summary, &case.expect).map_err(|e| format!("native: {e}"))?;
        expect_eq(&wasm_summary, &case.expect).map_err(|e| format!("component: {e}"))?;
        expect_eq(&wasm.storage.snapshot(), &native.storage.snapshot())
            .map_err(|e| format!("storage: {e}"))?;
        expect_eq(&wasm.log.events(), &native.log.events()).map_err(|e| format!("events: {e}"))?;
        expect_eq(&wasm.http.sent(), &native.http.sent()).map_err(|e| format!("requests: {e}"))
    });
}

fn config() -> ConnectionConfig {
    serde_json::from_value(default_config()).unwrap()
}

const TOKENS: &str = r#"{"access_token":"AT-SECRET-abc","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-SECRET-def"}"#;

/// RFC 6749 §4.1.1 and RFC 7636 §4.3: the URL has every parameter; the
/// exchange (§4.1.3, RFC 7636 §4.5) sends the code, the redirect URI and
/// the verifier whose S256 challenge was in the URL, and asks the host to
/// authenticate the confidential client.
#[test]
fn rfc6749_4_1_url_and_code_exchange() {
    let fixture = Fixture::new();
    let mut instance = component(&fixture);
    Flow::configure(&mut instance, "c1", &config());
    let authorization = Flow::begin(&mut instance, "c1", &BeginOptions::default());
    let url = url::Url::parse(authorization.url.expose()).unwrap();
    assert_eq!(
        url.origin().ascii_serialization(),
        "https://auth.staging.pleo.io"
    );
    assert_eq!(url.path(), "/oauth/authorize");
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method"
        ]
    );
    let get = |name: &str| params.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("scope"), "users:read export-jobs:write");
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("state").len(), 43, "256 random bits");
    assert!(
        authorization
            .url
            .expose()
            .contains("scope=users%3Aread+export-jobs%3Awrite")
    );

    fixture.http.push(Ok(token_json(200, TOKENS)));
    let done = Flow::complete(
        &mut instance,
        &format!("code=THE-CODE&state={}", get("state")),
        Some("c1"),
    )
    .unwrap();
    assert!(!done.recovered);
    let sent = fixture.http.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, "https://auth.staging.pleo.io/oauth/token");
    assert_eq!(sent[0].client_auth.as_deref(), Some("client-123"));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&sent[0].body)
        .into_owned()
        .collect();
    let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(field("grant_type").as_deref(), Some("authorization_code"));
    assert_eq!(field("code").as_deref(), Some("THE-CODE"));
    assert_eq!(
        field("redirect_uri").as_deref(),
        Some("https://app.example/callback")
    );
    assert_eq!(
        field("client_id"),
        None,
        "a confidential client is authenticated by the host"
    );
    let verifier = field("code_verifier").unwrap();
    assert_eq!(
        instance.s256_challenge(&verifier).unwrap().unwrap(),
        get("code_challenge")
    );
    let status = Flow::status(&mut instance, "c1");
    assert_eq!(status.state, State::Connected);
    assert_eq!(
        status.access_expires_at_ms,
        Some(1_700_000_000_000 + 3_600_000)
    );
}

/// Re-authentication is non-destructive: the configuration (with the
/// user's settings) is the same before and after, and the stored tokens are
/// the new ones.
#[test]
fn reauthentication_keeps_the_configuration() {
    let fixture = Fixture::new();
    let mut instance = component(&fixture);
    Flow::configure(&mut instance, "c1", &config());
    let status = br#"{"state":"reauth-required","since-ms":1,"reason":"refresh-token-rejected"}"#;
    fixture.storage.put("status/c1", status, None).unwrap();
    let authorization = Flow::begin(&mut instance, "c1", &BeginOptions::default());
    let during = Flow::status(&mut instance, "c1");
    assert_eq!(during.state, State::Authorizing);
    assert_eq!(
        during.reason,
        Some(pleo_oauth::connections::Reason::RefreshTokenRejected)
    );
    assert!(during.authorization_expires_at_ms.is_some());
    fixture.http.push(Ok(token_json(200, TOKENS)));
    let done = Flow::complete(
        &mut instance,
        &format!("state={}&code=C", state_of(&authorization)),
        None,
    )
    .unwrap();
    assert!(done.recovered);
    assert_eq!(instance.get_config("c1").unwrap().unwrap(), Some(config()));
    let after = Flow::status(&mut instance, "c1");
    assert_eq!((after.state, after.reason), (State::Connected, None));
}

/// A storage failure while completing gives a typed error and consumes
/// nothing: the same callback then succeeds.
#[test]
fn a_storage_fault_loses_nothing() {
    let fixture = Fixture::new();
    let mut instance = component(&fixture);
    Flow::configure(&mut instance, "c1", &config());
    let authorization = Flow::begin(&mut instance, "c1", &BeginOptions::default());
    let callback = format!("code=C&state={}", state_of(&authorization));
    fixture
        .storage
        .inject_fault(StorageError::Unavailable("disk full".into()));
    let error = Flow::complete(&mut instance, &callback, None).unwrap_err();
    assert!(
        matches!(error, pleo_oauth::authorize::CompleteError::Storage(_)),
        "{error:?}"
    );
    assert!(
        fixture.http.sent().is_empty(),
        "no exchange after a storage fault"
    );
    fixture.http.push(Ok(token_json(200, TOKENS)));
    Flow::complete(&mut instance, &callback, None).unwrap();
    assert_eq!(Flow::status(&mut instance, "c1").state, State::Connected);
}

/// No token, code, verifier or state value appears in any event or in the
/// `Debug` of any result, across every scenario.
#[test]
fn no_secret_reaches_an_event() {
    let suite = load::<CallbackCase>("callback.json");
    for case in &suite.cases {
        let fixture = Fixture::new();
        let mut instance = component(&fixture);
        callback::run(case, &fixture, &mut instance);
        let mut secrets = vec![
            "AT-flow-1".to_owned(),
            "RT-flow-1".to_owned(),
            "CODE-1".to_owned(),
        ];
        for request in fixture.http.sent() {
            for (name, value) in url::form_urlencoded::parse(&request.body) {
                if name == "code_verifier" || name == "code" {
                    secrets.push(value.into_owned());
                }
            }
        }
        for (key, entry) in fixture.storage.snapshot() {
            if let Some(hash) = key.strip_prefix("flow/") {
                secrets.push(hash.to_owned());
                let value: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
                secrets.push(value["record"]["verifier"].as_str().unwrap().to_owned());
            }
        }
        let logged = format!("{:?}", fixture.log.events());
        for secret in &secrets {
            assert!(
                !logged.contains(secret.as_str()),
                "{}: an event holds a secret",
                case.name
            );
        }
    }
    // And the states themselves: begin a flow and scan.
    let fixture = Fixture::new();
    let mut instance = component(&fixture);
    Flow::configure(&mut instance, "c1", &config());
    let authorization = Flow::begin(&mut instance, "c1", &BeginOptions::default());
    let state = state_of(&authorization);
    let _ = Flow::complete(
        &mut instance,
        &format!("code=X&state={state}&state={state}"),
        None,
    );
    let logged = format!("{:?}", fixture.log.events());
    assert!(!logged.contains(&state));
    assert!(
        !format!("{authorization:?}").contains(&state),
        "Authorization's Debug redacts the URL"
    );
}

/// Unknown connections and bad options are typed errors.
#[test]
fn begin_errors_are_typed() {
    let mut instance = runtime().instance(Backends::default()).unwrap();
    let unknown = instance.begin("nobody", &BeginOptions::default()).unwrap();
    assert_eq!(
        unknown,
        Err(pleo_oauth::authorize::BeginError::UnknownConnection)
    );
    Flow::configure(&mut instance, "c1", &config());
    let bad = BeginOptions {
        extra_params: vec![("state".into(), "x".into())],
        ..Default::default()
    };
    assert!(matches!(
        instance.begin("c1", &bad).unwrap(),
        Err(pleo_oauth::authorize::BeginError::InvalidOption(_))
    ));
    let bad = ConnectionConfig {
        redirect_uri: "http://app.example/cb".into(),
        ..config()
    };
    assert!(instance.configure("c1", &bad).unwrap().is_err());
}
