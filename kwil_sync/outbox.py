"""The shim's durable queue of signed records waiting for upload.

SQLite in WAL mode with `synchronous=FULL`: a commit is on disk (fsynced) before
`save` returns, so an answer kwild received is never lost, whatever kills the shim.
The sequence and previous action id of a (provider, original dbid) chain are assigned
in the same transaction that stores the item, so sequences have no gaps and no
repeats. A repeat of an action id returns the stored item and assigns nothing.

Tied calls (the `save_action_tx` form, `kwil_sync.outbox_calls`) wait here unsigned until
their kwild transaction is confirmed; only then do they become items, with the next
sequence, so a voided call leaves no gap in the chain. Items written by the 2023
`save_action` form are marked untied (`tied = 0`).

Example:
    ```python
    outbox = Outbox("outbox.sqlite")
    stored = outbox.save(action_id=aid, provider=signer.address, original_dbid=dbid,
                         build=lambda sequence, prev: build_record(..., sequence=sequence,
                                                                   prev_action_id=prev))
    for item in outbox.pending(100, holder="run-1"):
        ...  # upload item.raw
    outbox.ack([item.item_id])
    upload_pending(outbox, uploader, holder="run-2", limit=100)  # kwil_sync.upload

    ```
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.confirm import ConfirmReport
from kwil_sync.durable import open_durable, write_transaction
from kwil_sync.outbox_calls import CALLS_SCHEMA, Settlement, StoredCall, TiedCallsMixin

__all__ = ["FIRST_PREV_ACTION_ID", "AckResult", "ChainStatus", "Outbox", "PendingBatch",
           "PendingItem", "Settlement", "StoredCall", "StoredItem"]

FIRST_PREV_ACTION_ID = "-"  # Prev-Action-Id of sequence 1 (docs/RECORD.md)
SCHEMA_VERSION = 2  # 2 added tied calls (table calls, items.tied)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    action_id TEXT NOT NULL UNIQUE,
    item_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    original_dbid TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    raw BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'uploaded')),
    lease_holder TEXT,
    lease_until_ms INTEGER,
    receipt TEXT,
    uploaded_at_ms INTEGER,
    tied INTEGER NOT NULL DEFAULT 0,
    UNIQUE (provider, original_dbid, sequence)
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
CREATE TABLE IF NOT EXISTS chains (
    provider TEXT NOT NULL,
    original_dbid TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    last_action_id TEXT NOT NULL,
    last_uploaded_id TEXT,
    PRIMARY KEY (provider, original_dbid)
);
"""


@dataclass(frozen=True)
class StoredItem:
    """An item as the outbox holds it; `repeated` is True when an earlier save stored it."""

    action_id: str
    item_id: str
    provider: str
    original_dbid: str
    sequence: int
    created_at_ms: int
    repeated: bool


@dataclass(frozen=True)
class PendingItem:
    """One item waiting for upload, with its exact signed bytes."""

    item_id: str
    action_id: str
    original_dbid: str
    sequence: int
    raw: bytes


@dataclass(frozen=True)
class PendingBatch:
    items: list[PendingItem]
    remaining: int
    confirmation: ConfirmReport = field(default_factory=ConfirmReport)


@dataclass(frozen=True)
class ChainStatus:
    """The outbox for one (provider, original dbid) chain."""

    provider: str
    original_dbid: str
    pending: int
    uploaded: int
    sequence: int
    last_action_id: str
    last_uploaded_id: str
    untied: int = 0  # items from the 2023 save_action form (not tied to a transaction)
    waiting: int = 0  # tied calls waiting for their transaction's result
    unconfirmed: int = 0  # tied calls whose transaction is still unknown past the timeout
    voided: int = 0  # tied calls of transactions that failed: never uploaded


