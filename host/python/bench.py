"""Times a few calls through the component with wasmtime-py (median of many).

    PLEO_OAUTH_COMPONENT=pleo-oauth.wasm python bench.py [--calls N]

Rows: one pure classify call; the PKCE + state + URL step (verifier and
state from `secrets`, `s256-challenge`, `build-url`); and, when the component
has the step interface, `authorize.begin` and the token gate's hot path
(`access-token` of a fresh token) through the asyncio step loop over
`MemoryStorage`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from pleo_oauth import (  # noqa: E402
    ConnectionConfig, HttpRequest, HttpResponse, MemoryStorage, PleoOAuth, UrlParams,
)
from pleo_oauth import _runtime  # noqa: E402


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def time_sync(fn, calls: int) -> list[int]:
    for _ in range(min(50, calls)):
        fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return out


async def time_async(fn, calls: int) -> list[int]:
    for _ in range(min(20, calls)):
        await fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        await fn()
        out.append(time.perf_counter_ns() - t)
    return out


class OneToken:
    async def send(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [("Content-Type", "application/json")],
                            b'{"access_token":"AT-bench","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-bench"}')


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls

    t = time.perf_counter_ns()
    loaded = _runtime.load()
    compile_ms = (time.perf_counter_ns() - t) / 1e6
    oauth = PleoOAuth(loaded, storage=MemoryStorage(), http=OneToken(), log=lambda e: None)
    t = time.perf_counter_ns()
    oauth._instance()
    instantiate_ms = (time.perf_counter_ns() - t) / 1e6

    rows: list[tuple[str, list[int]]] = []
    response = HttpResponse(200, [("Content-Type", "application/json")],
                            b'{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-2"}')
    rows.append(("classify.token-response (200, a token set)",
                 time_sync(lambda: oauth.classify.token_response("refresh-token", response, 1_700_000_000_000), calls)))

    def pkce_state_url() -> str:
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(32)
        challenge = oauth.authorize.s256_challenge(verifier)
        return oauth.authorize.build_url(UrlParams(
            "https://auth.example/oauth/authorize", "client-123", "https://app.example/callback",
            ["users:read", "export-jobs:write"], state, challenge))

    rows.append(("PKCE + state + URL (s256-challenge, build-url)", time_sync(pkce_state_url, calls)))

    if loaded.has_steps:
        config = ConnectionConfig("client-123", "https://app.example/callback", ["users:read"], environment="staging")
        await oauth.connections.configure("bench", config)
        step_calls = max(calls // 4, 100)
        rows.append(("authorize.begin, step loop, memory storage",
                     await time_async(lambda: oauth.authorize.begin("bench"), step_calls)))
        auth = await oauth.authorize.begin("bench")
        state = auth.url.split("state=")[1].split("&")[0]
        await oauth.authorize.complete(f"code=CODE&state={state}", "bench")
        rows.append(("connections.access-token (fresh token), step loop",
                     await time_async(lambda: oauth.connections.access_token("bench"), step_calls)))

    print(f"pleo-oauth component {loaded.path.name} ({os.path.getsize(loaded.path):,} bytes), "
          f"wasmtime-py {_version('wasmtime')}, Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"compile {compile_ms:.0f} ms, instantiate {instantiate_ms:.1f} ms")
    print()
    print("| call | calls | median | p90 |")
    print("|---|---:|---:|---:|")
    for name, samples in rows:
        p90 = statistics.quantiles(samples, n=10)[-1] / 1000
        print(f"| {name} | {len(samples)} | {median_us(samples):.1f} µs | {p90:.1f} µs |")


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


if __name__ == "__main__":
    asyncio.run(main())
