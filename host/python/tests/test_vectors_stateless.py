"""The stateless vector files through the component's pure exports."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from pleo_oauth import ChallengeError, HttpResponse, PleoOAuth, UrlError, UrlParams, VerifierError
from pleo_oauth.storage import MemoryStorage

from conftest import answer, load_vectors, matches, strict

COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def oauth(loaded) -> PleoOAuth:
    class NoHttp:
        async def send(self, request):  # pragma: no cover - pure calls do no I/O
            raise AssertionError("pure functions do no I/O")

    return PleoOAuth(loaded, storage=MemoryStorage(), http=NoHttp())


def run_suite(name: str, fields: set[str], check: Callable[[dict[str, Any]], Any]) -> int:
    suite = load_vectors(name)
    failures = []
    for case in suite["cases"]:
        try:
            strict(case, fields | {"name", "spec"}, case.get("name", "?"))
            check(case)
        except AssertionError as e:
            failures.append(f"{case['name']} [{case['spec']}]: {e}")
    total = len(suite["cases"])
    assert not failures, f"{len(failures)} of {total} {name} cases failed:\n" + "\n".join(failures)
    COUNTS[name] = total
    print(f"{name}: {total}/{total} agree")
    return total


def expect(got: Any, expected: Any) -> None:
    assert matches(got, expected), f"expected {expected!r}, got {got!r}"


def test_token_response(oauth: PleoOAuth) -> None:
    def check(case: dict[str, Any]) -> None:
        got = oauth.classify.token_response(case["grant"], answer(case["input"]), case["now-ms"])
        expect(got, case["expect"])

    assert run_suite("token-response.json", {"grant", "now-ms", "input", "expect"}, check) > 0


def test_a_printed_token_set_verdict_shows_no_token(oauth: PleoOAuth) -> None:
    """Tokens are credentials (RFC 6750 §5.3, RFC 6749 §10.4): a verdict that is
    printed or logged shows neither token; the values are the tokens as sent."""
    body = b'{"access_token":"AT-not-for-logs","token_type":"Bearer","refresh_token":"RT-not-for-logs"}'
    verdict = oauth.classify.token_response("refresh-token", HttpResponse(200, [], body), 0)
    tokens = verdict["success"]
    assert tokens["access-token"] == "AT-not-for-logs" and tokens["refresh-token"] == "RT-not-for-logs"
    assert f"Bearer {tokens['access-token']}" == "Bearer AT-not-for-logs"
    assert json.loads(json.dumps(verdict))["success"]["refresh-token"] == "RT-not-for-logs"
    for shown in (repr(verdict), str(verdict), "%s" % verdict, repr(tokens["access-token"])):
        assert "not-for-logs" not in shown and "[redacted]" in shown, shown


def test_api_response(oauth: PleoOAuth) -> None:
    def check(case: dict[str, Any]) -> None:
        assert "body" not in case["input"].get("response", {}), "API cases have no body"
        got = oauth.classify.api_response(answer(case["input"]), case["attempt"], case["now-ms"])
        expect(got, case["expect"])

    assert run_suite("api-response.json", {"attempt", "now-ms", "input", "expect"}, check) > 0


def test_www_authenticate(oauth: PleoOAuth) -> None:
    def check(case: dict[str, Any]) -> None:
        try:
            got: Any = {"ok": oauth.classify.www_authenticate(case["values"])}
        except ChallengeError as e:
            got = {"err": e.wit}
        expect(got, case["expect"])

    assert run_suite("www-authenticate.json", {"values", "expect"}, check) > 0


def test_retry_after(oauth: PleoOAuth) -> None:
    def check(case: dict[str, Any]) -> None:
        expect(oauth.classify.retry_after_ms(case["value"], case["now-ms"]), case["expect"])

    assert run_suite("retry-after.json", {"value", "now-ms", "expect"}, check) > 0


def test_authorize(oauth: PleoOAuth) -> None:
    def check(case: dict[str, Any]) -> None:
        kinds = [k for k in ("s256-challenge", "build-url") if k in case]
        assert len(kinds) == 1, "exactly one of s256-challenge and build-url"
        if kinds[0] == "s256-challenge":
            spec = case["s256-challenge"]
            strict(spec, {"verifier", "expect"}, "s256-challenge")
            try:
                got: Any = {"ok": oauth.authorize.s256_challenge(spec["verifier"])}
            except VerifierError as e:
                got = {"err": e.wit}
        else:
            spec = case["build-url"]
            strict(spec, {"params", "expect"}, "build-url")
            p = spec["params"]
            strict(p, {"authorize-url", "client-id", "redirect-uri", "scopes", "state", "code-challenge", "extra-params"}, "params")
            params = UrlParams(
                authorize_url=p["authorize-url"], client_id=p["client-id"], redirect_uri=p["redirect-uri"],
                scopes=p["scopes"], state=p["state"], code_challenge=p["code-challenge"],
                extra_params=[tuple(x) for x in p.get("extra-params", [])],
            )
            try:
                got = {"ok": oauth.authorize.build_url(params)}
            except UrlError as e:
                got = {"err": e.wit}
        expect(got, spec["expect"])

    assert run_suite("authorize.json", {"s256-challenge", "build-url"}, check) > 0
