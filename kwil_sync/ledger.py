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

`Ledger` is made of one part per concern, each in its module: the schema and the base
they share (`ledger_schema`), intents and results (`ledger_actions`), sequence slots
and gaps (`ledger_sequence`) and the quarantine (`ledger_quarantine`); the run lock
and the totals are here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kwil_sync.errors import KwilSyncError
from kwil_sync.ledger_actions import (
    ActionLedger,
    ActionResult,
    Intent,
    LedgerStateError,
    SignedAction,
)
from kwil_sync.ledger_quarantine import QuarantineEntry, QuarantineLedger
from kwil_sync.ledger_schema import INDEXES, TABLES
from kwil_sync.ledger_sequence import SequenceLedger, SequenceSlot
from kwil_sync.ledger_store import (
    LedgerStore,
    LedgerUnavailable,
    open_store,
    wait_hold,
)

__all__ = ["ActionResult", "Intent", "Ledger", "LedgerBusy", "LedgerCounts",
           "LedgerStateError", "LedgerUnavailable", "QuarantineEntry", "SequenceSlot",
           "SignedAction", "TABLES", "open_ledger"]


class LedgerBusy(KwilSyncError, RuntimeError):
    """Another run (on this or another worker) holds the target's ledger lock."""


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    """Totals for one target, for `kwil-sync status` and reports."""

    done: int
    failed: int
    pending: int
    quarantined: int
    providers: dict[str, int]  # provider -> last sequence resolved


class Ledger(ActionLedger, SequenceLedger, QuarantineLedger):
    """The exactly-once ledger; see the module docstring.

    Args:
        where: A SQLite file (created with its folder), ":memory:", or an opened
            `LedgerStore`; `open_ledger` also takes URLs.
    """

    def __init__(self, where: str | Path | LedgerStore) -> None:
        self.store: LedgerStore = (open_store(where) if isinstance(where, str | Path)
                                   else where)
        self.path = self.store.url
        self.store.script([*TABLES.values(), *INDEXES])

    def __repr__(self) -> str:
        return f"Ledger({self.path!r})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # -- status -------------------------------------------------------------------------

    def has_history(self, target: str) -> bool:
        """True when the ledger holds anything for `target`: applied, intended, ordered or
        quarantined (a run on an empty ledger for a target applied before would repeat it)."""
        return any(self._rows(f"SELECT 1 FROM {table} WHERE target=? LIMIT 1", (target,))
                   for table in ("actions", "sequenced", "quarantine"))

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
