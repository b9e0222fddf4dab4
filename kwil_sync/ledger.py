"""Exactly-once bookkeeping per target, in SQLite (one machine) or PostgreSQL (shared).

One row per (target, action id) moves `intended` -> `done` | `failed`:

- `intend` is written (and fsynced) when the transaction is signed, before it is
  broadcast, with its hash, nonce and the signed transaction itself;
- `complete` is written when the node reports the result (code, log, height).

While intended, an action may be signed again (the nonce pipeline re-signs what the
node refused or forgot); the earlier hashes are kept, and recovery asks about them too.

A run first resolves what an earlier run left `intended` (see
`kwil_sync.replay_recovery.resolve_pending`): committed hashes are completed; an
unknown hash whose nonce is not yet used is broadcast again *as the same signed bytes*
(so it can land at most once); only an unknown hash whose nonce the account has
already used elsewhere is released for a fresh execution, because those bytes can
never land. Whatever is killed and when, an action is executed at most once and none
is skipped:

| killed | on restart |
|---|---|
| before the intent is stored | nothing was broadcast: the action is new |
| after the intent, before or during broadcast | unknown hash, nonce free: same bytes re-sent |
| after broadcast, before `complete` | committed: completed; in the mempool: awaited |
| after `complete`, before sequence marks | the record is re-read and skipped |

Assumptions: recovery asks the node the transactions were sent to (or one that sees
the same mempool); "unknown" is asked twice, a grace period apart, so a broadcast in
flight at the kill is not mistaken for a lost one; a re-sent transaction the node
refuses at the door is in no mempool and, its bytes being dropped, can never land;
anything still pending after the wait stops the run (`PendingTransactions`) rather
than risk a duplicate. The signing key should be used by kwil-sync alone for the
target: another user of the key consumes nonces the ledger knows nothing about (still
safe, but such actions are re-executed rather than re-sent).

Where it lives: `open_ledger(url_or_path)` picks the store (`kwil_sync.ledger_store`):
a SQLite file for runs that always land on one machine, a PostgreSQL database for work
pools whose runs start on a fresh filesystem or on any of several workers. The rules
above are this module's, written once; `exclusive` holds one run per target across
every worker that shares the store.

Also kept: the `sequenced` slots each provider's records filled (restart points and
rewind detection), the quarantine (every record refused, with its reason), and the
providers' open sequence gaps with the time they were first seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.ledger_store import (
    LedgerStore,
    LedgerUnavailable,
    open_store,
    wait_hold,
)
from kwil_sync.refusals import Reason, Refusal

__all__ = ["ActionResult", "Intent", "Ledger", "LedgerBusy", "LedgerCounts",
           "LedgerStateError", "LedgerUnavailable", "QuarantineEntry", "SequenceSlot",
           "SignedAction", "TABLES", "open_ledger"]

# One schema for both stores: SQLite reads BIGINT and DOUBLE PRECISION as its INTEGER
# and REAL affinities, so files written before keep working unchanged.
TABLES: dict[str, str] = {
    "actions": """CREATE TABLE IF NOT EXISTS actions (
    target TEXT NOT NULL, action_id TEXT NOT NULL, state TEXT NOT NULL,
    tx_id TEXT, provider TEXT, sequence BIGINT,
    tx_hash TEXT, nonce BIGINT, signed_tx TEXT, prior_hashes TEXT NOT NULL DEFAULT '[]',
    code BIGINT, log TEXT, height BIGINT,
    intended_at DOUBLE PRECISION, completed_at DOUBLE PRECISION,
    PRIMARY KEY (target, action_id))""",
    "sequenced": """CREATE TABLE IF NOT EXISTS sequenced (
    target TEXT NOT NULL, provider TEXT NOT NULL, sequence BIGINT NOT NULL,
    action_id TEXT NOT NULL, PRIMARY KEY (target, provider, sequence))""",
    "quarantine": """CREATE TABLE IF NOT EXISTS quarantine (
    target TEXT NOT NULL, item_id TEXT NOT NULL, reason TEXT NOT NULL,
    action_id TEXT, provider TEXT, detail TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
    times BIGINT NOT NULL, PRIMARY KEY (target, item_id, reason))""",
    "gaps": """CREATE TABLE IF NOT EXISTS gaps (
    target TEXT NOT NULL, provider TEXT NOT NULL, first_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (target, provider))""",
}
_INDEXES = ("CREATE INDEX IF NOT EXISTS actions_state ON actions (target, state)",
            "CREATE INDEX IF NOT EXISTS sequenced_action ON sequenced (target, action_id)")


class LedgerBusy(KwilSyncError, RuntimeError):
    """Another run (on this or another worker) holds the target's ledger lock."""


