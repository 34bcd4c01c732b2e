//! Properties of PKCE (RFC 7636) and the authorisation URL (RFC 6749
//! §4.1.1), checked natively against the core.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pleo_oauth::imports::random::{OsRandom, Random};
use pleo_oauth_core::authorize::{Verifier, VerifierError, url};
use pleo_oauth_core::secret::Secret;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// RFC 7636 §4.1: `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~".contains(c)
}

const UNRESERVED: &str = "[A-Za-z0-9._~-]";

/// A string of 43 to 128 characters with at least one that is not
/// unreserved: unreserved characters with one other character inserted.
fn bad_verifier() -> impl Strategy<Value = String> {
    (
        proptest::string::string_regex(&format!("{UNRESERVED}{{42,127}}")).unwrap(),
        // Half ASCII (`+`, `/`, `=`, space, controls, ...), half any char.
        prop_oneof![(0u8..0x80).prop_map(char::from), any::<char>()]
            .prop_filter("not unreserved", |c| !unreserved(*c)),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(good, bad, at)| {
            let mut chars: Vec<char> = good.chars().collect();
            chars.insert(at.index(chars.len() + 1), bad);
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// (a) 32 random bytes give 43 unreserved characters, a valid verifier.
    #[test]
    fn random_verifier_is_43_unreserved(bytes in any::<[u8; 32]>()) {
        let verifier = Verifier::from_random(&bytes);
        let text = verifier.secret().expose();
        prop_assert_eq!(text.chars().count(), 43);
        prop_assert!(text.chars().all(unreserved), "{text}");
        prop_assert_eq!(Verifier::parse(text), Ok(verifier.clone()));
    }

    /// (b) S256 is BASE64URL(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
    #[test]
    fn s256_matches_independent_computation(
        text in proptest::string::string_regex(&format!("{UNRESERVED}{{43,128}}")).unwrap(),
    ) {
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()));
        let verifier = Verifier::parse(&text).expect("a valid verifier");
        prop_assert_eq!(verifier.s256_challenge(), expected);
    }

    /// (b) The same for verifiers made from random bytes.
    #[test]
    fn s256_of_random_verifier_matches(bytes in any::<[u8; 32]>()) {
        let text = URL_SAFE_NO_PAD.encode(bytes);
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()));
        prop_assert_eq!(Verifier::from_random(&bytes).s256_challenge(), expected);
    }

    /// (c) Every 43 to 128 unreserved characters is a verifier.
    #[test]
    fn unreserved_43_to_128_is_accepted(
        text in proptest::string::string_regex(&format!("{UNRESERVED}{{43,128}}")).unwrap(),
    ) {
        let verifier = Verifier::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e:?}")))?;
        prop_assert_eq!(verifier.secret().expose(), text.as_str());
    }

    /// (c) One character outside the unreserved set is refused; an ASCII one
    /// as a `character` error. (A non-ASCII one may be reported as `length`:
    /// the core counts bytes, see the report.)
    #[test]
    fn another_character_is_rejected(text in bad_verifier()) {
        let result = Verifier::parse(&text);
        prop_assert!(result.is_err(), "{text:?} accepted");
        if text.is_ascii() {
            prop_assert_eq!(result, Err(VerifierError::Character), "{:?}", text);
        }
    }

    /// (c) Any string at all: accepted exactly when it is 43 to 128
    /// unreserved characters.
    #[test]
    fn any_string_accepted_iff_rfc7636(text in any::<String>()) {
        let valid = (43..=128).contains(&text.chars().count()) && text.chars().all(unreserved);
        prop_assert_eq!(Verifier::parse(&text).is_ok(), valid, "{:?}", text);
    }

    /// (d) A URL built from valid parameters parses back to exactly the
    /// endpoint's own query, then the parameters given, in order.
    #[test]
    fn url_round_trips(
        endpoint in (
            prop::sample::select(vec![
                "https://auth.pleo.io/oauth/authorize",
                "https://auth.staging.pleo.io/oauth/authorize",
                "http://localhost:8080/authorize",
                "http://127.0.0.1/authorize",
                "http://[::1]:9000/a/b",
            ]),
            prop::option::of("[a-z]{1,8}=[a-z0-9]{0,8}"),
        ),
        client_id in "[!-~]{1,64}",
        redirect_uri in "https://app\\.example/[a-z0-9/]{0,16}(\\?[a-z0-9=&+%]{0,16})?",
        scopes in prop::collection::vec("[A-Za-z0-9_.-]{1,10}:[A-Za-z0-9_.-]{1,10}", 1..5),
        state in "[A-Za-z0-9_-]{22,64}",
        code_challenge in "[A-Za-z0-9_-]{43}",
        extra in prop::sample::subsequence(url::ALLOWED_EXTRA_PARAMS.to_vec(), 0..=4)
            .prop_shuffle()
            .prop_flat_map(|names| {
                let n = names.len();
                (Just(names), prop::collection::vec("\\PC{1,40}", n))
            }),
    ) {
        let (endpoint, endpoint_query) = endpoint;
        let authorize_url = match &endpoint_query {
            Some(query) => format!("{endpoint}?{query}"),
            None => endpoint.to_owned(),
        };
        let extra_params: Vec<(String, String)> =
            extra.0.iter().map(|n| n.to_string()).zip(extra.1).collect();
        let params = url::UrlParams {
            authorize_url: authorize_url.clone(),
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            scopes: scopes.clone(),
            state: Secret::new(state.clone()),
            code_challenge: code_challenge.clone(),
            extra_params: extra_params.clone(),
        };
        let built = url::build(&params).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let parsed = ::url::Url::parse(built.expose()).expect("the URL parses");
        let base = ::url::Url::parse(&authorize_url).unwrap();
        prop_assert_eq!(parsed.scheme(), base.scheme());
        prop_assert_eq!(parsed.host_str(), base.host_str());
        prop_assert_eq!(parsed.port(), base.port());
        prop_assert_eq!(parsed.path(), base.path());
        prop_assert_eq!(parsed.fragment(), None);

        let mut expected: Vec<(String, String)> =
            base.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        for (name, value) in [
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", &scopes.join(" ")),
            ("state", &state),
            ("code_challenge", &code_challenge),
            ("code_challenge_method", "S256"),
        ] {
            expected.push((name.to_owned(), value.to_owned()));
        }
        expected.extend(extra_params);
        let got: Vec<(String, String)> =
            parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        prop_assert_eq!(got, expected);
    }
}

/// (e) 100,000 states drawn as the core draws them (32 bytes from the
/// host's OS random source, base64url) are 43 characters and distinct.
#[test]
fn states_are_distinct() {
    const STATES: usize = 100_000;
    let mut seen = HashSet::with_capacity(STATES);
    let mut bytes = [0u8; pleo_oauth_core::authorize::STATE_BYTES];
    for _ in 0..STATES {
        OsRandom.fill(&mut bytes);
        let state = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(state.len(), 43, "{state}");
        assert!(seen.insert(state), "a state repeated");
    }
}
