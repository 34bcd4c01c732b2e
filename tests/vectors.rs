//! Every vector in `tests/vectors/`, run natively against the core and
//! through the component in wasmtime: both must give the expected verdict.
//! The scenarios of `callback.json` and `lifecycle.json` run a third way,
//! through the component's `steps` export, on an instance whose imports
//! fail the test if called (`tests/authorize_flow.rs` and
//! `tests/lifecycle.rs` run the other two ways).

use pleo_oauth::Backends;
use pleo_oauth::steps::{Call, Effect, EffectResult, Outcome, Step, StepError};
use pleo_oauth_conformance::callback::{self, CallbackCase, Fixture, Native, Stepped};
use pleo_oauth_conformance::lifecycle::{self, LifecycleCase};
use pleo_oauth_conformance::*;
use pleo_oauth_core::{authorize, classify};

fn instance() -> pleo_oauth::Instance {
    runtime()
        .instance(Backends::default())
        .expect("an instance")
}

/// Native and component verdicts must both equal the expected one.
fn both<T: PartialEq + std::fmt::Debug>(
    native: T,
    component: T,
    expected: &T,
) -> Result<(), String> {
    expect_eq(&native, expected).map_err(|e| format!("native: {e}"))?;
    expect_eq(&component, expected).map_err(|e| format!("component: {e}"))
}

#[test]
fn token_response_vectors() {
    let mut instance = instance();
    let suite = load::<TokenCase>(TOKEN_RESPONSE);
    check_all(&suite, |case| {
        let response = case.response();
        let native = classify::token_response(case.grant, response.as_ref(), case.now_ms);
        let component = instance
            .token_response(case.grant, response.as_ref(), case.now_ms)
            .map_err(|e| e.to_string())?;
        both(native, component, &case.expect)
    });
}

#[test]
fn api_response_vectors() {
    let mut instance = instance();
    let suite = load::<ApiCase>(API_RESPONSE);
    check_all(&suite, |case| {
        let response = case.response();
        let native = classify::api_response(response.as_ref(), case.attempt, case.now_ms);
        let component = instance
            .api_response(response.as_ref(), case.attempt, case.now_ms)
            .map_err(|e| e.to_string())?;
        both(native, component, &case.expect)
    });
}

#[test]
fn www_authenticate_vectors() {
    let mut instance = instance();
    let suite = load::<ChallengeCase>(WWW_AUTHENTICATE);
    check_all(&suite, |case| {
        let native = classify::www_authenticate(&case.values).into();
        let component = instance
            .www_authenticate(&case.values)
            .map_err(|e| e.to_string())?
            .into();
        both(native, component, &case.expect)
    });
}

#[test]
fn retry_after_vectors() {
    let mut instance = instance();
    let suite = load::<RetryAfterCase>(RETRY_AFTER);
    check_all(&suite, |case| {
        let native = classify::retry_after(&case.value, case.now_ms);
        let component = instance
            .retry_after(&case.value, case.now_ms)
            .map_err(|e| e.to_string())?;
        both(native, component, &case.expect)
    });
}

#[test]
fn authorize_vectors() {
    let mut instance = instance();
    let suite = load::<AuthorizeCase>(AUTHORIZE);
    check_all(&suite, |case| match case.input() {
        AuthorizeInput::S256Challenge(input) => {
            let native = authorize::Verifier::parse(&input.verifier)
                .map(|v| v.s256_challenge())
                .into();
            let component = instance
                .s256_challenge(&input.verifier)
                .map_err(|e| e.to_string())?
                .into();
            both(native, component, &input.expect)
        }
        AuthorizeInput::BuildUrl(input) => {
            let params = input.params.params();
            let native = authorize::url::build(&params).into();
            let component = instance
                .build_url(&params)
                .map_err(|e| e.to_string())?
                .into();
            both(native, component, &input.expect)?;
            // The same URL, or the same error, from a template made once.
            let native = authorize::UrlTemplate::new(
                &params.authorize_url,
                &params.client_id,
                &params.redirect_uri,
                &params.scopes,
            )
            .and_then(|t| t.url(&params.state, &params.code_challenge, &params.extra_params))
            .into();
            let component = template_url(&mut instance, &params)
                .map_err(|e| e.to_string())?
                .into();
            both(native, component, &input.expect).map_err(|e| format!("url-template: {e}"))
        }
    });
}