class LedgerStateError(KwilSyncError, RuntimeError):
    """A write would break exactly once (e.g. signing an action already done again)."""


@dataclass(frozen=True, slots=True)
class SignedAction:
    """An action signed as a transaction, recorded (`Ledger.intend_many`) before it is
    broadcast: its hash, nonce and signed bytes, and the record it came from."""

    action_id: str
    tx_hash: str
    nonce: int
    signed_tx: dict[str, Any] | None = None
    tx_id: str | None = None
    provider: str | None = None
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The node's final answer for an action (`Ledger.complete_many`): code 0 is done,
    anything else failed. `landed_hash` names the hash that committed where it is not
    the latest attempt (None keeps the stored one)."""

    action_id: str
    code: int
    log: str = ""
    height: int | None = None
    landed_hash: str | None = None


@dataclass(frozen=True, slots=True)
class SequenceSlot:
    """A provider's sequence number and the action that filled it on a target."""

    provider: str
    sequence: int
    action_id: str


@dataclass(frozen=True, slots=True)
class Intent:
    """A signed transaction recorded before broadcast and not yet resolved."""

    action_id: str
    tx_hash: str
    nonce: int
    signed_tx: dict[str, Any] | None
    tx_id: str | None
    intended_at: float
    prior_hashes: tuple[str, ...] = ()  # earlier signatures of the same action, replaced


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record that was refused, why, and when it was first and last seen."""

    item_id: str
    reason: str  # a `Reason` code, kept as stored (a ledger may predate a code)
    detail: str
    action_id: str | None
    provider: str | None
    first_seen: float
    last_seen: float
    times: int


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    """Totals for one target, for `kwil-sync status` and reports."""

    done: int
    failed: int
    pending: int
    quarantined: int
    providers: dict[str, int]  # provider -> last sequence resolved


class Ledger:
    """The exactly-once ledger; see the module docstring.

    Args:
        where: A SQLite file (created with its folder), ":memory:", or an opened
            `LedgerStore`; `open_ledger` also takes URLs.
    """

    def __init__(self, where: str | Path | LedgerStore) -> None:
        self.store: LedgerStore = (open_store(where) if isinstance(where, str | Path)
                                   else where)
        self.path = self.store.url
        self.store.script([*TABLES.values(), *_INDEXES])

    def __repr__(self) -> str:
        return f"Ledger({self.path!r})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> Any:
        return self.store.write()

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.store.rows(sql, args)

    # -- one run per target -------------------------------------------------------------

    @contextmanager
    def exclusive(self, target: str, *, timeout: float) -> Iterator[None]:
        """Hold `target` for one run, across every worker sharing this ledger.

        Waits up to `timeout` seconds. The lock is released on exit, and also when the
        process dies (its file lock or database session goes with it).

        Raises:
            LedgerBusy: Another run held it for the whole wait.
        """
        name = f"target:{target}"
        if not wait_hold(self.store, name, timeout):
            raise LedgerBusy(f"another run holds {target} in the ledger {self.path} "
                             f"(waited {timeout:g} s); it applies the same log, so this "
                             "run can be skipped, or rerun when that one ends")
        try:
            yield
        finally:
            self.store.release(name)

    # -- exactly once -----------------------------------------------------------------

    def intend(self, target: str, action_id: str, tx_hash: str, nonce: int, *,
               signed_tx: dict[str, Any] | None = None, tx_id: str | None = None,
               provider: str | None = None, sequence: int | None = None) -> None:
        """Record a signed transaction before it is broadcast (one durable commit)."""
        self.intend_many(target, [SignedAction(action_id, tx_hash, nonce, signed_tx, tx_id,
                                               provider, sequence)])

    def intend_many(self, target: str, signed: Iterable[SignedAction]) -> None:
        """Record a window of signed transactions in one commit.

        An action still `intended` may be signed again (the nonce pipeline re-signs what
        the node refused or forgot): the earlier hash is kept in `prior_hashes`, so
        recovery still finds it if it landed after all.

        Raises:
            LedgerStateError: If an action is already done or failed for this target:
                signing it again would execute it twice (nothing of the group is written).
        """
        now, rows = time.time(), list(signed)
        with self._tx() as db:
            # One read of what the group already has, then one batch of writes: a shared
            # ledger pays a round trip per statement, never per record.
            known = {a: (state, h, prior) for a, state, h, prior in self._in(
                _reader(db), "SELECT action_id, state, tx_hash, prior_hashes FROM actions "
                    "WHERE target=? AND action_id IN ({})", target, [r.action_id for r in rows])}
            inserts, updates = [], []
            for row in rows:
                action_id, tx_hash = row.action_id, row.tx_hash.lower()
                signed_text = json.dumps(row.signed_tx) if row.signed_tx is not None else None
                found = known.get(action_id)
                if found is None:
                    inserts.append((target, action_id, row.tx_id, row.provider, row.sequence,
                                    tx_hash, row.nonce, signed_text, now))
                    known[action_id] = ("intended", tx_hash, "[]")
                elif found[0] != "intended":
                    raise LedgerStateError(f"action {action_id} is already {found[0]} on "
                                           f"{target}; refusing to sign it again")
                elif found[1] != tx_hash:
                    prior = json.dumps([*json.loads(found[2]), found[1]])
                    updates.append((tx_hash, row.nonce, signed_text, prior, now, target,
                                    action_id))
                    known[action_id] = ("intended", tx_hash, prior)
            self.store.execute_many(db, "INSERT INTO actions (target, action_id, state, "
                                        "tx_id, provider, sequence, tx_hash, nonce, "
                                        "signed_tx, intended_at) "
                                        "VALUES (?, ?, 'intended', ?, ?, ?, ?, ?, ?, ?)",
                                    inserts)
            self.store.execute_many(db, "UPDATE actions SET tx_hash=?, nonce=?, signed_tx=?, "
                                        "prior_hashes=?, intended_at=? WHERE target=? AND "
                                        "action_id=?", updates)

    @staticmethod
    def _in(run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]], sql: str, target: str,
            ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (its `IN ({})` filled) for `ids`, 500 at a time, through `run`."""
        found: list[tuple[Any, ...]] = []
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            found += run(sql.format(",".join("?" * len(chunk))), (target, *chunk))
        return found

    def complete(self, target: str, action_id: str, *, code: int, log: str = "",
                 height: int | None = None) -> None:
        """Record the node's result: `done` for code 0, `failed` otherwise (final)."""
        self.complete_many(target, [ActionResult(action_id, code, log, height)])

    def complete_many(self, target: str, results: Iterable[ActionResult]) -> None:
        """Complete several actions in one commit.

        An action never signed (its payload did not encode) may be completed as failed.
        """
        now = time.time()
        with self._tx() as db:
            self.store.execute_many(
                db,
                "INSERT INTO actions (target, action_id, state, code, log, height, "
                "completed_at, tx_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (target, action_id) DO UPDATE SET state=excluded.state, "
                "code=excluded.code, log=excluded.log, height=excluded.height, "
                "completed_at=excluded.completed_at, signed_tx=NULL, "
                "tx_hash=COALESCE(excluded.tx_hash, actions.tx_hash)",
                [(target, r.action_id, "done" if r.code == 0 else "failed", r.code,
                  r.log[:2000], r.height, now, r.landed_hash) for r in results])

    def release(self, target: str, action_id: str) -> None:
        """Forget an intent whose transaction can never land, so the action runs again."""
        with self._tx() as db:
            db.execute("DELETE FROM actions WHERE target=? AND action_id=? AND state='intended'",
                       (target, action_id))

    def pending(self, target: str) -> list[Intent]:
        """Intents not yet resolved, by nonce."""
        rows = self._rows("SELECT action_id, tx_hash, nonce, signed_tx, tx_id, intended_at, "
                          "prior_hashes FROM actions WHERE target=? AND state='intended' "
                          "ORDER BY nonce", (target,))
        return [Intent(a, h, n, json.loads(s) if s else None, t, at, tuple(json.loads(p)))
                for a, h, n, s, t, at, p in rows]

    def applied(self, target: str, action_id: str) -> bool:
        """True when the action reached a final result (done or failed) on `target`."""
        return not self.filter_new(target, [action_id])

    def filter_new(self, target: str, action_ids: Sequence[str]) -> list[str]:
        """The ids the ledger holds nothing for (not done, failed or intended), in order."""
        known = self._present("actions", target, action_ids)
        return [a for a in action_ids if a not in known]

    def sequenced_among(self, target: str, action_ids: Sequence[str]) -> set[str]:
        """Those of `action_ids` whose sequence slot is resolved: final, and nothing
        about them is left to order, so a run need not even fetch their documents."""
        return self._present("sequenced", target, action_ids)

    def _present(self, table: str, target: str, action_ids: Sequence[str]) -> set[str]:
        return {a for (a,) in self._in(self._rows, f"SELECT action_id FROM {table} WHERE "
                                       "target=? AND action_id IN ({})", target, action_ids)}

    def has_history(self, target: str) -> bool:
        """True when the ledger holds anything for `target`: applied, intended, ordered or
        quarantined (a run on an empty ledger for a target applied before would repeat it)."""
        return any(self._rows(f"SELECT 1 FROM {table} WHERE target=? LIMIT 1", (target,))
                   for table in ("actions", "sequenced", "quarantine"))

    def record_external(self, target: str, action_ids: Iterable[str], *, log: str) -> int:
        """Mark actions done that were applied outside this ledger (e.g. the 2023
        `db_sync_history` table); returns how many were new to the ledger."""
        now, ids = time.time(), list(dict.fromkeys(action_ids))
        with self._tx() as db:
            held = {a for (a,) in self._in(_reader(db), "SELECT action_id FROM actions WHERE "
                                           "target=? AND action_id IN ({})", target, ids)}
            new = [(target, a, log, now) for a in ids if a not in held]
            self.store.execute_many(db, "INSERT INTO actions (target, action_id, state, code, "
                                        "log, completed_at) VALUES (?, ?, 'done', 0, ?, ?)",
                                    new)
        return len(new)

    # -- sequence slots and gaps ------------------------------------------------------

    def mark_sequenced(self, target: str, slots: Iterable[SequenceSlot]) -> None:
        """Record sequence slots as resolved, in one commit.

        Write them only once every record before them in apply order is final, so the
        highest slot is always a safe restart point.
        """
        with self._tx() as db:
            self.store.execute_many(db, "INSERT INTO sequenced VALUES (?, ?, ?, ?) "
                                        "ON CONFLICT DO NOTHING",
                                    [(target, s.provider.lower(), s.sequence, s.action_id)
                                     for s in slots])

    def last_sequence(self, target: str, provider: str) -> int:
        """The highest sequence of `provider` resolved on `target` (0 when none)."""
        rows = self._rows("SELECT MAX(sequence) FROM sequenced WHERE target=? AND provider=?",
                          (target, provider.lower()))
        return int(rows[0][0] or 0)

    def sequence_start(self, target: str) -> dict[str, int]:
        """Provider (lower case) -> highest sequence resolved, for a `Sequencer`."""
        rows = self._rows("SELECT provider, MAX(sequence) FROM sequenced WHERE target=? "
                          "GROUP BY provider", (target,))
        return {p: int(n) for p, n in rows}

    def action_at(self, target: str, provider: str, sequence: int) -> str | None:
        """The action id that filled (provider, sequence) on `target`, if any."""
        rows = self._rows("SELECT action_id FROM sequenced WHERE target=? AND provider=? "
                          "AND sequence=?", (target, provider.lower(), sequence))
        return rows[0][0] if rows else None

    def gaps(self, target: str) -> dict[str, float]:
        """Provider -> when its open sequence gap was first seen."""
        return {p: t for p, t in self._rows(
            "SELECT provider, first_seen FROM gaps WHERE target=?", (target,))}

    def set_gaps(self, target: str, opened: dict[str, float]) -> None:
        """Replace the open gaps of `target` (a closed gap is simply absent)."""
        with self._tx() as db:
            db.execute("DELETE FROM gaps WHERE target=?", (target,))
            self.store.execute_many(db, "INSERT INTO gaps VALUES (?, ?, ?)",
                                    [(target, p.lower(), t) for p, t in opened.items()])

    # -- quarantine and status --------------------------------------------------------

    def quarantine(self, target: str, item_id: str, reason: Reason, detail: str, *,
                   action_id: str | None = None, provider: str | None = None) -> None:
        """Record a refused record; seeing it again bumps `times` and `last_seen`."""
        self.quarantine_many(target, [Refusal(item_id, reason, detail, action_id, provider)])

    def quarantine_many(self, target: str, refusals: Iterable[Refusal]) -> None:
        """Quarantine several refused records in one commit."""
        now = time.time()
        with self._tx() as db:
            self.store.execute_many(
                db,
                "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (target, item_id, reason) DO UPDATE SET "
                "last_seen=excluded.last_seen, detail=excluded.detail, "
                "times=quarantine.times+1",
                [(target, q.item_id, str(q.reason), q.action_id, q.provider, q.detail[:2000],
                  now, now) for q in refusals])

    def quarantined(self, target: str) -> list[QuarantineEntry]:
        """Every quarantined record of `target`, first seen first."""
        rows = self._rows("SELECT item_id, reason, detail, action_id, provider, first_seen, "
                          "last_seen, times FROM quarantine WHERE target=? "
                          "ORDER BY first_seen, item_id", (target,))
        return [QuarantineEntry(*row) for row in rows]

    def targets(self) -> list[str]:
        """Every target this ledger has applied to or quarantined for."""
        rows = self._rows("SELECT target FROM actions UNION SELECT target FROM quarantine "
                          "ORDER BY target", ())
        return [str(r[0]) for r in rows]

    def counts(self, target: str) -> LedgerCounts:
        """Totals by state, quarantined records and each provider's last sequence."""
        states = dict(self._rows("SELECT state, COUNT(*) FROM actions WHERE target=? "
                                 "GROUP BY state", (target,)))
        quarantined = self._rows("SELECT COUNT(*) FROM quarantine WHERE target=?", (target,))
        return LedgerCounts(int(states.get("done", 0)), int(states.get("failed", 0)),
                            int(states.get("intended", 0)), int(quarantined[0][0]),
                            self.sequence_start(target))


def open_ledger(url_or_path: str | Path) -> Ledger:
    """Open the ledger at a URL or path: `sqlite:///path`, a plain file path, ":memory:",
    or `postgresql://user:password@host:port/database` (shared by every worker)."""
    return Ledger(open_store(url_or_path))


def _reader(db: Any) -> Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]:
    return lambda sql, args: db.execute(sql, args).fetchall()
