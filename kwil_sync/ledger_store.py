"""Where the ledger keeps its rows: SQLite on one machine, PostgreSQL shared by workers.

The bookkeeping rules live once, in `kwil_sync.ledger.Ledger`, written in the SQL that
both engines speak (`INSERT ... ON CONFLICT`, `?` placeholders, one schema). A store
only runs that SQL, makes a write atomic and durable, and holds a named lock for a run:

- `SQLiteStore`: the file as before (WAL, fsync at each commit, `BEGIN IMMEDIATE`); the
  run lock is an `flock` on a file beside it, released by the kernel when the process
  dies.
- `PostgresStore` (psycopg 3): autocommit reads, one transaction per write (committed
  means on the server's disk); the run lock is a session advisory lock on the same
  connection, so it ends with the session: a killed worker's lock goes when its
  connection drops, and a run whose connection breaks cannot go on writing without it.

Why psycopg and not SQLAlchemy: the SQL is already portable, the SQLite path must keep
its speed and its hand-tuned durability, and a group of intents must travel as one
pipelined round trip (psycopg's `executemany`); an ORM layer would add CPU to every
statement of the hot path and hide none of the differences that matter (locks).
"""

from __future__ import annotations

import fcntl
import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from kwil_sync.durable import open_durable, write_transaction
from kwil_sync.errors import KwilSyncError

__all__ = ["LedgerStore", "LedgerUnavailable", "PostgresStore", "SQLiteStore", "Writer",
           "open_store", "redact_url", "wait_hold"]


class LedgerUnavailable(KwilSyncError, RuntimeError):
    """The ledger's database cannot be reached or broke off mid-run.

    Nothing acknowledged is lost: intents are written before broadcast and results after,
    so rerun once the database is back and the run resolves what was in flight.
    """


class Writer(Protocol):
    """The cursor-like handle a write transaction gives (sqlite3 and psycopg agree)."""

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Any: ...


class LedgerStore(Protocol):
    """What `Ledger` needs from a database."""

    url: str  # for messages: no password

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def write(self) -> Any: ...  # a context manager yielding a Writer, committed on exit

    def execute_many(self, db: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def script(self, statements: Sequence[str]) -> None: ...

    def try_hold(self, name: str) -> bool: ...

    def release(self, name: str) -> None: ...

    def close(self) -> None: ...


def redact_url(url: str) -> str:
    """`url` without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock named `name`."""
    digest = hashlib.sha256(b"kwil-sync ledger lock\0" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SQLiteStore:
    """The embedded store: one SQLite file (or ":memory:")."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.url = self.path
        self._db = open_durable(path)
        self._lock = threading.RLock()
        self._held: dict[str, Any] = {}

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def write(self) -> Any:
        return write_transaction(self._db, self._lock)

    def execute_many(self, db: sqlite3.Connection, sql: str,
                     rows: Sequence[Sequence[Any]]) -> None:
        db.executemany(sql, rows)

    def script(self, statements: Sequence[str]) -> None:
        with self.write() as db:
            for statement in statements:
                db.execute(statement)

    def try_hold(self, name: str) -> bool:
        if self.path == ":memory:":
            lock = _MEMORY_LOCKS.setdefault(name, threading.Lock())
            if not lock.acquire(blocking=False):
                return False
            self._held[name] = lock
            return True
        lock_path = Path(f"{self.path}.lock-{lock_key(name) & 0xFFFFFFFFFFFF:012x}")
        handle = lock_path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._held[name] = handle
        return True

    def release(self, name: str) -> None:
        held = self._held.pop(name, None)
        if held is None:
            return
        if isinstance(held, type(threading.Lock())):
            held.release()
        else:
            held.close()  # closing the file drops the flock

    def close(self) -> None:
        for name in list(self._held):
            self.release(name)
        self._db.close()


_MEMORY_LOCKS: dict[str, Any] = {}


class PostgresStore:
    """The shared store: a PostgreSQL database every worker reaches.

    Args:
        url: A libpq URL, `postgresql://user:password@host:port/database`.
        connect_timeout: Seconds to wait for the server at open.
    """

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError as exc:  # an optional extra
            raise ImportError("a postgresql:// ledger needs psycopg 3: "
                              "pip install 'kwil-sync[postgres]'") from exc
        self._psycopg = psycopg
        self.url = redact_url(url)
        self._lock = threading.RLock()
        self._sql: dict[str, str] = {}
        self._held: set[str] = set()
        try:
            self._db = psycopg.connect(url, autocommit=True,
                                       connect_timeout=max(1, int(connect_timeout)),
                                       application_name="kwil-sync ledger")
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"cannot reach the ledger database {self.url}: "
                                    f"{_first_line(exc)}; check the URL and that the server "
                                    "accepts connections from this worker") from None

    def _q(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("?", "%s")
        return text

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
            raise LedgerUnavailable(
                f"lost the ledger database {self.url}: {_first_line(exc)}; nothing "
                "acknowledged is lost: rerun when it is back") from exc

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._reachable():
            return self._db.execute(self._q(sql), args).fetchall()

    @contextmanager
    def write(self) -> Iterator[_PgWriter]:
        with self._lock, self._reachable(), self._db.transaction():
            yield _PgWriter(self)

    def execute_many(self, db: _PgWriter, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            db.cursor.executemany(self._q(sql), rows)  # pipelined: one round trip

    def script(self, statements: Sequence[str]) -> None:
        # Workers may create the tables at the same moment; one at a time.
        with self.write() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (lock_key("schema"),))
            for statement in statements:
                db.execute(statement)

    def try_hold(self, name: str) -> bool:
        rows = self.rows("SELECT pg_try_advisory_lock(?)", (lock_key(name),))
        if rows[0][0]:
            self._held.add(name)
        return bool(rows[0][0])

    def release(self, name: str) -> None:
        if name in self._held:
            self._held.discard(name)
            if not self._db.closed and not self._db.broken:
                self.rows("SELECT pg_advisory_unlock(?)", (lock_key(name),))

    def close(self) -> None:
        self._held.clear()  # the session's locks end with it
        self._db.close()


class _PgWriter:
    """A write transaction's handle: `execute` with `?` placeholders, like sqlite3's."""

    def __init__(self, store: PostgresStore) -> None:
        self.store, self.cursor = store, store._db.cursor()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.cursor.execute(self.store._q(sql), args)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def open_store(url_or_path: str | Path) -> SQLiteStore | PostgresStore:
    """A store for `sqlite:///path`, a plain path, ":memory:" or `postgresql://...`."""
    text = str(url_or_path)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return PostgresStore("postgresql://" + text.split("://", 1)[1])
    if scheme == "sqlite":
        path = text.split("://", 1)[1]
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them
        return SQLiteStore(path[1:] if path.startswith("/") else path or ":memory:")
    if scheme:
        raise ValueError(f"unknown ledger URL scheme {scheme!r} in {redact_url(text)}: use "
                         "sqlite:///path/to/ledger.sqlite or postgresql://user@host/db")
    return SQLiteStore(text)


def wait_hold(store: LedgerStore, name: str, timeout: float, interval: float = 0.5) -> bool:
    """Try to hold `name` until `timeout` seconds pass; True once held."""
    deadline = time.monotonic() + max(0.0, timeout)
    while not store.try_hold(name):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
