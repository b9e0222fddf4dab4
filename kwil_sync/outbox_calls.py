"""Tied save_action calls waiting in the outbox for their kwild transaction's result.

kwild calls the extension while it executes a block, before the transaction's outcome
is known (docs/SHIM.md, "Commit-tied capture"). A tied call is therefore stored as a
*call*, not a record: durable (fsynced with the outbox), answered at once, but unsigned
and without a sequence number. The upload path confirms it later (`kwil_sync.confirm`):
a committed transaction turns its calls into records (`Outbox.confirm_calls`), a failed
one voids them (kept with the node's log, never signed, never uploaded).

States: `waiting` (not known to be committed yet), `unconfirmed` (still not found past
the confirmation timeout; checked again, never uploaded meanwhile), `confirmed` (its
record is an outbox item), `voided` (the transaction failed).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from kwil_sync.arweave.ans104 import DataItem

__all__ = ["CALLS_SCHEMA", "CallCounts", "Settlement", "StoredCall", "TiedCall",
           "TiedCallsMixin", "call_from_row"]

CALLS_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    action_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    original_dbid TEXT NOT NULL,
    local_dbid TEXT NOT NULL,
    local_db_name TEXT NOT NULL,
    action_name TEXT NOT NULL,
    data TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    height INTEGER NOT NULL,
    call_index INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'waiting'
        CHECK (state IN ('waiting', 'unconfirmed', 'confirmed', 'voided')),
    code INTEGER,
    log TEXT,
    next_check_ms INTEGER NOT NULL DEFAULT 0,
    item_id TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state, next_check_ms, id);
CREATE INDEX IF NOT EXISTS calls_by_tx ON calls (tx_hash);
"""

CALL_COLUMNS = ("action_id, provider, original_dbid, local_dbid, local_db_name, action_name, "
                "data, tx_hash, height, call_index, created_at_ms, state, code, log, item_id")


@dataclass(frozen=True)
class TiedCall:
    """One save_action call made with its transaction's `@txid` and `@height`."""

    action_id: str
    provider: str
    original_dbid: str
    local_dbid: str
    local_db_name: str
    action_name: str
    data: tuple[tuple[str, str], ...]
    tx_hash: str
    height: int


@dataclass(frozen=True)
class StoredCall:
    """A tied call as the outbox holds it; `repeated` when an earlier call stored it."""

    call: TiedCall
    call_index: int
    created_at_ms: int
    state: str
    code: int | None = None
    log: str = ""
    item_id: str = ""
    repeated: bool = False


@dataclass(frozen=True)
class Settlement:
    """What the node said about one transaction, for `Outbox.settle`.

    Attributes:
        outcome: `confirmed` (code 0: `calls` become items, signed by `build` with
            (call, sequence, prev_action_id)), `voided` (with the node's `code` and
            `log`), or `waiting` / `unconfirmed` (asked again at `next_check_ms`).
    """

    tx_hash: str
    calls: list[StoredCall]
    outcome: str
    code: int = 0
    log: str = ""
    next_check_ms: int = 0
    build: Callable[[StoredCall, int, str], DataItem] | None = None


@dataclass(frozen=True)
class CallCounts:
    """Tied calls of one (provider, original dbid) chain, by state."""

    waiting: int = 0
    unconfirmed: int = 0
    voided: int = 0
    confirmed: int = 0


def encode_data(data: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(pair) for pair in data], separators=(",", ":"), ensure_ascii=False)


def call_from_row(row: Sequence[object], *, repeated: bool = False) -> StoredCall:
    """A `StoredCall` from a row selected as `CALL_COLUMNS`."""
    (action_id, provider, original, local, name, action, data, tx_hash, height, index,
     created, state, code, log, item_id) = row
    pairs = tuple((str(n), str(v)) for n, v in json.loads(str(data)))
    call = TiedCall(str(action_id), str(provider), str(original), str(local), str(name),
                    str(action), pairs, str(tx_hash), int(str(height)))
    return StoredCall(call, int(str(index)), int(str(created)), str(state),
                      None if code is None else int(str(code)), str(log or ""),
                      str(item_id or ""), repeated)


