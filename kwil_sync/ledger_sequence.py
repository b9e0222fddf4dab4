"""Each provider's sequence slots resolved on a target, and its open gaps.

The highest slot is a safe restart point and tells re-read records from rewinds; a gap's
first sighting survives across runs so its timeout counts from then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kwil_sync.ledger_schema import LedgerTables

__all__ = ["SequenceLedger", "SequenceSlot"]


@dataclass(frozen=True, slots=True)
class SequenceSlot:
    """A provider's sequence number and the action that filled it on a target."""

    provider: str
    sequence: int
    action_id: str


class SequenceLedger(LedgerTables):
    """The `sequenced` and `gaps` tables (part of `Ledger`)."""

    def sequenced_among(self, target: str, action_ids: Sequence[str]) -> set[str]:
        """Those of `action_ids` whose sequence slot is resolved: final, and nothing
        about them is left to order, so a run need not even fetch their documents."""
        return self._present("sequenced", target, action_ids)

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
