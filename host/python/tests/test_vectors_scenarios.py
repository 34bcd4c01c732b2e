"""`callback.json` and `lifecycle.json` through the step interface."""

from __future__ import annotations

import pytest

from conftest import Fixture, load_vectors, require_steps
from scenarios import expected_callback, run_callback, run_lifecycle


async def run_file(loaded, name: str, run, expected) -> None:
    require_steps(loaded)
    suite = load_vectors(name)
    failures = []
    for case in suite["cases"]:
        fixture = Fixture(loaded)
        try:
            got = await run(case, fixture)
            want = expected(case["expect"])
            if got != want:
                diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
                failures.append(f"{case['name']}: got != expected: {diff}")
        except Exception as e:  # noqa: BLE001 - every failure is reported by name
            failures.append(f"{case['name']} [{case['spec']}]: {type(e).__name__}: {e}")
    total = len(suite["cases"])
    assert not failures, f"{len(failures)} of {total} {name} cases failed:\n" + "\n".join(failures)
    print(f"{name}: {total}/{total} agree")


async def test_callback(loaded) -> None:
    await run_file(loaded, "callback.json", run_callback, expected_callback)


def expected_lifecycle(expect):
    assert set(expect) <= {"requests", "events", "keys"}, f"unknown fields {set(expect)}"
    return {"requests": expect["requests"], "events": expect["events"], "keys": expect["keys"]}


async def test_lifecycle(loaded) -> None:
    await run_file(loaded, "lifecycle.json", run_lifecycle, expected_lifecycle)
