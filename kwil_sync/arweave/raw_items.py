"""Raw data items out of their bundles: where an item is, and its bytes by Range reads.

A bundle (ANS-104) starts with a 32-byte item count N and N entries of (32-byte size,
32-byte id), then the items back to back; an item's offset is the header's length plus
the sizes before it. So an item's exact bytes take two small reads of the bundle's data
(`GET /{bundle id}` with `Range`): the count and entries, then the item itself.

Which bundle holds an item: gateways that index bundles report `bundledIn { id }`
(arweave.net, Goldsky, ar.io); arlocal reports null, so `BundleLocator` then lists the
bundle transactions of the item's block (`Bundle-Format=binary` at that height) and
finds the item in their headers. Servers that ignore `Range` (arlocal) answer 200 with
the whole body: `RangeReader` then reads the stream only up to the end it needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from kwil_sync.arweave.signers import b64url
from kwil_sync.errors import KwilSyncError

__all__ = ["BundleLocator", "ItemLocation", "RangeReader", "RawItemError", "ario_offsets",
           "bundle_offsets"]

_WORD, _ENTRY = 32, 64
MAX_BUNDLE_ITEMS = 1_000_000  # a header claiming more is not read


class RawItemError(KwilSyncError, RuntimeError):
    """A bundle or item could not be read or located; the message says which and why."""


class RangeReader:
    """Byte ranges of transaction data from a gateway's `GET /{id}`.

    Args:
        data_url: The gateway's base URL.
        http: An httpx.Client to use (not closed here); one is made otherwise.
        timeout: Seconds per request.
        retries: Tries per range for 5xx, 429 and connection failures.
    """

    def __init__(self, data_url: str, *, http: httpx.Client | None = None,
                 timeout: float = 30.0, retries: int = 3) -> None:
        self.url = data_url.rstrip("/")
        self._own = http is None
        self.http = http or httpx.Client(timeout=timeout, follow_redirects=True)
        self.retries = max(1, retries)

    def __repr__(self) -> str:
        return f"RangeReader({self.url!r})"

    def read(self, tx_id: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive) of `tx_id`'s data.

        Raises:
            RawItemError: Not found, shorter than `end`, or failing on every try.
        """
        last = ""
        for attempt in range(self.retries):
            try:
                return self._read_once(tx_id, start, end)
            except (httpx.TransportError, _Transient) as exc:
                last = str(exc) or type(exc).__name__
                time.sleep(min(2.0, 0.2 * 2**attempt))
        raise RawItemError(f"reading bytes {start}-{end} of {tx_id} from {self.url} failed "
                           f"{self.retries} times, last: {last}; is the gateway up?")

    def _read_once(self, tx_id: str, start: int, end: int) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}"}
        with self.http.stream("GET", f"{self.url}/{tx_id}", headers=headers) as response:
            status = response.status_code
            if status == 404:
                raise RawItemError(f"{self.url} does not serve the data of {tx_id} (404)")
            if status == 429 or status >= 500:
                raise _Transient(f"HTTP {status}")
            if status not in (200, 206):
                raise RawItemError(f"{self.url} answered HTTP {status} for a range of {tx_id}")
            skip = start if status == 200 else _range_start(response, start)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= skip + (end - start):
                    break  # a server that ignored Range: stop reading the rest
        data = bytes(body[skip:skip + end - start])
        if len(data) != end - start:
            raise RawItemError(f"{tx_id} at {self.url} ends before byte {end} (got "
                               f"{len(data)} of {end - start} bytes from {start})")
        return data

    def close(self) -> None:
        if self._own:
            self.http.close()


class _Transient(KwilSyncError):
    pass


