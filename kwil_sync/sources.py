"""Where records come from: the `RecordSource` and `DocumentFetcher` interfaces.

A source pages through one database's records oldest first; a fetcher downloads the
documents. `GraphQLSource` adapts `kwil_sync.arweave.graphql.GraphQLPager` (Irys or a
gateway); `kwil_sync.arweave.data.GatewayDataClient` is a `DocumentFetcher` as it is.

Where to start is a `Start`: a cursor (resume right after a record), an Irys upload
time or a gateway block height. Follow re-reads a window behind where it stopped
(`follow_start`), because an index may show a record late: Irys orders by its own
upload clock, and gateways list items only once their bundle is mined.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.data import DocumentNotFound, FetchResult
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.graphql_queries import Page, TxRecord
from kwil_sync.arweave.signers import b64url
from kwil_sync.records import APPLICATION, RECORD_TYPE

__all__ = ["DocumentFetcher", "GraphQLSource", "IndexGap", "IndexHealth", "ItemSource",
           "Position", "RecordSource", "ReportsIndexHealth", "SourceDown", "Start",
           "follow_start"]


@dataclass(frozen=True)
class Start:
    """Where to begin reading; unset fields do not restrict.

    Attributes:
        after: Resume right after the record with this cursor.
        since_ms: Irys: records uploaded at or after this time (ms).
        min_block: Gateways: records in this block or later.
    """

    after: str | None = None
    since_ms: int | None = None
    min_block: int | None = None


@dataclass(frozen=True)
class Position:
    """Where a run stopped: the last record read (its cursor, time and block)."""

    cursor: str | None = None
    timestamp_ms: int | None = None
    height: int | None = None


def follow_start(position: Position | None, *, lookback_ms: int = 120_000,
                 lookback_blocks: int = 5) -> Start:
    """Where the next follow poll begins: the look-back window behind `position`.

    No cursor is used: a window is re-read instead, and the ledger skips what it holds.
    """
    if position is None:
        return Start()
    since = None if position.timestamp_ms is None else max(0, position.timestamp_ms -
                                                            lookback_ms)
    block = None if position.height is None else max(0, position.height - lookback_blocks)
    return Start(since_ms=since, min_block=block)


class RecordSource(Protocol):
    """Pages of one database's records, oldest first."""

    def pages(self, start: Start) -> Iterator[Page]: ...


@dataclass(frozen=True)
class IndexGap:
    """An item of the log that one index (`source`, by name) did not list."""

    item_id: str
    source: str


@dataclass(frozen=True)
class SourceDown:
    """An index that failed during a read (its breaker opened), and why."""

    source: str
    reason: str


@dataclass
class IndexHealth:
    """What a read from several indexes found: items some index lacks, indexes down."""

    gaps: list[IndexGap] = field(default_factory=list)
    down: list[SourceDown] = field(default_factory=list)


@runtime_checkable
class ReportsIndexHealth(Protocol):
    """A source that reads several indexes (`kwil_sync.merged_source.MergedSource`)."""

    def index_health(self) -> IndexHealth: ...


class DocumentFetcher(Protocol):
    """Documents by id, results in input order with an error per id."""

    def fetch_many(self, ids: Iterable[str]) -> Iterator[FetchResult]: ...


class GraphQLSource:
    """The records of `original_dbid` from an Irys node or an Arweave gateway.

    Args:
        pager: The GraphQL pager (its dialect decides which `Start` fields apply).
        original_dbid: The database whose log is read.
    """

    def __init__(self, pager: GraphQLPager, original_dbid: str) -> None:
        self.pager, self.original_dbid = pager, original_dbid

    def __repr__(self) -> str:
        return f"GraphQLSource({self.pager!r}, {self.original_dbid!r})"

    def pages(self, start: Start) -> Iterator[Page]:
        tags = {"Application": [APPLICATION], "Type": [RECORD_TYPE],
                "Original-DBID": [self.original_dbid]}
        window: dict[str, Any] = ({"since_ms": start.since_ms} if self.pager.dialect == "irys"
                                  else {"min_block": start.min_block})
        return self.pager.pages(tags, order="ASC", after=start.after, **window)


class ItemSource:
    """Records held locally as data items (a bundle file, an outbox export, tests).

    Serves as both `RecordSource` and `DocumentFetcher`. Rows carry the full item proof
    (owner key, signature, anchor, target), as a gateway reports them. Cursors are
    positions in `items`.

    Args:
        items: The data items, in log order.
        timestamps: One time (ms) per item; default: its Created-At tag, else 0.
        page_size: Records per page.
    """

    def __init__(self, items: Sequence[DataItem], *, timestamps: Sequence[int] | None = None,
                 page_size: int = 100) -> None:
        if timestamps is not None and len(timestamps) != len(items):
            raise ValueError(f"{len(timestamps)} timestamps for {len(items)} items")
        self.items = list(items)
        self.timestamps = list(timestamps) if timestamps is not None else [
            int(item.tag("Created-At") or 0) for item in self.items]
        self.page_size = page_size
        self._data = {item.id: bytes(item.data) for item in self.items}

    def __repr__(self) -> str:
        return f"ItemSource({len(self.items)} items)"

    def rows(self) -> list[TxRecord]:
        """Every item as the row a gateway would list."""
        return [TxRecord(id=item.id, owner_address=item.owner_address, owner_key=item.owner,
                         signature=item.signature, anchor=item.anchor,
                         target=b64url(item.target) if item.target else None,
                         tags=list(item.tags), timestamp_ms=ts, height=None, cursor=str(i))
                for i, (item, ts) in enumerate(zip(self.items, self.timestamps, strict=True))]

    def pages(self, start: Start) -> Iterator[Page]:
        first = int(start.after) + 1 if start.after is not None else 0
        rows = [r for r in self.rows()[first:]
                if start.since_ms is None or (r.timestamp_ms or 0) >= start.since_ms]
        if not rows:
            yield Page([], None, False)
            return
        for i in range(0, len(rows), self.page_size):
            chunk = rows[i:i + self.page_size]
            yield Page(chunk, chunk[-1].cursor, i + self.page_size < len(rows))

    def fetch_many(self, ids: Iterable[str]) -> Iterator[FetchResult]:
        for id in ids:
            data = self._data.get(id)
            error = None if data is not None else DocumentNotFound(id, f"no item {id} here")
            yield FetchResult(id, data, error)
