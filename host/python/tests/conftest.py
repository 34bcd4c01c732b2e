"""Shared fixtures: the vectors, the component, and the scenario backends
that `tests/vectors/README.md` describes (in-memory compare-and-swap
storage with `fail-writes`, a manual clock, a seeded random source, a
scripted HTTP backend, a collecting log)."""

from __future__ import annotations

import json
import os
import random as _random
from pathlib import Path
from typing import Any

import pytest

from pleo_oauth import HttpRequest, HttpResponse, MemoryStorage, PleoOAuth, TransportError, Unavailable
from pleo_oauth import _runtime

HERE = Path(__file__).resolve().parent
VECTORS = Path(os.environ.get("PLEO_OAUTH_VECTORS", HERE.parent / "../../tests/vectors")).resolve()


def load_vectors(name: str) -> dict[str, Any]:
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(f"no vector file {path} (set PLEO_OAUTH_VECTORS to the tests/vectors folder)")
    with open(path, encoding="utf-8") as f:
        suite = json.load(f)  # Python ints are exact: u64 values survive
    assert set(suite) == {"suite", "description", "cases"}, f"{name}: unknown top-level fields"
    return suite


def strict(case: dict[str, Any], allowed: set[str], where: str) -> None:
    """Unknown fields are an error (the README: reject, never skip)."""
    unknown = set(case) - allowed
    if unknown:
        raise AssertionError(f"{where}: unknown fields {sorted(unknown)}")


@pytest.fixture(scope="session")
def loaded() -> _runtime.Loaded:
    if not os.environ.get(_runtime.ENV_COMPONENT):
        pytest.fail(f"set {_runtime.ENV_COMPONENT} to the component (.wasm): `pleo-oauth component out.wasm`")
    return _runtime.load()


def require_steps(loaded: _runtime.Loaded) -> None:
    if not loaded.has_steps:
        pytest.fail(f"{loaded.path} has no pleo:oauth/steps export: a 0.3.0 component is needed")


# -- scenario backends --------------------------------------------------------

START_MS = 1_700_000_000_000


class ManualClock:
    def __init__(self, now_ms: int = START_MS) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    async def sleep_ms(self, ms: int) -> None:
        self.now += ms  # no scenario waits


class SeededRandom:
    def __init__(self, seed: int = 42) -> None:
        self._rng = _random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._rng.randbytes(n)


class ScriptedHttp:
    """Answers requests in order; a request with no answer left gets
    `transport-error.other`."""

    def __init__(self) -> None:
        self.script: list[HttpResponse | TransportError] = []
        self.sent: list[HttpRequest] = []

    def push(self, answer: HttpResponse | TransportError) -> None:
        self.script.append(answer)

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        if not self.script:
            raise TransportError("other", "no scripted response left")
        answer = self.script.pop(0)
        if isinstance(answer, TransportError):
            raise answer
        return answer


class FaultyStorage(MemoryStorage):
    """`MemoryStorage` whose next writes to a prefix can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: list[str] = []

    def fail_writes(self, prefix: str, times: int) -> None:
        self.failing.extend([prefix] * times)

    def _before_write(self, key: str) -> None:
        for i, prefix in enumerate(self.failing):
            if key.startswith(prefix):
                del self.failing[i]
                raise Unavailable("injected")

    async def put(self, key: str, value: bytes, expected_version: int | None) -> int:
        self._before_write(key)
        return await super().put(key, value, expected_version)

    async def delete(self, key: str, expected_version: int) -> None:
        self._before_write(key)
        await super().delete(key, expected_version)


class Fixture:
    def __init__(self, loaded: _runtime.Loaded) -> None:
        self.storage = FaultyStorage()
        self.http = ScriptedHttp()
        self.clock = ManualClock()
        self.events: list[Any] = []
        self.oauth = PleoOAuth(
            loaded, storage=self.storage, http=self.http, log=self.events.append,
            clock=self.clock, random=SeededRandom(42),
        )


def answer(spec: dict[str, Any]) -> HttpResponse | TransportError:
    """A vector's `input` / scripted answer: a response or a transport error."""
    strict(spec, {"response", "transport-error"}, "answer")
    assert len(spec) == 1, "exactly one of response and transport-error"
    if "transport-error" in spec:
        error = spec["transport-error"]
        if isinstance(error, dict):
            ((case, detail),) = error.items()
            return TransportError(case, detail)
        return TransportError(error)
    response = spec["response"]
    strict(response, {"status", "headers", "body"}, "response")
    return HttpResponse(response["status"], [tuple(h) for h in response.get("headers", [])], body(response.get("body")))


def body(spec: dict[str, Any] | None) -> bytes:
    if spec is None:
        return b""
    assert len(spec) == 1, f"body: exactly one of text, hex, repeat: {spec}"
    ((kind, value),) = spec.items()
    if kind == "text":
        return value.encode()
    if kind == "hex":
        return bytes.fromhex(value)
    if kind == "repeat":
        strict(value, {"text", "count"}, "repeat")
        return value["text"].encode() * value["count"]
    raise AssertionError(f"unknown body kind {kind}")


def matches(got: Any, expected: Any) -> bool:
    """`got` (explicit WIT form) equals `expected` (the vectors' JSON), where
    a record member left out of `expected` must be `None` in `got`."""
    if isinstance(expected, dict) and isinstance(got, dict):
        if set(expected) - set(got):
            return False
        return all(matches(got[k], expected[k]) if k in expected else got[k] is None for k in got)
    if isinstance(expected, list) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(matches(g, e) for g, e in zip(got, expected))
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(got, str) and isinstance(expected, str):  # a `Token` is a str
        return got == expected
    return type(got) is type(expected) and got == expected