@dataclass(frozen=True)
class AckResult:
    acknowledged: int
    unknown_ids: list[str]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Outbox(TiedCallsMixin):
    """A durable, thread-safe outbox in one SQLite file.

    Args:
        path: The database file (created with its folder when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_durable(self.path)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path} has outbox schema {version}; this kwil-sync "
                               f"reads {SCHEMA_VERSION}: upgrade kwil-sync or use a new file")
        if version == 1:  # every item of a version 1 outbox is untied
            self._db.execute("ALTER TABLE items ADD COLUMN tied INTEGER NOT NULL DEFAULT 0")
        self._db.executescript(_SCHEMA + CALLS_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction under the lock; committed (fsynced) or rolled back."""
        return write_transaction(self._db, self._lock)

    def get(self, action_id: str) -> StoredItem | None:
        """The stored item for `action_id`, or None."""
        with self._lock:
            return self._get(action_id)

    def _get(self, action_id: str) -> StoredItem | None:
        row = self._db.execute(
            "SELECT action_id, item_id, provider, original_dbid, sequence, created_at_ms "
            "FROM items WHERE action_id = ?", (action_id,)).fetchone()
        if row is None:
            return None
        action, item_id, provider, dbid, sequence, created = row
        return StoredItem(action, item_id, provider, dbid, sequence, created, repeated=True)

    def save(self, *, action_id: str, provider: str, original_dbid: str,
             build: Callable[[int, str], DataItem]) -> StoredItem:
        """Store the record of an action once, fsynced, with the chain's next sequence.

        Args:
            action_id: The record's Action-Id; a repeat returns the stored item.
            provider: The provider address that signs the chain.
            original_dbid: The chain's database.
            build: Called with (sequence, prev_action_id) inside the transaction; returns
                the signed data item. If it raises, nothing is stored.
        """
        with self._write() as db:
            stored = self._get(action_id)
            if stored is not None:
                return stored
            return self._store_item(db, action_id, provider, original_dbid, build, tied=False)

    def _store_item(self, db: sqlite3.Connection, action_id: str, provider: str,
                    original_dbid: str, build: Callable[[int, str], DataItem], *, tied: bool
                    ) -> StoredItem:
        """Insert the next item of a chain (inside the caller's write transaction)."""
        chain = db.execute("SELECT sequence, last_action_id FROM chains "
                           "WHERE provider = ? AND original_dbid = ?",
                           (provider, original_dbid)).fetchone()
        sequence, prev = (chain[0] + 1, chain[1]) if chain else (1, FIRST_PREV_ACTION_ID)
        item = build(sequence, prev)
        created = _now_ms()
        db.execute("INSERT INTO items (action_id, item_id, provider, original_dbid, sequence, "
                   "raw, created_at_ms, tied) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (action_id, item.id, provider, original_dbid, sequence, item.raw, created,
                    int(tied)))
        db.execute("INSERT INTO chains (provider, original_dbid, sequence, last_action_id) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT (provider, original_dbid) DO UPDATE SET "
                   "sequence = excluded.sequence, last_action_id = excluded.last_action_id",
                   (provider, original_dbid, sequence, action_id))
        return StoredItem(action_id, item.id, provider, original_dbid, sequence, created,
                          repeated=False)

    def settle(self, settlements: list[Settlement]) -> dict[str, int]:
        """Apply what the node said about several transactions in one fsynced commit.

        Confirmed calls become items (next sequences, in call order); voided calls keep
        the node's code and log; the others wait for their next check. Calls settled
        meanwhile (by another upload run) are left as they are.

        Returns:
            Calls per outcome (`confirmed` counts the items stored).
        """
        counts = dict.fromkeys(("confirmed", "voided", "waiting", "unconfirmed"), 0)
        with self._write() as db:
            for settlement in settlements:
                if settlement.outcome != "confirmed":
                    counts[settlement.outcome] += self._mark(db, settlement)
                    continue
                assert settlement.build is not None, "a confirmed settlement signs records"
                for pending in settlement.calls:
                    call = pending.call
                    state = db.execute("SELECT state FROM calls WHERE action_id = ?",
                                       (call.action_id,)).fetchone()
                    if state is None or state[0] in ("confirmed", "voided"):
                        continue
                    item = self._store_item(db, call.action_id, call.provider,
                                            call.original_dbid,
                                            functools.partial(settlement.build, pending),
                                            tied=True)
                    db.execute("UPDATE calls SET state = 'confirmed', code = 0, item_id = ? "
                               "WHERE action_id = ?", (item.item_id, call.action_id))
                    counts["confirmed"] += 1
        return counts

    def pending(self, limit: int, *, holder: str = "", lease_seconds: float = 300.0
                ) -> list[PendingItem]:
        """Lease up to `limit` pending items, oldest first.

        Items leased to another holder are skipped until their lease ends; the same
        holder gets its own unacknowledged items again (a retried batch re-sends the
        same bytes). An empty holder reads without taking a lease.
        """
        now = _now_ms()
        with self._write() as db:
            rows = db.execute(
                "SELECT id, item_id, action_id, original_dbid, sequence, raw FROM items "
                "WHERE state = 'pending' AND (lease_holder IS NULL OR lease_holder = ? "
                "OR lease_until_ms < ?) ORDER BY id LIMIT ?", (holder, now, limit)).fetchall()
            if holder and rows:
                db.executemany(
                    "UPDATE items SET lease_holder = ?, lease_until_ms = ? WHERE id = ?",
                    [(holder, now + int(lease_seconds * 1000), row[0]) for row in rows])
        return [PendingItem(item_id, action_id, dbid, seq, bytes(raw))
                for _, item_id, action_id, dbid, seq, raw in rows]

    def lease(self, limit: int, *, holder: str = "", lease_seconds: float = 300.0
              ) -> PendingBatch:
        """`pending` as a batch with how many others wait (the `OutboxQueue` form).

        Tied calls are not confirmed here (the shim's PendingItems does that before it
        leases), so `confirmation` is empty.
        """
        items = self.pending(limit, holder=holder, lease_seconds=lease_seconds)
        return PendingBatch(items, max(self.pending_count() - len(items), 0))

    def pending_count(self) -> int:
        """How many items wait for upload (leased or not)."""
        with self._lock:
            return int(self._db.execute(
                "SELECT count(*) FROM items WHERE state = 'pending'").fetchone()[0])

    def ack(self, item_ids: Iterable[str], receipts: Mapping[str, str] | None = None
            ) -> AckResult:
        """Mark items uploaded (idempotent); ids the outbox does not hold are returned."""
        receipts = receipts or {}
        now = _now_ms()
        acknowledged, unknown = 0, []
        with self._write() as db:
            for item_id in dict.fromkeys(item_ids):
                row = db.execute("SELECT provider, original_dbid, state FROM items "
                                 "WHERE item_id = ?", (item_id,)).fetchone()
                if row is None:
                    unknown.append(item_id)
                    continue
                acknowledged += 1
                if row[2] == "uploaded":
                    continue
                db.execute("UPDATE items SET state = 'uploaded', receipt = ?, uploaded_at_ms = ?, "
                           "lease_holder = NULL, lease_until_ms = NULL WHERE item_id = ?",
                           (receipts.get(item_id), now, item_id))
                db.execute("UPDATE chains SET last_uploaded_id = ? "
                           "WHERE provider = ? AND original_dbid = ?", (item_id, row[0], row[1]))
        return AckResult(acknowledged, unknown)

    def status(self, original_dbid: str = "") -> list[ChainStatus]:
        """Per chain: outbox depth, uploads, last sequence, last uploaded id, untied items
        and tied calls not turned into records (waiting, unconfirmed, voided)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.provider, c.original_dbid, "
                "(SELECT count(*) FROM items i WHERE i.provider = c.provider AND "
                " i.original_dbid = c.original_dbid AND i.state = 'pending'), "
                "(SELECT count(*) FROM items i WHERE i.provider = c.provider AND "
                " i.original_dbid = c.original_dbid AND i.state = 'uploaded'), "
                "c.sequence, c.last_action_id, coalesce(c.last_uploaded_id, ''), "
                "(SELECT count(*) FROM items i WHERE i.provider = c.provider AND "
                " i.original_dbid = c.original_dbid AND i.tied = 0) "
                "FROM chains c", ()).fetchall()
        chains = {(r[0], r[1]): r for r in rows}
        calls = self.call_counts()
        out = []
        for key in sorted(set(chains) | set(calls), key=lambda k: (k[1], k[0])):
            if original_dbid and key[1] != original_dbid:
                continue
            provider, dbid, pending, uploaded, sequence, last, last_up, untied = \
                chains.get(key) or (key[0], key[1], 0, 0, 0, "", "", 0)
            counted = calls.get(key)
            out.append(ChainStatus(provider, dbid, pending, uploaded, sequence, last, last_up,
                                   untied=untied, waiting=counted.waiting if counted else 0,
                                   unconfirmed=counted.unconfirmed if counted else 0,
                                   voided=counted.voided if counted else 0))
        return out
