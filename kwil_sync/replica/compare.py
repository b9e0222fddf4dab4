"""Compare one table on two nodes by primary-key ranges, in the style of pg_comparator.

The table is cut into ranges of about `first_range_rows` rows on its first key
column (integer keys by arithmetic on min..max, text keys at boundary rows read with
`OFFSET`). Each node digests each range in SQL (`digest.digest_sql`); equal digests
end that range. A range that differs is cut into `fanout` parts and each part
digested again, until a range holds at most `leaf_rows` rows on either side; then
both nodes list that range's row hashes and the keys are named: missing (on the
source, not the replica), extra (on the replica only) or different.

Every row is hashed by its node once for the first ranges, and again only inside
ranges that differ: about n (1 + d / fanout) row hashes and d * fanout * log(n)
queries for d differences. The ranges still to look at wait on a stack, at most
`fanout` per level, and at most `cap` keys of each kind are kept (totals are exact),
so memory stays flat whatever the table's size.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kwil_sync.replica.digest import (
    INT_TYPES,
    TEXT_TYPES,
    KeyRange,
    UnsupportedTable,
    digest_sql,
    hashes_of,
    int_splits,
    row_hashes_sql,
    split_point_sql,
    stats_sql,
)
from kwil_sync.replica.node import QueryNode, TableSchema

__all__ = ["KeyDiff", "RangeComparator"]

T = TypeVar("T")
IN_FLIGHT = 4  # ranges asked at once: each node has its next digest queued, never idles


@dataclass
class KeyDiff:
    """Keys that differ in one table: totals, and the `cap` lowest keys of each kind."""

    cap: int = 100
    missing: list[list[Any]] = field(default_factory=list)
    extra: list[list[Any]] = field(default_factory=list)
    different: list[list[Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: {"missing": 0, "extra": 0,
                                                             "different": 0})

    def add(self, kind: str, key: tuple[Any, ...]) -> None:
        """Count a key; keep it if it is among the `cap` lowest of its kind so far (ranges
        are not finished in key order, and the keys shown must not depend on that)."""
        self.totals[kind] += 1
        kept: list[list[Any]] = getattr(self, kind)
        if self.cap and (len(kept) < self.cap or list(key) < kept[-1]):
            bisect.insort(kept, list(key))
            del kept[self.cap:]

    @property
    def count(self) -> int:
        return sum(self.totals.values())


@dataclass
class _Digest:
    rows: int
    lo: Any
    hi: Any
    digest: str | None

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> _Digest:
        row = rows[0] if rows else {}
        return cls(int(row.get("n") or 0), row.get("lo"), row.get("hi"), row.get("d"))


class RangeComparator:
    """Find the keys that differ in one table between `source` and `replica`.

    Args:
        source: The node holding the copy of record.
        replica: The node whose copy is checked.
        schema: The table (the same on both nodes: check that first).
        fanout: Parts a differing range is cut into.
        leaf_rows: A range with at most this many rows on each side is listed row by row.
        first_range_rows: Rows per first range (bounds the node's work per query).
        cap: Keys kept per kind of difference.
    """

    def __init__(self, source: QueryNode, replica: QueryNode, schema: TableSchema, *,
                 fanout: int = 16, leaf_rows: int = 64, first_range_rows: int = 10_000,
                 cap: int = 100) -> None:
        if not schema.key:
            raise UnsupportedTable(f"table {schema.name} has no primary key")
        key_type = next(c.type for c in schema.columns if c.name == schema.key[0]).lower()
        if key_type not in INT_TYPES | TEXT_TYPES:
            raise UnsupportedTable(f"table {schema.name}'s key column {schema.key[0]} is "
                                   f"{key_type}: ranges are cut on int or text keys only")
        self.nodes = (source, replica)
        self.schema, self.key = schema, schema.key[0]
        self.numeric = key_type in INT_TYPES
        self.fanout, self.leaf_rows = max(2, fanout), max(1, leaf_rows)
        self.first_range_rows = max(self.leaf_rows, first_range_rows)
        self.diff = KeyDiff(cap)
        self.rows = (0, 0)
        self.bounds = (0, 0)  # lowest and highest integer key on either side

    def _both(self, ask: Callable[[QueryNode], T]) -> list[T]:
        """Ask both nodes at once: each digests on its own machine."""
        return list(self._pool.map(ask, self.nodes))

    def run(self) -> KeyDiff:
        """Compare the whole table; `rows` holds each side's row count afterwards."""
        with ThreadPoolExecutor(2 * IN_FLIGHT, thread_name_prefix="verify") as self._pool:
            return self._run()

    def _digest(self, node: QueryNode, key_range: KeyRange) -> _Digest:
        return _Digest.of(node.select(digest_sql(node.table_ref(self.schema.name), self.schema,
                                                 key_range)))

    def _run(self) -> KeyDiff:
        stats = self._both(lambda n: _Digest.of(n.select(stats_sql(n.table_ref(self.schema.name),
                                                                   self.key))))
        self.rows = (stats[0].rows, stats[1].rows)
        present = [d for d in stats if d.rows]
        if self.numeric and present:  # integer ranges are cut by arithmetic inside these
            self.bounds = (min(int(d.lo) for d in present), max(int(d.hi) for d in present))
        whole = KeyRange()
        parts = -(-max(self.rows) // self.first_range_rows)
        stack = (self._split(whole, stats, parts) if parts > 1 else []) or [whole]
        stack.reverse()  # lowest keys first
        while stack:
            batch = [stack.pop() for _ in range(min(IN_FLIGHT, len(stack)))]
            asked = [[self._pool.submit(self._digest, node, key_range) for node in self.nodes]
                     for key_range in batch]
            for key_range, pair in zip(batch, asked, strict=True):
                digests = [future.result() for future in pair]
                if (digests[0].rows, digests[0].digest) == (digests[1].rows, digests[1].digest):
                    continue
                parts_of = [] if max(d.rows for d in digests) <= self.leaf_rows else \
                    self._split(key_range, digests, self.fanout)
                if len(parts_of) < 2:
                    self._leaf(key_range)
                else:
                    stack.extend(reversed(parts_of))
        return self.diff

    def _split(self, key_range: KeyRange, digests: list[_Digest], parts: int) -> list[KeyRange]:
        """Cut a range into up to `parts` ranges covering it exactly (none if it cannot)."""
        if self.numeric:
            lo = self.bounds[0] if key_range.lo is None else int(key_range.lo)
            hi = self.bounds[1] if key_range.hi is None else int(key_range.hi) - 1
            points: list[Any] = int_splits(lo, hi, parts)
        else:
            fuller = max(range(2), key=lambda i: digests[i].rows)
            node, rows = self.nodes[fuller], digests[fuller].rows
            points = []
            for i in range(1, parts):
                found = node.select(split_point_sql(node.table_ref(self.schema.name), self.key,
                                                    key_range, i * rows // parts))
                # The node's own order (its collation), never Python's: only repeats go.
                if found and found[0]["k"] not in (key_range.lo, *points[-1:]):
                    points.append(found[0]["k"])
            return _ranges(key_range, points)
        points = [p for p in points if (key_range.lo is None or p > key_range.lo)
                  and (key_range.hi is None or p < key_range.hi)]
        return _ranges(key_range, points)

    def _leaf(self, key_range: KeyRange) -> None:
        source, replica = self._both(lambda n: hashes_of(n.select(row_hashes_sql(
            n.table_ref(self.schema.name), self.schema, key_range)), self.schema.key))
        for key, row_hash in source.items():
            other = replica.pop(key, None)
            if other is None:
                self.diff.add("missing", key)
            elif other != row_hash:
                self.diff.add("different", key)
        for key in replica:
            self.diff.add("extra", key)


def _ranges(key_range: KeyRange, points: list[Any]) -> list[KeyRange]:
    """[lo, p1), [p1, p2), ..., [pn, hi): the range cut at `points` (none: not cut)."""
    edges = [key_range.lo, *points, key_range.hi]
    return [KeyRange(a, b) for a, b in zip(edges, edges[1:], strict=False)] if points else []
