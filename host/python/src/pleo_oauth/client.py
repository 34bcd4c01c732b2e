"""`PleoOAuth`: the component's lifecycle operations as asyncio coroutines.

Each lifecycle call starts a `steps.operation` and runs the step loop: the
component hands out each effect (storage, HTTP, clock, random, log) as data,
this module awaits the platform's implementation of it and passes the result
back with `next`, until the operation is done. The component's imports are
never called (they are trapping stubs).

Errors: a refusal or error of the WIT is raised as the typed exception of
`pleo_oauth.errors` carrying the WIT value. A trap poisons the instance: it
is dropped and the next call instantiates a fresh one. An exception raised
by a platform handler that is not a `StorageError`/`TransportError` ends the
operation (dropped, which the WIT allows at any point) and propagates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from datetime import datetime
from typing import Any, Callable, Protocol, Sequence

import wasmtime

from . import _runtime
from .errors import (
    BeginError, ChallengeError, CompleteError, ComponentError, ComponentTrap, ConfigureError,
    DisconnectError, Refusal, StatusError, StepProtocolError, StorageFailure, UrlError, VerifierError,
)
from .http import Http, HttpRequest, HttpResponse, TransportError
from .storage import Entry, Storage, StorageError
from .types import (
    ApiAction, Authorization, BeginOptions, Bearer, Completed, ConnectionConfig, ConnectionPage,
    ConnectionStatus, LogEvent, Revocation, UrlParams, from_ms, redact_token_set, to_ms,
)

_logger = logging.getLogger("pleo_oauth")
_LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_ms(self, ms: int) -> None: ...


class SystemClock:
    """`time.time_ns` and `asyncio.sleep`."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)


def log_to_logging(event: LogEvent) -> None:
    """The default log sink: the `pleo_oauth` logger (events carry no secret)."""
    fields = " ".join(f"{k}={v}" for k, v in event.fields)
    _logger.log(_LEVELS.get(event.level, logging.INFO), "%s connection=%s %s %s",
                event.kind, event.connection, event.message, fields)


