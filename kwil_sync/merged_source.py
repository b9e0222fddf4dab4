"""One log read from several GraphQL indexes: a k-way merge with a breaker per index.

Indexes lose items, list them late and disagree on order (an ar.io gateway orders the
items of one height by id, arlocal and Goldsky by arrival). `MergedSource` reads every
index it is given as one `RecordSource`:

- **merge**: each index is read in its own order; a record is released once every
  index still read has moved past its time (`timestamp_ms`), so a record one index
  lists late within the same time is not released twice or out of place. Records of
  one time are released in a fixed order (the first index, by configuration, that
  listed it, then that index's order), whatever index answered first;
- **deduplicate** by item id; when several indexes list an item at the same time, the
  row carrying the most proof (owner key, signature, anchor) is kept;
- **circuit breaker**: an index that fails (after its pager's own retries) is opened
  for the rest of the read and reported in `index_health().down`; the read goes on
  with the others, and fails only when none is left;
- **gaps**: an item some live index did not list by the time that index read past it
  (plus `settle_ms`, for indexes that list it later by design), or by its end, is
  reported as an `IndexGap(item_id, source)`.

Pages: each released batch is a page; a record's cursor and a page's `end_cursor` are
compound (`merged:` + base64url JSON of each index's own cursor) and resume each index
where it stood (a record's cursor resumes before its time group: the ledger skips the
repeats).
"""

from __future__ import annotations

import heapq
import json
import math
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from kwil_sync.arweave.graphql_queries import Page, TxRecord
from kwil_sync.arweave.signers import b64url, b64url_decode
from kwil_sync.sources import IndexGap, IndexHealth, RecordSource, SourceDown, Start

__all__ = ["MergedSource", "NamedSource"]

_CURSOR_PREFIX = "merged:"


@dataclass(frozen=True)
class NamedSource:
    """One index of a merged read: a name for reports and its `RecordSource`."""

    name: str
    source: RecordSource


@dataclass
class _Lane:
    """The reading state of one index."""

    rank: int
    named: NamedSource
    pages: Iterator[Page] | None = None
    frontier: float = -math.inf  # the time of the last record read
    done: bool = False
    down: str | None = None
    cursor: str | None = None  # the index's cursor past the last released time
    trail: deque[tuple[float, str, int | None]] = field(default_factory=deque)  # not passed
    height: int | None = None  # the block height this index has passed (gateways)


@dataclass
class _Entry:
    tx: TxRecord
    key: float
    order: tuple[int, int]  # (index rank, position in that index)
    seen_by: set[int] = field(default_factory=set)


def _key(tx: TxRecord) -> float:
    return math.inf if tx.timestamp_ms is None else float(tx.timestamp_ms)


def _proof_weight(tx: TxRecord) -> int:
    return sum(x is not None for x in (tx.owner_key, tx.signature, tx.anchor))


class MergedSource:
    """Several indexes of one log read as one; see the module docstring.

    Args:
        sources: The indexes, most trusted order first (it breaks ties of one time).
        settle_ms: How far past an item's time an index may still list it (an Irys
            item shows on a gateway only once its bundle is mined); a gap is reported
            once the index has read that far past it, or at the end of the read.
    """

    def __init__(self, sources: Sequence[NamedSource], *, settle_ms: int = 3_600_000) -> None:
        if not sources:
            raise ValueError("a merged read needs at least one index")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"index names must differ, got {names}")
        self.sources, self.settle_ms = list(sources), settle_ms
        self._health = IndexHealth()

    def __repr__(self) -> str:
        return f"MergedSource({[s.name for s in self.sources]})"

    def index_health(self) -> IndexHealth:
        """Gaps and indexes down found by the last `pages` read (so far, while reading)."""
        return self._health

    def pages(self, start: Start) -> Iterator[Page]:
        self._health = IndexHealth()
        cursors = _split_cursor(start.after)
        lanes = [_Lane(i, s) for i, s in enumerate(self.sources)]
        for lane in lanes:
            lane.cursor = cursors.get(lane.named.name)
            own = replace(start, after=lane.cursor)
            lane.pages = iter(lane.named.source.pages(own))
        try:
            yield from _Merge(lanes, self._health, self.settle_ms).run()
        finally:
            for lane in lanes:
                close = getattr(lane.pages, "close", None)
                if close is not None:
                    close()


SETTLED_IDS = 100_000  # settled ids remembered, so a late listing is not released again


