"""The bundler stand-in's durable state: received items, their tags, bundles posted.

One SQLite file (WAL) so memory stays flat however many items arrive, and so a
restarted stand-in neither loses items nor posts a bundle twice. Every call takes one
lock: the stand-in serves a handful of test clients, not production traffic.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.signers import b64url

__all__ = ["BundleRow", "ItemQuery", "StoredItem", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    address_lower TEXT NOT NULL,
    token TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    signature TEXT NOT NULL,
    content_type TEXT,
    receipt TEXT NOT NULL,
    raw BLOB NOT NULL,
    bundle_id TEXT
);
CREATE INDEX IF NOT EXISTS items_unbundled ON items (bundle_id, seq);
CREATE INDEX IF NOT EXISTS items_address ON items (address_lower, seq);
CREATE TABLE IF NOT EXISTS item_tags (
    seq INTEGER NOT NULL, pos INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (seq, pos)
);
CREATE INDEX IF NOT EXISTS item_tags_lookup ON item_tags (name, value, seq);
CREATE TABLE IF NOT EXISTS bundles (
    id TEXT PRIMARY KEY, tx_json TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class StoredItem:
    """What GraphQL and the data routes need of one received item."""

    seq: int
    id: str
    address: str
    token: str
    timestamp: int
    signature: str
    content_type: str | None
    receipt: dict[str, Any]
    tags: list[tuple[str, str]]


@dataclass(frozen=True)
class ItemQuery:
    """A `transactions` filter; None fields do not filter."""

    ids: Sequence[str] | None = None
    owners: Sequence[str] | None = None
    tags: Sequence[tuple[str, Sequence[str]]] = ()
    token: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    after_seq: int | None = None
    descending: bool = False
    limit: int = 10


@dataclass(frozen=True)
class BundleRow:
    id: str
    tx_json: dict[str, Any]
    state: str


class Store:
    """SQLite-backed item and bundle store.

    Args:
        path: The database file (created with its tables if missing).
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        row = self._db.execute("SELECT MAX(timestamp) FROM items").fetchone()
        self._last_ms = int(row[0] or 0)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def receipt_of(self, id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT receipt FROM items WHERE id = ?", (id,)).fetchone()
        return json.loads(row[0]) if row else None

    def next_timestamp(self) -> int:
        """A millisecond timestamp strictly above every one handed out before."""
        with self._lock:
            self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
            return self._last_ms

    def add(self, item: DataItem, token: str, timestamp: int, receipt: dict[str, Any]) -> bool:
        """Store a verified item; False (and nothing stored) when its id is already here."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO items (id, address, address_lower, token, timestamp, "
                    "signature, content_type, receipt, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (item.id, item.owner_address, item.owner_address.lower(), token, timestamp,
                     b64url(item.signature), item.tag("Content-Type"), json.dumps(receipt),
                     item.raw))
                if cursor.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return False
                seq = cursor.lastrowid
                self._db.executemany(
                    "INSERT INTO item_tags (seq, pos, name, value) VALUES (?, ?, ?, ?)",
                    [(seq, pos, name, value) for pos, (name, value) in enumerate(item.tags)])
                self._db.execute("COMMIT")
                return True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def data_of(self, id: str) -> tuple[bytes, str | None] | None:
        """(raw item bytes, Content-Type tag) of an item, or None."""
        with self._lock:
            row = self._db.execute("SELECT raw, content_type FROM items WHERE id = ?",
                                   (id,)).fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def query(self, q: ItemQuery) -> list[StoredItem]:
        """Items matching `q` in timestamp order, at most `q.limit`."""
        where: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: Sequence[Any]) -> None:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)

        if q.ids is not None:
            any_of("id", list(q.ids))
        if q.owners is not None:
            any_of("address_lower", [o.lower() for o in q.owners])
        if q.token is not None:
            any_of("token", [q.token])
        for name, values in q.tags:
            where.append("EXISTS (SELECT 1 FROM item_tags t WHERE t.seq = items.seq AND "
                         f"t.name = ? AND t.value IN ({', '.join('?' * len(values))}))")
            params.extend([name, *values])
        for clause, value in (("timestamp >= ?", q.since_ms), ("timestamp <= ?", q.until_ms)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if q.after_seq is not None:
            where.append("seq < ?" if q.descending else "seq > ?")
            params.append(q.after_seq)
        sql = ("SELECT seq, id, address, token, timestamp, signature, content_type, receipt "
               f"FROM items {'WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY seq {'DESC' if q.descending else 'ASC'} LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, [*params, q.limit]).fetchall()
            seqs = [row[0] for row in rows]
            tags: dict[int, list[tuple[str, str]]] = {seq: [] for seq in seqs}
            if seqs:
                for seq, name, value in self._db.execute(
                        f"SELECT seq, name, value FROM item_tags WHERE seq IN "
                        f"({', '.join('?' * len(seqs))}) ORDER BY seq, pos", seqs):
                    tags[seq].append((name, value))
        return [StoredItem(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                           json.loads(row[7]), tags[row[0]]) for row in rows]

    # bundling

    def unbundled(self, limit: int) -> list[tuple[int, bytes]]:
        """(seq, raw) of the oldest items not yet in a bundle."""
        with self._lock:
            rows = self._db.execute("SELECT seq, raw FROM items WHERE bundle_id IS NULL "
                                    "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, bytes(raw)) for seq, raw in rows]

    def count_unbundled(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM items WHERE bundle_id IS NULL").fetchone()[0])

    def claim(self, bundle_id: str, tx_json: dict[str, Any], seqs: Sequence[int]) -> None:
        """Record a signed bundle and its items in one transaction, before posting it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO bundles (id, tx_json, state, created_ms) "
                                 "VALUES (?, ?, 'signed', ?)",
                                 (bundle_id, json.dumps(tx_json), int(time.time() * 1000)))
                self._db.executemany("UPDATE items SET bundle_id = ? WHERE seq = ?",
                                     [(bundle_id, seq) for seq in seqs])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def bundles(self, state: str) -> list[BundleRow]:
        with self._lock:
            rows = self._db.execute("SELECT id, tx_json, state FROM bundles WHERE state = ? "
                                    "ORDER BY created_ms", (state,)).fetchall()
        return [BundleRow(row[0], json.loads(row[1]), row[2]) for row in rows]

    def mark(self, bundle_id: str, state: str) -> None:
        """Set a bundle's state; "abandoned" also frees its items for a new bundle."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE bundles SET state = ? WHERE id = ?", (state, bundle_id))
            if state == "abandoned":
                self._db.execute("UPDATE items SET bundle_id = NULL WHERE bundle_id = ?",
                                 (bundle_id,))
            self._db.execute("COMMIT")

