"""Exactly once: intents stored before broadcast, results after, and what is applied.

The rules and why they give exactly once are in `kwil_sync.ledger`'s docstring; this
part keeps the `actions` table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.ledger_schema import LedgerTables, db_reader

__all__ = ["ActionLedger", "ActionResult", "Intent", "LedgerStateError", "SignedAction"]


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
class Intent:
    """A signed transaction recorded before broadcast and not yet resolved."""

    action_id: str
    tx_hash: str
    nonce: int
    signed_tx: dict[str, Any] | None
    tx_id: str | None
    intended_at: float
    prior_hashes: tuple[str, ...] = ()  # earlier signatures of the same action, replaced


class ActionLedger(LedgerTables):
    """The `actions` table: intents, completions, what is new (part of `Ledger`)."""

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
                db_reader(db), "SELECT action_id, state, tx_hash, prior_hashes FROM actions "
                    "WHERE target=? AND action_id IN ({})", target, [r.action_id for r in rows])}
            inserts, updates = [], []
            stored: set[str] = set()  # a packed transaction's bytes, once for its records
            for row in rows:
                action_id, tx_hash = row.action_id, row.tx_hash.lower()
                signed_text = None
                if row.signed_tx is not None and tx_hash not in stored:
                    signed_text = json.dumps(row.signed_tx)
                    stored.add(tx_hash)
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

    def release_many(self, target: str, action_ids: Sequence[str]) -> None:
        """Forget several intents in one commit: their transaction failed as a whole
        having applied nothing (a packed transaction), so each action runs again."""
        with self._tx() as db:
            self.store.execute_many(db, "DELETE FROM actions WHERE target=? AND action_id=? "
                                        "AND state='intended'",
                                    [(target, a) for a in action_ids])

    def pending(self, target: str) -> list[Intent]:
        """Intents not yet resolved, by nonce."""
        rows = self._rows("SELECT action_id, tx_hash, nonce, signed_tx, tx_id, intended_at, "
                          "prior_hashes FROM actions WHERE target=? AND state='intended' "
                          "ORDER BY nonce", (target,))
        # A packed transaction's bytes are stored with one of its records: all share them.
        signed = {h: json.loads(s) for _a, h, _n, s, *_rest in rows if s}
        return [Intent(a, h, n, signed.get(h), t, at, tuple(json.loads(p)))
                for a, h, n, _s, t, at, p in rows]

    def applied(self, target: str, action_id: str) -> bool:
        """True when the action reached a final result (done or failed) on `target`."""
        return not self.filter_new(target, [action_id])

    def filter_new(self, target: str, action_ids: Sequence[str]) -> list[str]:
        """The ids the ledger holds nothing for (not done, failed or intended), in order."""
        known = self._present("actions", target, action_ids)
        return [a for a in action_ids if a not in known]

    def record_external(self, target: str, action_ids: Iterable[str], *, log: str) -> int:
        """Mark actions done that were applied outside this ledger (e.g. the 2023
        `db_sync_history` table); returns how many were new to the ledger."""
        now, ids = time.time(), list(dict.fromkeys(action_ids))
        with self._tx() as db:
            held = {a for (a,) in self._in(db_reader(db), "SELECT action_id FROM actions WHERE "
                                           "target=? AND action_id IN ({})", target, ids)}
            new = [(target, a, log, now) for a in ids if a not in held]
            self.store.execute_many(db, "INSERT INTO actions (target, action_id, state, code, "
                                        "log, completed_at) VALUES (?, ?, 'done', 0, ?, ?)",
                                    new)
        return len(new)
