"""The quarantine: every record refused, why, and when it was first and last seen."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from kwil_sync.ledger_schema import LedgerTables
from kwil_sync.refusals import Reason, Refusal

__all__ = ["QuarantineEntry", "QuarantineLedger"]


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


class QuarantineLedger(LedgerTables):
    """The `quarantine` table (part of `Ledger`)."""

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
