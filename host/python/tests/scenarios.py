"""The scenario runner for `callback.json` and `lifecycle.json`, through the
package's public API (and so through its step loop), over the scenario
backends of `conftest.py`. Summaries are the language-neutral strings the
vectors expect (the same as the Rust runner in `src/callback.rs` and
`src/lifecycle.rs`)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pleo_oauth import (
    ApiActionKind, BeginOptions, CompleteError, ConnectionConfig, DisconnectError, HttpResponse, Refusal,
    RevocationKind, to_ms,
)

from conftest import Fixture, answer, strict

DEFAULT_CONFIG: dict[str, Any] = {
    "environment": "staging", "client-id": "client-123", "client-type": "confidential",
    "redirect-uri": "https://app.example/callback", "scopes": ["users:read", "export-jobs:write"],
    "issuer": None, "require-iss": False, "settings": [["ledger", "4000"]],
}
OPTIONAL = ("revocation-url", "refresh-margin-seconds", "max-backoff-seconds", "stall-after-seconds")
CONNECTION = "c1"


def config_with(changes: dict[str, Any]) -> ConnectionConfig:
    wit = {**DEFAULT_CONFIG, **{k: None for k in OPTIONAL}, **changes}
    return ConnectionConfig.from_wit(wit)


def state_of(url: str) -> str:
    (state,) = parse_qs(urlsplit(url).query)["state"]
    return state


def oauth_code(code: Any) -> str:
    """An error-code / authorization-error-code as the OAuth wire string."""
    if isinstance(code, dict):
        return code["other"]
    return code.replace("-", "_")


def case_of(wit: Any) -> str:
    return wit if isinstance(wit, str) else next(iter(wit))


def storage_kind(error: Any) -> str:
    return case_of(error)


# -- callback.json -------------------------------------------------------------

CALLBACK_FIELDS = {"name", "spec", "connection", "config", "status", "begin", "begin-twice", "advance-ms",
                   "callback", "expected-connection", "token-endpoint", "replay", "expect"}


async def complete_summary(f: Fixture, callback: str, connection: str | None) -> tuple[str, bool]:
    try:
        done = await f.oauth.authorize.complete(callback, connection)
        return "completed", done.recovered
    except CompleteError as e:
        case, payload = (e.wit, None) if isinstance(e.wit, str) else next(iter(e.wit.items()))
        if case == "rejected":
            return f"rejected:{payload['reason']}", False
        if case == "denied":
            return f"denied:{oauth_code(payload['error']['code'])}", False
        if case == "exchange-failed":
            return f"exchange-failed:{case_of(payload['failure'])}", False
        return "storage", False


async def run_callback(case: dict[str, Any], f: Fixture) -> dict[str, Any]:
    strict(case, CALLBACK_FIELDS, case["name"])
    connection = case.get("connection", CONNECTION)
    await f.oauth.connections.configure(connection, config_with(case.get("config", {})))
    if case.get("status") is not None:
        raw = json.dumps(case["status"], separators=(",", ":")).encode()
        await f.storage.put(f"status/{connection}", raw, None)
    begin = case.get("begin", {})
    strict(begin, {"extra-scopes", "return-to"}, "begin")
    options = BeginOptions(extra_scopes=begin.get("extra-scopes", []), return_to=begin.get("return-to"))
    first = await f.oauth.authorize.begin(connection, options)
    if case.get("begin-twice", False):
        await f.oauth.authorize.begin(connection, options)
    f.clock.now += case.get("advance-ms", 0)
    if case.get("token-endpoint") is not None:
        f.http.push(answer(case["token-endpoint"]))
    callback = case["callback"].replace("{state}", state_of(first.url))
    result, recovered = await complete_summary(f, callback, case.get("expected-connection"))
    replay = (await complete_summary(f, callback, None))[0] if case.get("replay", False) else None
    status = await f.oauth.connections.status(connection)
    return {
        "result": result,
        "recovered": recovered,
        "state": status.state.value,
        "reason": status.reason,
        "token-requests": len(f.http.sent),
        "replay": replay,
        "events": [e.kind for e in f.events],
    }


def expected_callback(expect: dict[str, Any]) -> dict[str, Any]:
    strict(expect, {"result", "recovered", "state", "reason", "token-requests", "replay", "events"}, "expect")
    return {"recovered": False, "reason": None, "replay": None, **expect}


# -- lifecycle.json ------------------------------------------------------------

def refused(wit: Any) -> str:
    case, payload = (wit, None) if isinstance(wit, str) else next(iter(wit.items()))
    if case == "reauthenticate":
        return f"reauthenticate:{payload}"
    if case == "wait":
        return f"wait:{payload['why']}"
    if case == "client-misconfigured":
        fault = payload["fault"]
        return "client-misconfigured:" + (fault if isinstance(fault, str) else oauth_code(fault["rejected"]))
    if case == "not-connected":
        return f"not-connected:{payload}"
    return f"storage:{storage_kind(payload)}"


def relative(at: Any, now: int) -> str:
    return "" if at is None else f"@+{max(to_ms(at) - now, 0)}"


async def connect(f: Fixture, grant: dict[str, Any]) -> None:
    strict(grant, {"access-token", "refresh-token", "expires-in"}, "connect")
    authorization = await f.oauth.authorize.begin(CONNECTION)
    body: dict[str, Any] = {"access_token": grant["access-token"], "token_type": "Bearer"}
    if grant.get("refresh-token") is not None:
        body["refresh_token"] = grant["refresh-token"]
    if grant.get("expires-in") is not None:
        body["expires_in"] = grant["expires-in"]
    f.http.push(HttpResponse(200, [("Content-Type", "application/json")], json.dumps(body).encode()))
    await f.oauth.authorize.complete(f"code=CODE-connect&state={state_of(authorization.url)}", CONNECTION)


async def status_members(f: Fixture, now: int) -> dict[str, Any]:
    s = await f.oauth.connections.status(CONNECTION)
    ms = lambda t: None if t is None else to_ms(t)  # noqa: E731
    return {
        "state": s.state.value,
        "reason": s.reason,
        "failures": s.consecutive_failures,
        "backing-off": s.next_retry_at is not None and ms(s.next_retry_at) > now,
        "refreshing": s.refreshing_until is not None,
        "missing-scopes": list(s.missing_scopes),
        "scopes": list(s.scopes),
        "access-expires-in-ms": None if s.access_expires_at is None else ms(s.access_expires_at) - now,
        "last-refresh-ago-ms": None if s.last_refresh_at is None else now - ms(s.last_refresh_at),
        "last-error": s.last_error,
        "outcome-unknown": s.refresh_outcome_unknown_since is not None,
        "failing": s.failing_since is not None,
        "fresh-token-rejections": s.fresh_token_rejections,
    }


async def run_lifecycle(case: dict[str, Any], f: Fixture) -> dict[str, Any]:
    strict(case, {"name", "spec", "config", "steps", "expect"}, case["name"])
    await f.oauth.connections.configure(CONNECTION, config_with(case.get("config", {})))
    connect_requests: set[int] = set()
    for index, step in enumerate(case["steps"]):
        now = f.clock.now
        where = f"step {index}"
        if step == "forget":
            await f.oauth.connections.forget(CONNECTION)
            continue
        if step == "retry-now":
            await f.oauth.connections.retry_now(CONNECTION)
            continue
        assert isinstance(step, dict) and len(step) == 1, f"{where}: unknown step {step!r}"
        ((kind, arg),) = step.items()
        if kind == "connect":
            before = len(f.http.sent)
            try:
                await connect(f, arg)
            except Exception as e:
                raise AssertionError(f"{where}: connect: {e!r}") from e
            connect_requests.update(range(before, len(f.http.sent)))
            continue
        if kind == "advance-ms":
            f.clock.now = now + arg
            assert f.clock.now >= 0
            continue
        if kind == "token-endpoint":
            for spec in arg:
                f.http.push(answer(spec))
            continue
        if kind == "hold-lease":
            strict(arg, {"for-ms"}, where)
            key = f"lease/{CONNECTION}"
            current = await f.storage.get(key)
            lease = json.dumps({"holder": "crashed", "until-ms": now + arg["for-ms"]}, separators=(",", ":"))
            await f.storage.put(key, lease.encode(), current.version if current else None)
            continue
        if kind == "fail-writes":
            strict(arg, {"prefix", "times"}, where)
            f.storage.fail_writes(arg["prefix"], arg["times"])
            continue
        if kind == "status":
            got = await status_members(f, now)
            for key, value in arg.items():
                assert key in got, f"{where}: unknown status member {key!r}"
                assert got[key] == value, f"{where}: status {key}: got {got[key]!r}, expected {value!r}"
            continue
        if kind == "access-token":
            try:
                got_s = "token:" + (await f.oauth.connections.access_token(CONNECTION)).token
            except Refusal as e:
                got_s = refused(e.wit)
            expected = arg
        elif kind == "report":
            strict(arg, {"token", "status", "headers", "expect"}, where)
            headers = [tuple(h) for h in arg.get("headers", [])]
            try:
                action = await f.oauth.connections.report(CONNECTION, arg["token"], arg["status"], headers)
                k = action.kind
                if k is ApiActionKind.RETRY:
                    got_s = f"retry:{action.bearer.token}"  # type: ignore[union-attr]
                elif k is ApiActionKind.INSUFFICIENT_SCOPE:
                    got_s = "insufficient-scope:" + " ".join(action.scopes)
                elif k in (ApiActionKind.RATE_LIMITED, ApiActionKind.TRANSIENT):
                    got_s = k.value + relative(action.retry_at, now)
                else:
                    got_s = k.value
            except Refusal as e:
                got_s = refused(e.wit)
            expected = arg["expect"]
        elif kind == "disconnect":
            strict(arg, {"revoke", "expect"}, where)
            try:
                revocation = await f.oauth.connections.disconnect(CONNECTION, arg["revoke"])
                got_s = revocation.kind.value
                if revocation.kind is RevocationKind.FAILED:
                    got_s += f":{revocation.detail}"
            except DisconnectError as e:
                got_s = "unknown-connection" if e.case == "unknown-connection" else f"storage:{storage_kind(e.wit['storage'])}"
            expected = arg["expect"]
        else:
            raise AssertionError(f"{where}: unknown step {kind!r}")
        assert got_s == expected, f"{where} ({kind}): got {got_s!r}, expected {expected!r}"
    requests = [
        f"{r.url} {r.body.decode('utf-8', 'replace')}" for i, r in enumerate(f.http.sent) if i not in connect_requests
    ]
    keys = sorted("flow/*" if k.startswith("flow/") else k for k in f.storage.snapshot())
    return {"requests": requests, "events": [e.kind for e in f.events], "keys": keys}