class PleoOAuth:
    """The component with the platform's storage, HTTP, clock, random and log."""

    def __init__(
        self,
        loaded: _runtime.Loaded,
        *,
        storage: Storage,
        http: Http,
        log: Callable[[LogEvent], None] | None = None,
        clock: Clock | None = None,
        random: Callable[[int], bytes] | None = None,
    ) -> None:
        self._loaded = loaded
        self.storage = storage
        self.http = http
        self.log = log or log_to_logging
        self.clock = clock or SystemClock()
        self.random = random or secrets.token_bytes
        self._current: _runtime.Instance | None = None
        self.instances_created = 0
        self.connections = Connections(self)
        self.authorize = Authorize(self)
        self.classify = Classify(self)

    def __repr__(self) -> str:
        return f"PleoOAuth(component={str(self._loaded.path)!r})"

    @classmethod
    async def load(
        cls,
        *,
        storage: Storage,
        http: Http,
        log: Callable[[LogEvent], None] | None = None,
        clock: Clock | None = None,
        random: Callable[[int], bytes] | None = None,
        component: str | os.PathLike[str] | None = None,
        engine: wasmtime.Engine | None = None,
    ) -> "PleoOAuth":
        """Compiles (once per process and engine, in a worker thread) the
        component at `component` or `$PLEO_OAUTH_COMPONENT`."""
        loaded = await asyncio.to_thread(_runtime.load, component, engine)
        return cls(loaded, storage=storage, http=http, log=log, clock=clock, random=random)

    # -- instances ---------------------------------------------------------

    def _instance(self) -> _runtime.Instance:
        if self._current is None or self._current.poisoned:
            self._current = _runtime.Instance(self._loaded)
            self.instances_created += 1
        return self._current

    def _call(self, interface: str, name: str, *args: Any) -> Any:
        instance = self._instance()
        try:
            return instance.call(interface, name, *args)
        finally:
            if instance.poisoned and self._current is instance:
                self._current = None

    # -- the step loop -----------------------------------------------------

    async def run(self, call: Any) -> Any:
        """Runs one `steps.call` (WIT form, e.g. ``{"status": "c1"}``) to its
        end; returns the outcome's payload (a WIT `result`: ``{"ok": ...}``
        or ``{"err": ...}``)."""
        if not self._loaded.has_steps:
            raise ComponentError(f"{self._loaded.path} has no pleo:oauth/steps export (a component of 0.3.0 or later is needed)")
        instance = self._instance()
        try:
            op = instance.call("steps", "[constructor]operation", call)
            try:
                result: Any = None
                while True:
                    step = instance.call("steps", "[method]operation.next", op, result)
                    if "err" in step:
                        raise StepProtocolError(f"operation.next: {step['err']}")
                    step = step["ok"]
                    if "done" in step:
                        ((_, outcome),) = step["done"].items()
                        return outcome
                    result = await self._perform(step["effect"])
            finally:
                if not instance.poisoned:
                    try:
                        op.drop(instance.store)
                    except wasmtime.WasmtimeError:
                        instance.poisoned = True
        finally:
            if instance.poisoned and self._current is instance:
                self._current = None

    async def _perform(self, effect: Any) -> Any:
        if isinstance(effect, str):
            case, arg = effect, None
        else:
            ((case, arg),) = effect.items()
        if case == "now-ms":
            now = self.clock.now_ms()
            _check(isinstance(now, int) and not isinstance(now, bool) and now >= 0, "clock.now_ms must return an int >= 0")
            return {"now-ms": now}
        if case == "random-bytes":
            data = self.random(arg)
            _check(isinstance(data, (bytes, bytearray)) and len(data) == arg,
                   f"random must return exactly {arg} bytes")
            return {"random-bytes": bytes(data)}
        if case == "sleep-ms":
            await self.clock.sleep_ms(arg)
            return "sleep-ms"
        if case == "emit":
            self.log(LogEvent.from_wit(arg))
            return "emit"
        if case == "http-send":
            return {"http-send": await self._send(arg)}
        return {case: await self._storage(case, arg)}

    async def _storage(self, case: str, arg: Any) -> Any:
        try:
            if case == "storage-get":
                entry = await self.storage.get(arg)
                _check(entry is None or isinstance(entry, Entry), "storage.get must return an Entry or None")
                return {"ok": None if entry is None else {"value": entry.value, "version": entry.version}}
            if case == "storage-put":
                version = await self.storage.put(arg["key"], arg["value"], arg["expected-version"])
                _check(isinstance(version, int) and not isinstance(version, bool), "storage.put must return the new version (int)")
                return {"ok": version}
            if case == "storage-delete":
                await self.storage.delete(arg["key"], arg["expected-version"])
                return {"ok": None}
            if case == "storage-keys":
                keys = await self.storage.keys(arg["prefix"], arg["after"], arg["limit"])
                _check(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "storage.keys must return a list of str")
                return {"ok": keys}
        except StorageError as e:
            return {"err": e.to_wit()}
        raise ComponentError(f"unknown effect {case!r}")

    async def _send(self, wit: dict[str, Any]) -> Any:
        client_auth = wit["client-auth"]
        request = HttpRequest(
            method=wit["method"],
            url=wit["url"],
            headers=[(h["name"], h["value"]) for h in wit["headers"]],
            body=wit["body"],
            timeout_ms=wit["timeout-ms"],
            client_auth=client_auth["client-id"] if client_auth else None,
        )
        try:
            response = await self.http.send(request)
        except TransportError as e:
            return {"err": e.to_wit()}
        _check(isinstance(response, HttpResponse), "http.send must return an HttpResponse")
        return {"ok": {
            "status": response.status,
            "headers": [{"name": n, "value": v} for n, v in response.headers],
            "body": response.body,
        }}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TypeError(message)


def _ok(outcome: Any, error: type, operation: str) -> Any:
    if "err" in outcome:
        raise error(operation, outcome["err"])
    return outcome["ok"]