/// `authorize.url-template` through the component: made, used twice (the
/// second URL must equal the first), given back.
fn template_url(
    instance: &mut pleo_oauth::Instance,
    params: &authorize::UrlParams,
) -> Result<Result<pleo_oauth::secret::Secret, authorize::UrlError>, pleo_oauth::GuestError> {
    let mut template = match instance.url_template(
        &params.authorize_url,
        &params.client_id,
        &params.redirect_uri,
        &params.scopes,
    )? {
        Ok(template) => template,
        Err(error) => return Ok(Err(error)),
    };
    let url = |instance: &mut pleo_oauth::Instance, template: &mut _| {
        instance.template_url(
            template,
            &params.state,
            &params.code_challenge,
            &params.extra_params,
        )
    };
    let first = url(instance, &mut template)?;
    assert_eq!(
        url(instance, &mut template)?,
        first,
        "a template is reusable"
    );
    instance.drop_url_template(template)?;
    Ok(first)
}

/// The suites together hold at least 120 cases, each naming its rule, with
/// unique names.
#[test]
fn vectors_are_many_named_and_cited() {
    let mut names = std::collections::BTreeSet::new();
    let mut count = 0;
    let mut visit = |name: &str, spec: &str| {
        assert!(
            !spec.trim().is_empty(),
            "{name}: every case cites its RFC section or Pleo rule"
        );
        assert!(
            names.insert(name.to_owned()),
            "{name}: case names are unique"
        );
        count += 1;
    };
    load::<TokenCase>(TOKEN_RESPONSE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<ApiCase>(API_RESPONSE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<ChallengeCase>(WWW_AUTHENTICATE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<RetryAfterCase>(RETRY_AFTER)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    load::<AuthorizeCase>(AUTHORIZE)
        .cases
        .iter()
        .for_each(|c| visit(c.name(), c.spec()));
    assert!(count >= 120, "only {count} vector cases");
}

/// An instance whose imports fail the test when called, driven through
/// `steps` with the fixture's backends.
fn stepped() -> pleo_oauth::Instance {
    runtime()
        .instance(callback::trapping_backends())
        .expect("an instance")
}

/// Every `callback.json` scenario through `steps` gives the expected
/// summary, and the same storage, events and requests as the core natively.
#[test]
fn callback_vectors_through_steps() {
    let suite = load::<CallbackCase>("callback.json");
    check_all(&suite, |case| {
        let native = Fixture::new();
        let native_summary = callback::run(case, &native, &mut Native(&native));
        let steps = Fixture::new();
        let mut instance = stepped();
        let mut flow = Stepped {
            instance: &mut instance,
            backends: steps.backends.clone(),
        };
        let steps_summary = callback::run(case, &steps, &mut flow);
        expect_eq(&steps_summary, &case.expect).map_err(|e| format!("steps: {e}"))?;
        expect_eq(&native_summary, &case.expect).map_err(|e| format!("native: {e}"))?;
        expect_eq(&steps.storage.snapshot(), &native.storage.snapshot())
            .map_err(|e| format!("storage: {e}"))?;
        expect_eq(&steps.log.events(), &native.log.events()).map_err(|e| format!("events: {e}"))?;
        expect_eq(&steps.http.sent(), &native.http.sent()).map_err(|e| format!("requests: {e}"))
    });
}

/// Every `lifecycle.json` scenario through `steps`: the expected outcome
/// of every step, and the same storage and events as the core natively.
#[test]
fn lifecycle_vectors_through_steps() {
    let suite = load::<LifecycleCase>("lifecycle.json");
    let count = check_all(&suite, |case| {
        let native = Fixture::new();
        let native_final = lifecycle::run(case, &native, &mut Native(&native))
            .map_err(|e| format!("native: {e}"))?;
        let steps = Fixture::new();
        let mut instance = stepped();
        let mut flow = Stepped {
            instance: &mut instance,
            backends: steps.backends.clone(),
        };
        let steps_final =
            lifecycle::run(case, &steps, &mut flow).map_err(|e| format!("steps: {e}"))?;
        expect_eq(&steps_final, &case.expect).map_err(|e| format!("steps: {e}"))?;
        expect_eq(&native_final, &case.expect).map_err(|e| format!("native: {e}"))?;
        expect_eq(&steps.storage.snapshot(), &native.storage.snapshot())
            .map_err(|e| format!("storage: {e}"))?;
        expect_eq(&steps.log.events(), &native.log.events()).map_err(|e| format!("events: {e}"))
    });
    assert!(count >= 25, "{count} scenarios");
}

/// A host on the steps path never has an import called: a whole connect
/// and a refresh with rotation, on an instance whose every import fails
/// the test, with each effect performed by the driver.
#[test]
fn the_steps_path_calls_no_import() {
    let fixture = Fixture::new();
    let mut instance = stepped();
    let mut flow = Stepped {
        instance: &mut instance,
        backends: fixture.backends.clone(),
    };
    lifecycle::connected(&fixture, &mut flow);
    fixture.clock.advance(3_600_000);
    fixture.http.push(Ok(callback::token_json(
        200,
        r#"{"access_token":"AT-2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}"#,
    )));
    let bearer = match flow.run(Call::AccessToken(lifecycle::CONNECTION.into())) {
        Outcome::AccessToken(result) => result.expect("refreshed"),
        other => panic!("{other:?}"),
    };
    assert_eq!(bearer.token.expose(), "AT-2");
    let kinds: Vec<_> = fixture.log.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"tokens-rotated".to_owned()), "{kinds:?}");
    assert_eq!(fixture.http.sent().len(), 2, "the exchange and the refresh");
}

/// The loop's rules, through the component: a result of another case (or
/// none) leaves the same effect outstanding; a result before the first
/// step, or anything after the outcome, is `not-waiting`; an operation
/// dropped half-way is gone, and the instance runs others.
#[test]
fn the_loop_rules_hold_through_the_component() {
    let fixture = Fixture::new();
    let mut instance = stepped();
    let backends = fixture.backends.clone();
    let operation = instance
        .start(Call::GetConfig("c1".into()))
        .expect("no trap");
    assert_eq!(
        instance
            .next(&operation, Some(EffectResult::NowMs(1)))
            .unwrap(),
        Err(StepError::NotWaiting)
    );
    let first = instance.next(&operation, None).unwrap();
    assert_eq!(
        first,
        Ok(Step::Effect(Effect::StorageGet("config/c1".into())))
    );
    for wrong in [
        None,
        Some(EffectResult::Emit),
        Some(EffectResult::StoragePut(Ok(1))),
        Some(EffectResult::HttpSend(Err(
            pleo_oauth::types::TransportError::Timeout,
        ))),
    ] {
        assert_eq!(
            instance.next(&operation, wrong).unwrap(),
            Err(StepError::MismatchedResult)
        );
    }
    let answer = pleo_oauth::steps::perform(&backends, Effect::StorageGet("config/c1".into()))
        .expect("performed");
    assert_eq!(
        instance.next(&operation, Some(answer)).unwrap(),
        Ok(Step::Done(Outcome::GetConfig(Ok(None))))
    );
    assert_eq!(
        instance.next(&operation, None).unwrap(),
        Err(StepError::NotWaiting)
    );
    assert_eq!(
        instance
            .next(&operation, Some(EffectResult::StorageGet(Ok(None))))
            .unwrap(),
        Err(StepError::NotWaiting)
    );
    instance.finish(operation).expect("dropped");
    // Dropped mid-run: the instance goes on with another operation.
    let abandoned = instance
        .start(Call::AccessToken("c1".into()))
        .expect("no trap");
    assert_eq!(
        instance.next(&abandoned, None).unwrap(),
        Ok(Step::Effect(Effect::NowMs))
    );
    instance.finish(abandoned).expect("dropped");
    let mut flow = Stepped {
        instance: &mut instance,
        backends,
    };
    assert!(matches!(
        flow.run(Call::Forget("c1".into())),
        Outcome::Forget(Ok(()))
    ));
}
