"""Proof from an item's own bytes, for records an index cannot prove.

An index that reports no anchor (Irys, arlocal) or no owner key or signature leaves a
2023 record's item signature unprovable from the row: the 2023 Bundlr client gave
every item a random anchor, and the 2023 `Signature` tag binds only the Action-Id. The
data item's exact bytes settle it: `ByteProver` finds each item's bundle (the gateway's
`bundledIn`, else the bundles of the item's block), reads the bundle's header and then
the item with Range requests (one span per bundle for all the items wanted there,
bundles read concurrently), parses it and keeps it only when its id is the one asked
for and its signature verifies. Items not found that way (an index that does not list
them, nested bundles) are asked of the gateway's ar.io offset headers (`HEAD
/raw/{id}`), one request each. The caller then checks the record against those bytes
(`kwil_sync.proof_checks`).

Only the rows that need it are proven; headers and block listings are cached for the
run, so a chunk of items from one bundle costs one locate query, two header reads and
one item read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import httpx

from kwil_sync.arweave.ans104 import DataItem, DataItemError
from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.arweave.raw_items import (
    BundleLocator,
    ItemLocation,
    RangeReader,
    RawItemError,
    ario_offsets,
    bundle_offsets,
)
from kwil_sync.errors import KwilSyncError

__all__ = ["ByteProver", "ItemProver", "ProofUnavailable"]

MAX_SPAN = 8 << 20  # items of one bundle further apart than this are read one by one
_CACHED_BUNDLES = 256


class ProofUnavailable(KwilSyncError):
    """The item's bytes could not be found or did not prove it; the message says why."""


class ItemProver(Protocol):
    """Finds the raw, verified data item of each row."""

    def prove_many(self, rows: Sequence[TxRecord]) -> dict[str, DataItem | ProofUnavailable]:
        ...