def _connection_id(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a connection id is a str, got {type(value).__name__}")
    return value


class Connections:
    """`connections`: configuration, the token gate, status, disconnect."""

    def __init__(self, oauth: PleoOAuth) -> None:
        self._o = oauth

    async def configure(self, connection: str, config: ConnectionConfig) -> None:
        if not isinstance(config, ConnectionConfig):
            raise TypeError("config must be a ConnectionConfig")
        args = {"connection": _connection_id(connection), "config": config.to_wit()}
        _ok(await self._o.run({"configure": args}), ConfigureError, "configure")

    async def get_config(self, connection: str) -> ConnectionConfig | None:
        wit = _ok(await self._o.run({"get-config": _connection_id(connection)}), StorageFailure, "get-config")
        return None if wit is None else ConnectionConfig.from_wit(wit)

    async def status(self, connection: str) -> ConnectionStatus:
        wit = _ok(await self._o.run({"status": _connection_id(connection)}), StatusError, "status")
        return ConnectionStatus.from_wit(wit)

    async def access_token(self, connection: str) -> Bearer:
        """A usable access token, refreshed if due; raises `Refusal`."""
        wit = _ok(await self._o.run({"access-token": _connection_id(connection)}), Refusal, "access-token")
        return Bearer.from_wit(wit)

    async def report(self, connection: str, access_token: str, status: int,
                     headers: Sequence[tuple[str, str]] = ()) -> ApiAction:
        """What to do after the API answered `status` to `access_token`."""
        if isinstance(headers, dict):
            headers = list(headers.items())
        args = {
            "connection": _connection_id(connection),
            "access-token": access_token,
            "status": status,
            "headers": [{"name": n, "value": v} for n, v in headers],
        }
        return ApiAction.from_wit(_ok(await self._o.run({"report": args}), Refusal, "report"))

    async def disconnect(self, connection: str, revoke: bool = False) -> Revocation:
        args = {"connection": _connection_id(connection), "revoke": revoke}
        return Revocation.from_wit(_ok(await self._o.run({"disconnect": args}), DisconnectError, "disconnect"))

    async def retry_now(self, connection: str) -> None:
        _ok(await self._o.run({"retry-now": _connection_id(connection)}), StatusError, "retry-now")

    async def forget(self, connection: str) -> None:
        _ok(await self._o.run({"forget": _connection_id(connection)}), StorageFailure, "forget")

    async def list(self, after: str | None = None, limit: int = 100) -> ConnectionPage:
        wit = _ok(await self._o.run({"list": {"after": after, "limit": limit}}), StorageFailure, "list")
        return ConnectionPage.from_wit(wit)


class Authorize:
    """`authorize`: begin/complete (step loop) and the pure PKCE/URL helpers."""

    def __init__(self, oauth: PleoOAuth) -> None:
        self._o = oauth

    async def begin(self, connection: str, options: BeginOptions | None = None) -> Authorization:
        options = options or BeginOptions()
        if not isinstance(options, BeginOptions):
            raise TypeError("options must be a BeginOptions")
        args = {"connection": _connection_id(connection), "options": options.to_wit()}
        return Authorization.from_wit(_ok(await self._o.run({"begin": args}), BeginError, "begin"))

    async def complete(self, callback: str, connection: str | None = None) -> Completed:
        """`callback`: the redirect's query string or the whole URL."""
        args = {"callback": callback, "connection": connection}
        return Completed.from_wit(_ok(await self._o.run({"complete": args}), CompleteError, "complete"))

    def s256_challenge(self, verifier: str) -> str:
        return _ok(self._o._call("authorize", "s256-challenge", verifier), VerifierError, "s256-challenge")

    def build_url(self, params: UrlParams) -> str:
        if not isinstance(params, UrlParams):
            raise TypeError("params must be a UrlParams")
        return _ok(self._o._call("authorize", "build-url", params.to_wit()), UrlError, "build-url")


def _response_wit(response: HttpResponse | TransportError, head: bool) -> Any:
    if isinstance(response, TransportError):
        return {"err": response.to_wit()}
    if not isinstance(response, HttpResponse):
        raise TypeError("response must be an HttpResponse or a TransportError")
    wit: dict[str, Any] = {"status": response.status, "headers": [{"name": n, "value": v} for n, v in response.headers]}
    if not head:
        wit["body"] = response.body
    elif response.body:
        raise ValueError("an API response head has no body")
    return {"ok": wit}


class Classify:
    """`classify`: the pure verdicts. Results are WIT values in explicit
    form (the vectors' JSON: records as dicts, variants as a case name or
    ``{case: payload}``), except that the tokens of a `token_response`
    success are `Token`s, strings whose `repr` is redacted; `retry_after`
    gives an aware `datetime`."""

    def __init__(self, oauth: PleoOAuth) -> None:
        self._o = oauth

    def token_response(self, grant: str, response: HttpResponse | TransportError, now_ms: int) -> Any:
        verdict = self._o._call("classify", "token-response", grant, _response_wit(response, False), now_ms)
        return redact_token_set(verdict)

    def api_response(self, response: HttpResponse | TransportError, attempt: str, now_ms: int) -> Any:
        return self._o._call("classify", "api-response", _response_wit(response, True), attempt, now_ms)

    def www_authenticate(self, values: Sequence[str]) -> list[Any]:
        return _ok(self._o._call("classify", "www-authenticate", list(values)), ChallengeError, "www-authenticate")

    def retry_after_ms(self, value: str, now_ms: int) -> int | None:
        return self._o._call("classify", "retry-after", value, now_ms)

    def retry_after(self, value: str, now: datetime) -> datetime | None:
        """The `Retry-After` time, or None when the value is not valid."""
        return from_ms(self.retry_after_ms(value, to_ms(now)))
