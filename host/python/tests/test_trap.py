"""A trap poisons the instance: the package drops it and the next call runs
on a fresh one. A failing platform handler ends its operation and reaches
the caller; it never leaves a broken instance in use."""

from __future__ import annotations

import asyncio

import pytest

from pleo_oauth import ComponentTrap, ConnectionConfig, HttpResponse, MemoryStorage, PleoOAuth, Refusal

from conftest import Fixture, require_steps

CONFIG = ConnectionConfig("client-1", "https://app.example/cb", ["users:read"], environment="staging")


async def test_a_trap_poisons_the_instance_and_the_next_call_gets_a_fresh_one(loaded) -> None:
    require_steps(loaded)
    f = Fixture(loaded)
    await f.oauth.connections.configure("c1", CONFIG)
    trapped = f.oauth._instance()
    # The direct `connections` export calls the imports, which on the step
    # path are trapping stubs: a real trap inside the instance.
    with pytest.raises(ComponentTrap, match="connections.status trapped"):
        f.oauth._call("connections", "status", "c1")
    assert trapped.poisoned
    with pytest.raises(ComponentTrap, match="must not be used again"):
        trapped.call("classify", "retry-after", "1", 0)
    created = f.oauth.instances_created
    status = await f.oauth.connections.status("c1")  # stored state is intact
    assert status.state.value == "new"
    assert f.oauth.instances_created == created + 1
    assert f.oauth._instance() is not trapped


async def test_a_failing_handler_reaches_the_caller_and_the_instance_stays_good(loaded) -> None:
    require_steps(loaded)

    class Flaky(MemoryStorage):
        fail = True

        async def get(self, key):  # type: ignore[override]
            if self.fail:
                raise RuntimeError("the platform's store crashed")
            return await super().get(key)

    storage = Flaky()
    f = Fixture(loaded)
    oauth = PleoOAuth(loaded, storage=storage, http=f.http, clock=f.clock, random=f.oauth.random, log=f.events.append)
    with pytest.raises(RuntimeError, match="store crashed"):
        await oauth.connections.status("c1")
    storage.fail = False
    await oauth.connections.configure("c1", CONFIG)
    assert (await oauth.connections.status("c1")).state.value == "new"
    assert oauth.instances_created == 1


async def test_concurrent_operations_share_one_instance_single_flight(loaded) -> None:
    """asyncio: many gates at once on one instance; one refresh request."""
    require_steps(loaded)
    f = Fixture(loaded)
    await f.oauth.connections.configure("c1", CONFIG)
    authorization = await f.oauth.authorize.begin("c1")
    state = authorization.url.split("state=")[1].split("&")[0]
    f.http.push(HttpResponse(200, [("Content-Type", "application/json")],
                             b'{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-1"}'))
    await f.oauth.authorize.complete(f"code=CODE&state={state}", "c1")
    f.clock.now += 3_600_000

    release = asyncio.Event()
    inner = f.http.send

    async def slow(request):
        await release.wait()
        return await inner(request)

    f.http.send = slow  # type: ignore[method-assign]
    f.http.push(HttpResponse(200, [("Content-Type", "application/json")],
                             b'{"access_token":"AT-2","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}'))

    async def gate() -> str:
        try:
            return "token:" + (await f.oauth.connections.access_token("c1")).token
        except Refusal as e:
            return f"refused:{e.case}"

    tasks = [asyncio.create_task(gate()) for _ in range(8)]
    await asyncio.sleep(0.05)
    release.set()
    results = await asyncio.gather(*tasks)
    assert sorted(results) == ["refused:wait"] * 7 + ["token:AT-2"]
    assert len(f.http.sent) == 2  # the code exchange and one refresh
    assert f.oauth.instances_created == 1
