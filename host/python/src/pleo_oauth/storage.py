"""Storage for the component: async compare-and-swap key-value stores.

A platform plugs its own store in by implementing `Storage` (four async
methods). Failures are raised as `StorageError` subclasses; they are handed
to the component as `storage-error` values and it decides what they mean.
Any other exception is a bug in the store: it ends the operation and
propagates to the caller.

Versions come from one counter per store and are never reused, so a key
deleted and written again never gets a version it had before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Entry:
    value: bytes
    version: int

    def __repr__(self) -> str:  # values are sealed records: never print them
        return f"Entry(version={self.version}, value=<{len(self.value)} bytes>)"


class StorageError(Exception):
    """Base of the errors a store raises (WIT `storage-error`)."""

    case = "unavailable"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.case)
        self.detail = detail

    def to_wit(self) -> object:
        return self.case if self.case == "conflict" else {self.case: self.detail or self.case}


class Conflict(StorageError):
    """The expected version did not match (or the key exists / is missing)."""

    case = "conflict"


class Unavailable(StorageError):
    """The store could not be reached; nothing was written."""

    case = "unavailable"


class OutcomeUnknown(StorageError):
    """The write may or may not have happened."""

    case = "outcome-unknown"


class Corrupt(StorageError):
    """The store returned something unreadable."""

    case = "corrupt"


@runtime_checkable
class Storage(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, value: bytes, expected_version: int | None) -> int: ...

    async def delete(self, key: str, expected_version: int) -> None: ...

    async def keys(self, prefix: str, after: str | None, limit: int) -> list[str]: ...


class MemoryStorage:
    """In memory, for tests and single-process tools."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._last_version = 0

    async def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    async def put(self, key: str, value: bytes, expected_version: int | None) -> int:
        current = self._entries.get(key)
        if (current.version if current else None) != expected_version:
            raise Conflict()
        self._last_version += 1
        self._entries[key] = Entry(bytes(value), self._last_version)
        return self._last_version

    async def delete(self, key: str, expected_version: int) -> None:
        current = self._entries.get(key)
        if current is None or current.version != expected_version:
            raise Conflict()
        del self._entries[key]

    async def keys(self, prefix: str, after: str | None, limit: int) -> list[str]:
        return _page(self._entries, prefix, after, limit)

    def snapshot(self) -> dict[str, Entry]:
        return dict(self._entries)


def _page(keys: object, prefix: str, after: str | None, limit: int) -> list[str]:
    encoded = sorted(k.encode() for k in keys)  # type: ignore[attr-defined]
    p, a = prefix.encode(), after.encode() if after is not None else None
    return [k.decode() for k in encoded if k.startswith(p) and (a is None or k > a)][:limit]


class SqliteStorage:
    """SQLite through the standard library's `sqlite3`, each call in a worker
    thread (`asyncio.to_thread`) so the event loop never blocks.

    Two tables: `entries(key, value, version)` and a one-row `counter` from
    which every write takes its version, so versions are never reused. Each
    write is one transaction (`BEGIN IMMEDIATE`): a compare-and-swap that
    several processes sharing the file can rely on.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 5.0) -> None:
        self.path = str(path)
        # One connection, used by one worker thread at a time.
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            db = self._connect()
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)")
            db.execute("INSERT OR IGNORE INTO counter (id, last) VALUES (1, 0)")

    def __repr__(self) -> str:
        return f"SqliteStorage({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            raise Unavailable("the store is closed")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _locked(self, fn, *args):  # type: ignore[no-untyped-def]
        with self._lock:
            return fn(*args)

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        try:
            return await asyncio.to_thread(self._locked, fn, *args)
        except StorageError:
            raise
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):
                raise Unavailable(f"sqlite: {e}") from None
            raise Corrupt(f"sqlite: {e}") from None

    async def get(self, key: str) -> Entry | None:
        return await self._run(self._get, key)

    def _get(self, key: str) -> Entry | None:
        row = self._connect().execute("SELECT value, version FROM entries WHERE key = ?", (key,)).fetchone()
        return Entry(bytes(row[0]), int(row[1])) if row else None

    async def put(self, key: str, value: bytes, expected_version: int | None) -> int:
        return await self._run(self._put, key, bytes(value), expected_version)

    def _put(self, key: str, value: bytes, expected: int | None) -> int:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT version FROM entries WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else None) != expected:
                raise Conflict()
            (version,) = db.execute("UPDATE counter SET last = last + 1 WHERE id = 1 RETURNING last").fetchone()
            db.execute(
                "INSERT INTO entries (key, value, version) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version",
                (key, value, version),
            )
            db.execute("COMMIT")
            return int(version)
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def delete(self, key: str, expected_version: int) -> None:
        await self._run(self._delete, key, expected_version)

    def _delete(self, key: str, expected: int) -> None:
        cur = self._connect().execute("DELETE FROM entries WHERE key = ? AND version = ?", (key, expected))
        if cur.rowcount != 1:
            raise Conflict()

    async def keys(self, prefix: str, after: str | None, limit: int) -> list[str]:
        return await self._run(self._keys, prefix, after, limit)

    def _keys(self, prefix: str, after: str | None, limit: int) -> list[str]:
        # Byte order: compare the UTF-8 blobs, and filter the prefix in Python
        # (LIKE/GLOB would treat % _ * ? specially).
        rows = self._connect().execute(
            "SELECT key FROM entries WHERE CAST(key AS BLOB) >= CAST(? AS BLOB) ORDER BY CAST(key AS BLOB)",
            (prefix,),
        )
        out: list[str] = []
        a = after.encode() if after is not None else None
        for (key,) in rows:
            if not key.startswith(prefix):
                break
            if a is not None and key.encode() <= a:
                continue
            out.append(key)
            if len(out) >= limit:
                break
        return out
