"""Values are checked at the boundary: a wrong shape is a clear error before
the component is called (never a wrong verdict), and it leaves the instance
usable."""

from __future__ import annotations

import pytest

from pleo_oauth import (
    ConnectionConfig, HttpResponse, MemoryStorage, PleoOAuth, UrlParams,
)
from pleo_oauth import _codec

from conftest import Fixture, ManualClock, require_steps


@pytest.fixture
def oauth(loaded) -> PleoOAuth:
    return Fixture(loaded).oauth


def test_pure_calls_reject_wrong_shapes(oauth: PleoOAuth) -> None:
    with pytest.raises(TypeError, match="expected a str, got int"):
        oauth.classify.retry_after_ms(120, 1_700_000_000_000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range for u64"):
        oauth.classify.retry_after_ms("120", -1)
    with pytest.raises(ValueError, match="a str that is not one of"):
        oauth.classify.token_response("bogus", HttpResponse(200), 0)
    with pytest.raises(TypeError, match="HttpResponse or a TransportError"):
        oauth.classify.api_response({"status": 200}, "first", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range for u16"):
        oauth.classify.api_response(HttpResponse(70000), "first", 0)
    with pytest.raises(TypeError, match=r"www-authenticate#0\[1\]: expected a str"):
        oauth.classify.www_authenticate(["Bearer", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="params must be a UrlParams"):
        oauth.authorize.build_url({"authorize-url": "https://x"})  # type: ignore[arg-type]
    params = UrlParams("https://auth.example/authorize", "c", "https://app.example/cb", "users:read",  # type: ignore[arg-type]
                       "s" * 43, "c" * 43)
    with pytest.raises(TypeError, match="scopes: a list of scope names"):
        oauth.authorize.build_url(params)
    # and the instance is still good
    assert oauth.classify.retry_after_ms("120", 1_700_000_000_000) == 1_700_000_120_000


def test_codec_rejects_unknown_and_missing_fields(oauth: PleoOAuth) -> None:
    instance = oauth._instance()
    f = instance.func("authorize", "build-url")
    good = {"authorize-url": "https://a.example/authorize", "client-id": "c", "redirect-uri": "https://app.example/cb",
            "scopes": ["users:read"], "state": "s" * 43, "code-challenge": "c" * 43, "extra-params": []}
    with pytest.raises(ValueError, match=r"unknown fields \['client_id'\]"):
        instance.call("authorize", "build-url", {**good, "client_id": "c"})
    missing = dict(good)
    del missing["state"]
    with pytest.raises(ValueError, match="missing field 'state'"):
        instance.call("authorize", "build-url", missing)
    with pytest.raises(TypeError, match="tuple of 2"):
        instance.call("authorize", "build-url", {**good, "extra-params": [("a",)]})
    assert f is not None and not instance.poisoned
    assert instance.call("authorize", "build-url", good)["ok"].startswith("https://a.example/authorize?")


async def test_lifecycle_inputs_are_checked(loaded) -> None:
    require_steps(loaded)
    oauth = Fixture(loaded).oauth
    with pytest.raises(TypeError, match="a connection id is a str"):
        await oauth.connections.access_token(7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a ConnectionConfig"):
        await oauth.connections.configure("c1", {"client-id": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="environment"):
        await oauth.connections.configure("c1", ConnectionConfig("c", "https://app.example/cb", ["users:read"], environment="prod"))
    with pytest.raises(TypeError, match="scopes: a list"):
        await oauth.connections.configure("c1", ConnectionConfig("c", "https://app.example/cb", "users:read"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range for u16"):
        await oauth.connections.report("c1", "AT-1", 70000)


async def test_platform_handlers_are_checked(loaded) -> None:
    require_steps(loaded)

    class BadStorage(MemoryStorage):
        async def get(self, key):  # type: ignore[override]
            return {"value": b"", "version": 1}

    oauth = PleoOAuth(loaded, storage=BadStorage(), http=Fixture(loaded).http, clock=ManualClock())
    with pytest.raises(TypeError, match="storage.get must return an Entry or None"):
        await oauth.connections.status("c1")

    f = Fixture(loaded)
    f.oauth.random = lambda n: b"\x00" * (n - 1)
    await f.oauth.connections.configure("c1", ConnectionConfig("client-1", "https://app.example/cb", ["users:read"]))
    with pytest.raises(TypeError, match="random must return exactly"):
        await f.oauth.authorize.begin("c1")
    # the instance is not poisoned by a host-side error: the next call works on it
    created = f.oauth.instances_created
    assert (await f.oauth.connections.status("c1")).state.value == "new"
    assert f.oauth.instances_created == created
