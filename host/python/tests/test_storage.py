"""The storage contract (compare-and-swap, versions never reused, byte-order
pages) on both provided stores."""

from __future__ import annotations

import pytest

from pleo_oauth import Conflict, MemoryStorage, SqliteStorage


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStorage()
    else:
        s = SqliteStorage(tmp_path / "store.sqlite3")
        yield s
        s.close()


async def test_compare_and_swap(store) -> None:
    v1 = await store.put("tokens/a", b"1", None)
    with pytest.raises(Conflict):
        await store.put("tokens/a", b"2", None)  # exists
    with pytest.raises(Conflict):
        await store.put("tokens/b", b"2", v1)  # missing
    v2 = await store.put("tokens/a", b"2", v1)
    assert v2 > v1
    with pytest.raises(Conflict):
        await store.put("tokens/a", b"3", v1)  # stale
    with pytest.raises(Conflict):
        await store.delete("tokens/a", v1)
    with pytest.raises(Conflict):
        await store.delete("tokens/none", 1)
    await store.delete("tokens/a", v2)
    assert await store.get("tokens/a") is None
    v3 = await store.put("tokens/a", b"4", None)
    assert v3 > v2, "a version is never reused, even after a delete"
    entry = await store.get("tokens/a")
    assert (entry.value, entry.version) == (b"4", v3)


async def test_keys_pages_in_byte_order(store) -> None:
    for key in ["status/b", "status/a", "status/\u00e9", "status/Z", "config/a", "status_/x", "status/%", "status/_"]:
        await store.put(key, b"x", None)
    assert await store.keys("status/", None, 100) == ["status/%", "status/Z", "status/_", "status/a", "status/b", "status/\u00e9"]
    assert await store.keys("status/", "status/Z", 2) == ["status/_", "status/a"]
    assert await store.keys("status/", "status/\u00e9", 10) == []
    assert await store.keys("", None, 1) == ["config/a"]
