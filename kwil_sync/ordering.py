"""Order verified records for apply (docs/RECORD.md, "Order").

Records arrive in index order, which is not each provider's write order: an upload
retried by the shim lands after later ones, and pages overlap when follow re-reads its
look-back window. The `Sequencer` takes records in any order and releases them in
apply order:

- per provider by `Sequence`, from the last sequence already resolved for the target;
  a missing number holds that provider's later records (never applied out of order)
  until it arrives or the gap times out, when the held records are quarantined with
  reason `sequence-gap` and the gap is reported;
- a record whose `Prev-Action-Id` is not the action id at the previous sequence is a
  fork and is quarantined (`chain-mismatch`); one that claims a sequence already
  taken by another action id is quarantined (`sequence-rewind`);
- across providers, merged by the order key (timestamp, provider, sequence, action
  id) without ever reordering one provider's records;
- repeats of an action id collapse: the first in order is released, later ones are
  reported as duplicates (they still fill their provider's sequence slot);
- 2023 records have no sequence: they pass straight through, ordered by their key.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kwil_sync.records import FIRST_PREV_ACTION_ID, SyncRecord
from kwil_sync.refusals import Reason

__all__ = ["Gap", "Quarantined", "Released", "Sequencer"]

History = Callable[[str, int], str | None]


@dataclass(frozen=True)
class Quarantined:
    """A record that must not be applied, why, and a detail (`Refusal.of` makes it a
    refusal; the record itself is kept for the caller)."""

    record: SyncRecord
    reason: Reason
    detail: str


@dataclass(frozen=True)
class Gap:
    """A provider's missing sequence numbers: `expected` up to `held_from - 1`."""

    provider: str
    expected: int
    held_from: int
    held: int
    opened_at: float


@dataclass
class Released:
    """What one `drain` releases: `ready` in apply order, plus what was set aside."""

    ready: list[SyncRecord] = field(default_factory=list)
    duplicates: list[SyncRecord] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


SEEN_LIMIT = 100_000


class _RecentIds:
    """A set of the most recent `limit` ids (oldest forgotten first)."""

    def __init__(self, limit: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def add(self, item: str) -> None:
        self._ids[item] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)