class ByteProver:
    """Raw data items from a gateway, by their bundles; see the module docstring.

    Args:
        graphql_url: The gateway's GraphQL (gateway dialect) to locate items.
        data_url: The gateway serving bundle data at `/{id}` (Range requests).
        concurrency: Bundles read at once.
        max_item_bytes: Larger items are not read.
        timeout: Seconds per request.
    """

    def __init__(self, graphql_url: str, data_url: str, *, concurrency: int = 8,
                 max_item_bytes: int = 1 << 20, timeout: float = 30.0) -> None:
        limits = httpx.Limits(max_connections=concurrency + 1,
                              max_keepalive_connections=concurrency + 1)
        self.http = httpx.Client(timeout=timeout, limits=limits, follow_redirects=True)
        self.locator = BundleLocator(graphql_url, http=self.http)
        self.reader = RangeReader(data_url, http=self.http)
        self.concurrency, self.max_item_bytes = max(1, concurrency), max_item_bytes
        self._lock = threading.Lock()
        self._headers: OrderedDict[str, dict[str, tuple[int, int]]] = OrderedDict()
        self._heights: OrderedDict[int, list[str]] = OrderedDict()

    def __repr__(self) -> str:
        return f"ByteProver({self.locator.url!r}, {self.reader.url!r})"

    def prove_many(self, rows: Sequence[TxRecord]) -> dict[str, DataItem | ProofUnavailable]:
        """Each row's verified data item, or why it is unavailable. Never raises."""
        ids = list(dict.fromkeys(row.id for row in rows))
        out: dict[str, DataItem | ProofUnavailable] = {}
        if not ids:
            return out
        try:
            located = self.locator.locate(ids)
        except RawItemError as exc:
            located, out = {}, {id: ProofUnavailable(str(exc)) for id in ids}
        by_bundle: dict[str, list[str]] = {}
        for id in ids:
            if id in out:
                continue
            place = located.get(id)
            if place is None:
                out[id] = ProofUnavailable(f"{self.locator.url} does not list {id} (yet)")
                continue
            try:
                bundle = place.bundle_id or self._find_bundle(place)
            except RawItemError as exc:
                out[id] = ProofUnavailable(str(exc))
                continue
            by_bundle.setdefault(bundle, []).append(id)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="byte-proofs") as pool:
            for found in pool.map(lambda kv: self._read_items(*kv), by_bundle.items()):
                out.update(found)
            missed = [id for id, result in out.items() if isinstance(result, ProofUnavailable)]
            for id, result in zip(missed, pool.map(self._by_offset_headers, missed),
                                  strict=True):
                if isinstance(result, DataItem):
                    out[id] = result
        return out

    def _by_offset_headers(self, id: str) -> DataItem | ProofUnavailable:
        """The item from where an ar.io gateway's offset headers place it, if it does."""
        place = ario_offsets(self.reader, id)
        if place is None:
            return ProofUnavailable(f"{self.reader.url} gives no offsets for {id}")
        root, start, end = place
        if end - start > self.max_item_bytes:
            return ProofUnavailable(f"{id} is {end - start} bytes, over {self.max_item_bytes}")
        try:
            return _checked(id, self.reader.read(root, start, end), root)
        except RawItemError as exc:
            return ProofUnavailable(str(exc))

    def _find_bundle(self, place: ItemLocation) -> str:
        """The bundle of an item its gateway lists without `bundledIn` (arlocal)."""
        if place.height is None:
            raise RawItemError(f"{place.item_id} is not mined yet: no bundle to read it from")
        for bundle in self._bundles_at(place.height):
            if place.item_id in self._offsets(bundle):
                return bundle
        raise RawItemError(f"no bundle of block {place.height} holds {place.item_id}")

    def _bundles_at(self, height: int) -> list[str]:
        with self._lock:
            if height in self._heights:
                return self._heights[height]
        bundles = self.locator.bundles_at(height)
        with self._lock:
            self._heights[height] = bundles
            if len(self._heights) > _CACHED_BUNDLES:
                self._heights.popitem(last=False)
        return bundles

    def _offsets(self, bundle: str) -> dict[str, tuple[int, int]]:
        with self._lock:
            if bundle in self._headers:
                self._headers.move_to_end(bundle)
                return self._headers[bundle]
        offsets = bundle_offsets(self.reader, bundle)
        with self._lock:
            self._headers[bundle] = offsets
            if len(self._headers) > _CACHED_BUNDLES:
                self._headers.popitem(last=False)
        return offsets

    def _read_items(self, bundle: str, ids: list[str]) -> dict[str, DataItem | ProofUnavailable]:
        out: dict[str, DataItem | ProofUnavailable] = {}
        try:
            offsets = self._offsets(bundle)
        except RawItemError as exc:
            return {id: ProofUnavailable(str(exc)) for id in ids}
        wanted = []
        for id in ids:
            if id not in offsets:
                out[id] = ProofUnavailable(f"bundle {bundle} does not hold {id}")
            elif offsets[id][1] > self.max_item_bytes:
                out[id] = ProofUnavailable(f"{id} is {offsets[id][1]} bytes, over "
                                           f"{self.max_item_bytes}")
            else:
                wanted.append(id)
        for group in _spans(wanted, offsets):
            start = offsets[group[0]][0]
            end = max(offsets[id][0] + offsets[id][1] for id in group)
            try:
                span = self.reader.read(bundle, start, end)
            except RawItemError as exc:
                out.update({id: ProofUnavailable(str(exc)) for id in group})
                continue
            for id in group:
                offset, size = offsets[id]
                out[id] = _checked(id, span[offset - start:offset - start + size], bundle)
        return out

    def close(self) -> None:
        self.http.close()


def _spans(ids: list[str], offsets: dict[str, tuple[int, int]]) -> list[list[str]]:
    """Ids in bundle order, cut where a span would exceed MAX_SPAN."""
    groups: list[list[str]] = []
    for id in sorted(ids, key=lambda i: offsets[i][0]):
        offset, size = offsets[id]
        if groups and offset + size - offsets[groups[-1][0]][0] <= MAX_SPAN:
            groups[-1].append(id)
        else:
            groups.append([id])
    return groups


def _checked(id: str, raw: bytes, bundle: str) -> DataItem | ProofUnavailable:
    try:
        item = DataItem.parse(raw)
    except DataItemError as exc:
        return ProofUnavailable(f"the bytes of {id} in bundle {bundle} are not a data item: "
                                f"{exc}")
    if item.id != id:
        return ProofUnavailable(f"bundle {bundle} holds {item.id} where its header says {id}")
    if not item.verify():
        return ProofUnavailable(f"the signature of {id} in bundle {bundle} does not verify")
    return item
