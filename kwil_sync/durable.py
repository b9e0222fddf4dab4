"""SQLite files that survive a crash: WAL, fsync at every commit, one writer at a time.

The ledger and the outbox both promise that what they said is on disk is on disk
(`synchronous=FULL`), and both take the write lock up front (`BEGIN IMMEDIATE`) so a
read-then-write never races another process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["open_durable", "write_transaction"]


def open_durable(path: str | Path) -> sqlite3.Connection:
    """Open (creating its folder) a SQLite file in WAL mode with fsync at every commit."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextmanager
def write_transaction(db: sqlite3.Connection,
                      lock: threading.Lock | threading.RLock) -> Iterator[sqlite3.Connection]:
    """One write transaction under `lock`: committed (and fsynced) or rolled back."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