def _range_start(response: httpx.Response, start: int) -> int:
    """How many bytes of a 206 body come before `start` (0 when it starts there)."""
    text = response.headers.get("content-range", "")
    try:
        first = int(text.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return 0
    if first > start:
        raise RawItemError(f"the gateway sent a range from byte {first}, {start} was asked")
    return start - first


def bundle_offsets(reader: RangeReader, bundle_id: str) -> dict[str, tuple[int, int]]:
    """Item id -> (offset, size) in bundle `bundle_id`, from two Range reads of its header.

    Raises:
        RawItemError: The bundle is not served, or its header is not a bundle header.
    """
    count = int.from_bytes(reader.read(bundle_id, 0, _WORD), "little")
    if count > MAX_BUNDLE_ITEMS:
        raise RawItemError(f"{bundle_id} claims {count} items: not a bundle header")
    entries = reader.read(bundle_id, _WORD, _WORD + _ENTRY * count) if count else b""
    offsets: dict[str, tuple[int, int]] = {}
    offset = _WORD + _ENTRY * count
    for i in range(count):
        entry = entries[_ENTRY * i:_ENTRY * (i + 1)]
        size = int.from_bytes(entry[:_WORD], "little")
        offsets.setdefault(b64url(entry[_WORD:]), (offset, size))
        offset += size
    return offsets


def ario_offsets(reader: RangeReader, item_id: str) -> tuple[str, int, int] | None:
    """Where an ar.io gateway says the item is: (root transaction, start, end) in its data.

    ar.io answers `HEAD /raw/{id}` with `X-AR-IO-Root-Transaction-Id` and
    `X-AR-IO-Root-Data-Item-Offset`, and the item's end from `X-AR-IO-Data-Item-Size`
    or `X-AR-IO-Root-Data-Offset` plus the payload's length (ar-io-node,
    docs/openapi.yaml). Offsets count from the root transaction's data, nested bundles
    included. None when the gateway gives no such headers (any other gateway).
    """
    try:
        response = reader.http.head(f"{reader.url}/raw/{item_id}")
    except httpx.HTTPError:
        return None
    headers = response.headers
    root = headers.get("x-ar-io-root-transaction-id")
    start = _int(headers.get("x-ar-io-root-data-item-offset"))
    size = _int(headers.get("x-ar-io-data-item-size"))
    data_start, length = (_int(headers.get("x-ar-io-root-data-offset")),
                          _int(headers.get("content-length")))
    if response.status_code != 200 or not root or start is None:
        return None
    if size is not None:
        return root, start, start + size
    if data_start is not None and length is not None:
        return root, start, data_start + length
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


@dataclass(frozen=True)
class ItemLocation:
    """Where a gateway says an item is: its bundle (if reported) and block height."""

    item_id: str
    bundle_id: str | None
    height: int | None


class BundleLocator:
    """Asks a gateway's GraphQL which bundle holds an item, or which bundles a block has.

    Args:
        graphql_url: A gateway-dialect GraphQL endpoint (Irys has no bundles to ask for).
        http: An httpx.Client to use (not closed here); one is made otherwise.
        max_bundles_per_height: Bundle transactions listed per block at most.
    """

    def __init__(self, graphql_url: str, *, http: httpx.Client | None = None,
                 timeout: float = 30.0, max_bundles_per_height: int = 500) -> None:
        self.url = graphql_url
        self._own = http is None
        self.http = http or httpx.Client(timeout=timeout)
        self.max_bundles = max_bundles_per_height

    def __repr__(self) -> str:
        return f"BundleLocator({self.url!r})"

    def locate(self, ids: Sequence[str]) -> dict[str, ItemLocation]:
        """The gateway's bundle and height of each id it lists (absent ids are missing)."""
        found: dict[str, ItemLocation] = {}
        for i in range(0, len(ids), 100):
            batch = list(ids[i:i + 100])
            # literals, not variables: gateways name their input types differently
            query = (f"query {{ transactions(ids: {json.dumps(batch)}, first: 100) {{ edges {{ "
                     "node { id bundledIn { id } block { height } } } } }")
            for edge in self._query(query)["transactions"]["edges"]:
                node = edge["node"]
                bundle, block = node.get("bundledIn") or {}, node.get("block") or {}
                found[node["id"]] = ItemLocation(node["id"], bundle.get("id"),
                                                 block.get("height"))
        return found

    def bundles_at(self, height: int) -> list[str]:
        """The ids of the ANS-104 bundle transactions mined at `height`."""
        ids: list[str] = []
        after = ""
        while len(ids) < self.max_bundles:
            query = (f"query {{ transactions(block: {{min: {int(height)}, max: {int(height)}}}, "
                     'tags: [{name: "Bundle-Format", values: ["binary"]}], first: 100'
                     f"{after}) {{ pageInfo {{ hasNextPage }} "
                     "edges { cursor node { id } } } }")
            answer = self._query(query)["transactions"]
            edges = answer["edges"]
            ids += [edge["node"]["id"] for edge in edges]
            if not edges or not answer["pageInfo"]["hasNextPage"]:
                break
            after = f", after: {json.dumps(edges[-1]['cursor'])}"
        return ids[:self.max_bundles]

    def _query(self, query: str) -> dict[str, Any]:
        try:
            response = self.http.post(self.url, json={"query": query})
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RawItemError(f"asking {self.url} where items are failed: {exc!r}") from exc
        if answer.get("errors") or not isinstance(answer.get("data"), dict):
            raise RawItemError(f"{self.url} refused the bundle query: "
                               f"{str(answer.get('errors'))[:300]}")
        data: dict[str, Any] = answer["data"]
        return data

    def close(self) -> None:
        if self._own:
            self.http.close()