class Sequencer:
    """Per-provider sequencing with gap hold; see the module docstring.

    Args:
        start: Provider address -> last sequence already resolved in the target.
        gap_timeout_s: Seconds a gap may stay open before its held records are quarantined.
        history: Looks up the action id that filled (provider, sequence) in an earlier
            run, so re-read records are told apart from rewinds (the ledger's `sequenced`).
        gap_opened: Provider -> wall-clock time its gap was first seen (kept across runs).
        clock: Time source (seconds); `time.time` by default.
    """

    def __init__(self, start: Mapping[str, int] | None = None, gap_timeout_s: float = 600.0, *,
                 history: History | None = None, gap_opened: Mapping[str, float] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._last = {p.lower(): n for p, n in (start or {}).items()}
        self._timeout = gap_timeout_s
        self._history = history
        self._opened = {p.lower(): t for p, t in (gap_opened or {}).items()}
        self._clock = clock
        self._held: dict[str, dict[int, list[SyncRecord]]] = defaultdict(dict)
        # provider -> (sequence, action id) of the latest slot filled in this run; older
        # slots are asked of `history` (the ledger), so memory does not grow with the log
        self._slot: dict[str, tuple[int, str]] = {}
        # action ids released in this run, to collapse repeats; bounded so memory stays
        # flat on long logs (older repeats are caught by the ledger's filter_new)
        self._seen = _RecentIds(SEEN_LIMIT)
        self._pending = Released()
        self._legacy: list[SyncRecord] = []

    @property
    def last_sequence(self) -> dict[str, int]:
        """Provider (lower case) -> highest sequence released so far."""
        return dict(self._last)

    def held(self) -> list[SyncRecord]:
        """Records waiting for a gap to close, in order."""
        return sorted((r for seqs in self._held.values() for rs in seqs.values() for r in rs),
                      key=lambda r: r.order_key)

    def open_gaps(self) -> dict[str, Gap]:
        """Provider -> its open gap (what is missing and since when)."""
        gaps = {}
        for provider, seqs in self._held.items():
            if seqs:
                first = min(seqs)
                gaps[provider] = Gap(provider, self._last.get(provider, 0) + 1, first,
                                     sum(map(len, seqs.values())),
                                     self._opened.get(provider, self._clock()))
        return gaps

    def feed(self, records: Iterable[SyncRecord]) -> None:
        """Take records in any order; call `drain` to get what became ready."""
        for record in records:
            if record.sequence is None:
                self._legacy.append(record)
                continue
            provider = record.provider_address.lower()
            if record.sequence <= self._last.get(provider, 0):
                self._settle_past(provider, record)
            else:
                self._held[provider].setdefault(record.sequence, []).append(record)

    def drain(self) -> Released:
        """Release what is in order now; quarantine gaps older than the timeout."""
        queues: list[list[SyncRecord]] = [sorted(self._legacy, key=lambda r: r.order_key)]
        self._legacy = []
        now = self._clock()
        for provider in list(self._held):
            queues.append(self._advance(provider))
            if self._held[provider]:
                opened = self._opened.setdefault(provider, now)
                if now - opened >= self._timeout:
                    self._expire(provider)
            else:
                self._opened.pop(provider, None)
                del self._held[provider]
        for record in heapq.merge(*queues, key=lambda r: r.order_key):
            if record.action_id in self._seen:
                self._pending.duplicates.append(record)
            else:
                self._seen.add(record.action_id)
                self._pending.ready.append(record)
        released, self._pending = self._pending, Released()
        return released

    def finish(self, *, quarantine_held: bool) -> Released:
        """Drain, then (restore, end of the log) quarantine every record still held."""
        released = self.drain()
        if quarantine_held:
            for provider in list(self._held):
                self._expire(provider)
                del self._held[provider]
            released.gaps += self._pending.gaps
            released.quarantined += self._pending.quarantined
            self._pending = Released()
        return released

    def _advance(self, provider: str) -> list[SyncRecord]:
        seqs, out = self._held[provider], []
        while (nxt := self._last.get(provider, 0) + 1) in seqs:
            previous = self._action_at(provider, nxt - 1) if nxt > 1 else FIRST_PREV_ACTION_ID
            valid = []
            for record in sorted(seqs.pop(nxt), key=lambda r: r.order_key):
                if previous is None or record.prev_action_id == previous:
                    valid.append(record)
                else:
                    self._quarantine(record, Reason.CHAIN_MISMATCH, f"Prev-Action-Id "
                                     f"{record.prev_action_id}, but sequence {nxt - 1} is "
                                     f"{previous}")
            if not valid:
                break  # the slot stays open, as a gap
            winner, *others = valid
            self._slot[provider] = (nxt, winner.action_id)
            self._last[provider] = nxt
            out.append(winner)
            for other in others:
                self._settle_past(provider, other)
        return out

    def _settle_past(self, provider: str, record: SyncRecord) -> None:
        """A record for a sequence already filled: a re-read, a duplicate, or a rewind."""
        assert record.sequence is not None
        prior = self._action_at(provider, record.sequence)
        if prior == record.action_id or (prior is None and record.action_id in self._seen):
            self._pending.duplicates.append(record)
        else:
            self._quarantine(record, Reason.SEQUENCE_REWIND, f"sequence {record.sequence} of "
                             f"{record.provider_address} is already {prior or 'resolved'}")

    def _action_at(self, provider: str, sequence: int) -> str | None:
        latest = self._slot.get(provider)
        known = latest[1] if latest is not None and latest[0] == sequence else None
        if known is None and self._history is not None and sequence >= 1:
            known = self._history(provider, sequence)
        return known

    def _expire(self, provider: str) -> None:
        gap = self.open_gaps().get(provider)
        if gap is None:
            return
        self._pending.gaps.append(gap)
        for records in self._held[provider].values():
            for record in records:
                self._quarantine(record, Reason.SEQUENCE_GAP, f"sequence {gap.expected} to "
                                 f"{gap.held_from - 1} of {record.provider_address} missing")
        self._held[provider] = {}
        self._opened.pop(provider, None)

    def _quarantine(self, record: SyncRecord, reason: Reason, detail: str) -> None:
        self._pending.quarantined.append(Quarantined(record, reason, detail))