class _Merge:
    def __init__(self, lanes: list[_Lane], health: IndexHealth, settle_ms: int) -> None:
        self.lanes, self.health, self.settle_ms = lanes, health, settle_ms
        self.buffered: dict[str, _Entry] = {}
        self.released: dict[str, _Entry] = {}  # released, not yet settled for every index
        self.heap: list[tuple[float, int, str]] = []  # released ids in log order, to settle
        self.count = 0
        self.settled: OrderedDict[str, None] = OrderedDict()

    def live(self) -> list[_Lane]:
        return [lane for lane in self.lanes if not lane.done and lane.down is None]

    def run(self) -> Iterator[Page]:
        while True:
            live = self.live()
            if all(lane.down is not None for lane in self.lanes):
                raise self._all_down()
            floor = min((lane.frontier for lane in live), default=math.inf)
            ready = sorted((e for e in self.buffered.values() if e.key < floor or not live),
                           key=lambda e: (e.key, e.order))
            if ready:
                yield self._release(ready, live_left=bool(live))
                continue
            if not live:
                self._settle(math.inf)
                return
            self._read(min(live, key=lambda lane: (lane.frontier, lane.rank)))

    def _read(self, lane: _Lane) -> None:
        assert lane.pages is not None
        try:
            page = next(lane.pages, None)
        except Exception as exc:  # any failure opens this index's breaker for the read
            lane.down = f"{type(exc).__name__}: {exc}"[:500]
            self.health.down.append(SourceDown(lane.named.name, lane.down))
            return
        if page is None:
            lane.done = True
            return
        for position, tx in enumerate(page.records):
            self._take(lane, tx, position)
        lane.done = not page.has_next
        self._settle(min((x.frontier for x in self.live()), default=math.inf))

    def _take(self, lane: _Lane, tx: TxRecord, position: int) -> None:
        key = _key(tx)
        lane.frontier = max(lane.frontier, key)
        lane.trail.append((key, tx.cursor, tx.height))
        if tx.id in self.settled:
            return
        entry = self.buffered.get(tx.id)
        if entry is not None:
            entry.seen_by.add(lane.rank)
            entry.order = min(entry.order, (lane.rank, position))
            if key == entry.key and _proof_weight(tx) > _proof_weight(entry.tx):
                entry.tx = tx
            return
        entry = self.released.get(tx.id)
        if entry is not None:
            entry.seen_by.add(lane.rank)
            return
        self.buffered[tx.id] = _Entry(tx, key, (lane.rank, position), {lane.rank})

    def _release(self, ready: list[_Entry], *, live_left: bool) -> Page:
        before = self._cursor()
        for entry in ready:
            del self.buffered[entry.tx.id]
            self.released[entry.tx.id] = entry
            self.count += 1
            heapq.heappush(self.heap, (entry.key, self.count, entry.tx.id))
        records = []
        for entry in ready:  # in time order: each index's own cursor moves past it
            for lane in self.lanes:
                while lane.trail and lane.trail[0][0] <= entry.key:
                    _, lane.cursor, height = lane.trail.popleft()
                    lane.height = height if height is not None else lane.height
            # An Irys row has no height: give it the height the gateways had passed at
            # its time, so a follow poll that stops on it knows where to re-read them.
            passed = max((x.height for x in self.lanes if x.height is not None), default=None)
            height = entry.tx.height if entry.tx.height is not None or entry.key == math.inf \
                else passed
            records.append(replace(entry.tx, cursor=before, height=height))
        return Page(records, self._cursor(), live_left or bool(self.buffered))

    def _settle(self, floor: float) -> None:
        """Report gaps for released items every live index has read far enough past."""
        while self.heap and (floor == math.inf or self.heap[0][0] + self.settle_ms < floor):
            _, _, item_id = heapq.heappop(self.heap)
            entry = self.released.pop(item_id)
            for lane in self.lanes:
                if lane.down is None and lane.rank not in entry.seen_by:
                    self.health.gaps.append(IndexGap(item_id, lane.named.name))
            self.settled[item_id] = None
            if len(self.settled) > SETTLED_IDS:
                self.settled.popitem(last=False)

    def _cursor(self) -> str:
        state = {lane.named.name: lane.cursor for lane in self.lanes if lane.cursor}
        return _CURSOR_PREFIX + b64url(json.dumps(state, sort_keys=True).encode())

    def _all_down(self) -> Exception:
        reasons = "; ".join(f"{d.source}: {d.reason}" for d in self.health.down)
        return ConnectionError(f"every index of the log is down ({reasons}); check the "
                               "GraphQL endpoints, then rerun")


def _split_cursor(after: str | None) -> dict[str, str]:
    if after is None:
        return {}
    if not after.startswith(_CURSOR_PREFIX):
        raise ValueError(f"cursor {after[:60]!r} was not issued by a merged read: resume "
                         "a merged read with the cursor it gave")
    try:
        state = json.loads(b64url_decode(after[len(_CURSOR_PREFIX):]))
    except ValueError as exc:
        raise ValueError(f"cursor {after[:60]!r} is damaged: {exc}") from exc
    return {str(k): str(v) for k, v in state.items()}