class TiedCallsMixin:
    """The outbox's tied-call methods (mixed into `kwil_sync.outbox.Outbox`)."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # provided by Outbox

    def save_call(self, call: TiedCall) -> StoredCall:
        """Store a tied call once, fsynced; a repeat (same Action-Id) returns the stored one.

        The call's index is the number of calls of its transaction stored before it, so a
        node re-executing the block gets the same answers, in the same order.
        """
        with self._write() as db:
            known = self._call(db, call.action_id)
            if known is not None:
                return known
            index = db.execute("SELECT count(*) FROM calls WHERE tx_hash = ?",
                               (call.tx_hash,)).fetchone()[0]
            created = time.time_ns() // 1_000_000
            db.execute(
                "INSERT INTO calls (action_id, provider, original_dbid, local_dbid, "
                "local_db_name, action_name, data, tx_hash, height, call_index, created_at_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (call.action_id, call.provider, call.original_dbid, call.local_dbid,
                 call.local_db_name, call.action_name, encode_data(call.data), call.tx_hash,
                 call.height, index, created))
        return StoredCall(call, index, created, "waiting")

    def get_call(self, action_id: str) -> StoredCall | None:
        """The stored tied call for `action_id`, or None."""
        with self._lock:
            return self._call(self._db, action_id)

    @staticmethod
    def _call(db: sqlite3.Connection, action_id: str) -> StoredCall | None:
        row = db.execute(f"SELECT {CALL_COLUMNS} FROM calls WHERE action_id = ?",
                         (action_id,)).fetchone()
        return None if row is None else call_from_row(row, repeated=True)

    def due_calls(self, *, max_txs: int, now_ms: int | None = None) -> dict[str, list[StoredCall]]:
        """Calls to confirm now, grouped by transaction (oldest transactions first)."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            hashes = [h for (h,) in self._db.execute(
                "SELECT tx_hash FROM calls WHERE state IN ('waiting', 'unconfirmed') AND "
                "next_check_ms <= ? GROUP BY tx_hash ORDER BY min(id) LIMIT ?",
                (now, max_txs)).fetchall()]
            grouped: dict[str, list[StoredCall]] = {}
            for tx_hash in hashes:
                rows = self._db.execute(
                    f"SELECT {CALL_COLUMNS} FROM calls WHERE tx_hash = ? AND state IN "
                    "('waiting', 'unconfirmed') ORDER BY call_index", (tx_hash,)).fetchall()
                grouped[tx_hash] = [call_from_row(r) for r in rows]
        return grouped

    @staticmethod
    def _mark(db: sqlite3.Connection, settlement: Settlement) -> int:
        """Void or postpone one transaction's open calls (inside a write transaction)."""
        if settlement.outcome == "voided":
            return db.execute("UPDATE calls SET state = 'voided', code = ?, log = ? WHERE "
                              "tx_hash = ? AND state IN ('waiting', 'unconfirmed')",
                              (settlement.code, settlement.log, settlement.tx_hash)).rowcount
        return db.execute("UPDATE calls SET state = ?, next_check_ms = ? WHERE tx_hash = ? "
                          "AND state IN ('waiting', 'unconfirmed')",
                          (settlement.outcome, settlement.next_check_ms,
                           settlement.tx_hash)).rowcount

    def calls(self, state: str = "", original_dbid: str = "") -> list[StoredCall]:
        """Tied calls in `state` (any when empty) of one database (all when empty)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {CALL_COLUMNS} FROM calls WHERE (? = '' OR state = ?) AND "
                "(? = '' OR original_dbid = ?) ORDER BY id",
                (state, state, original_dbid, original_dbid)).fetchall()
        return [call_from_row(r) for r in rows]

    def waiting_count(self) -> int:
        """Tied calls still waiting for their transaction (not past the timeout)."""
        with self._lock:
            return int(self._db.execute(
                "SELECT count(*) FROM calls WHERE state = 'waiting'").fetchone()[0])

    def call_counts(self) -> dict[tuple[str, str], CallCounts]:
        """Per (provider, original dbid): tied calls by state."""
        with self._lock:
            rows = self._db.execute("SELECT provider, original_dbid, state, count(*) FROM calls "
                                    "GROUP BY provider, original_dbid, state").fetchall()
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for provider, dbid, state, count in rows:
            counts.setdefault((provider, dbid), {})[state] = count
        return {key: CallCounts(**value) for key, value in counts.items()}
