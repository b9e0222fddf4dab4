"""GraphQL query text and answer parsing for the two `transactions` dialects.

Irys (a bundler's `/graphql`) and Arweave gateways (arweave.net, ar.io, Goldsky, arlocal)
share the connection shape (`edges{cursor node{...}}`, `pageInfo{hasNextPage}`) but not
their arguments or node fields:

| | Irys | gateway |
|---|---|---|
| page size, cursor | `first` (older nodes: `limit`), `after` | `first` (at most 100), `after` |
| order | `order: ASC / DESC` (upload timestamp, ms) | `sort: HEIGHT_ASC / HEIGHT_DESC` |
| range | `timestamp: {from, to}` (ms) | `block: {min, max}` (heights) |
| owner | `address` (native: 0x for Ethereum) | `owner{address key}` |
| extras | `timestamp`, `signature` | `anchor signature recipient block{height timestamp}` |

Arguments are written into the query as literals rather than as typed variables: the
servers name their input types differently (Irys' timestamp filter is a `BigInt` pair,
arlocal has no `endCursor`), and literals need no type names. Strings are JSON-escaped,
which is valid GraphQL string syntax.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kwil_sync.arweave.signers import b64url_decode

__all__ = [
    "Dialect",
    "Enum",
    "Order",
    "Page",
    "TagFilter",
    "TxRecord",
    "build_query",
    "normalize_tags",
    "parse_page",
]

Dialect = Literal["irys", "gateway"]
Order = Literal["ASC", "DESC"]
TagFilter = Mapping[str, Sequence[str]] | Sequence[tuple[str, Sequence[str]]]

_IRYS_NODE = "id address timestamp signature tags { name value }"
_GATEWAY_NODE = (
    "id anchor signature recipient owner { address key } tags { name value } "
    "block { height timestamp }"
)


@dataclass(frozen=True)
class TxRecord:
    """One transaction or data item as a GraphQL index reports it.

    Attributes:
        id: The transaction or data item id (base64url).
        owner_address: The signer's address: native (0x for Ethereum) on Irys,
            base64url(sha256(owner key)) on gateways.
        owner_key: The owner's public key bytes (gateways only).
        signature: The raw signature bytes, when the index reports them.
        anchor: The raw anchor bytes, when set and reported (gateways only).
        target: The recipient (base64url), when set (gateways only).
        tags: (name, value) pairs in the order the signer wrote them.
        timestamp_ms: Irys: upload time in ms; gateways: block time x 1000; None while
            a gateway transaction is pending.
        height: The block height (gateways), None on Irys and while pending.
        cursor: The opaque cursor that resumes paging right after this record.
    """

    id: str
    owner_address: str
    owner_key: bytes | None
    signature: bytes | None
    anchor: bytes | None
    target: str | None
    tags: list[tuple[str, str]] = field(hash=False)
    timestamp_ms: int | None
    height: int | None
    cursor: str

    def tag(self, name: str) -> str | None:
        """The value of the first tag called `name`, or None."""
        return next((value for tag_name, value in self.tags if tag_name == name), None)


@dataclass(frozen=True)
class Page:
    """One page of records; pass `end_cursor` as `after` to resume after it."""

    records: list[TxRecord]
    end_cursor: str | None
    has_next: bool


class Enum(str):
    """A GraphQL enum value: written bare, not quoted."""


def _literal(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a GraphQL literal")


def normalize_tags(tags: TagFilter | None) -> list[dict[str, list[str]]]:
    """Tag filters as `[{name, values}]`: values OR'd within a tag, tags AND'd."""
    if not tags:
        return []
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    out: list[dict[str, Any]] = []
    for name, values in pairs:
        if isinstance(values, str):  # a lone string would be read as characters
            raise TypeError(f"tag filter {name!r} needs a list of values, not a string")
        out.append({"name": name, "values": list(values)})
    return out


def build_query(
    dialect: Dialect,
    *,
    page_size: int,
    tags: TagFilter | None = None,
    owners: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    order: Order = "ASC",
    since_ms: int | None = None,
    until_ms: int | None = None,
    min_block: int | None = None,
    max_block: int | None = None,
    after: str | None = None,
    size_argument: str = "first",
) -> str:
    """The query text for one page.

    Raises:
        ValueError: If a filter does not exist in this dialect.
    """
    if order not in ("ASC", "DESC"):
        raise ValueError(f"order must be 'ASC' or 'DESC', got {order!r}")
    args: dict[str, Any] = {}
    if ids:
        args["ids"] = list(ids)
    if owners:
        args["owners"] = list(owners)
    tag_filters = normalize_tags(tags)
    if tag_filters:
        args["tags"] = tag_filters
    args[size_argument] = page_size
    if after:
        args["after"] = after
    if dialect == "irys":
        if min_block is not None or max_block is not None:
            raise ValueError("Irys has no block filter: use since_ms/until_ms")
        args["order"] = Enum(order)
        window = {k: v for k, v in (("from", since_ms), ("to", until_ms)) if v is not None}
        if window:
            args["timestamp"] = window
        node, page_info = _IRYS_NODE, "hasNextPage endCursor"
    elif dialect == "gateway":
        if since_ms is not None or until_ms is not None:
            raise ValueError("gateways have no timestamp filter: use min_block/max_block")
        args["sort"] = Enum("HEIGHT_ASC" if order == "ASC" else "HEIGHT_DESC")
        blocks = {k: v for k, v in (("min", min_block), ("max", max_block)) if v is not None}
        if blocks:
            args["block"] = blocks
        node, page_info = _GATEWAY_NODE, "hasNextPage"  # arlocal rejects endCursor
    else:
        raise ValueError(f"dialect must be 'irys' or 'gateway', got {dialect!r}")
    arg_text = ", ".join(f"{k}: {_literal(v)}" for k, v in args.items())
    return (
        f"query {{ transactions({arg_text}) {{ "
        f"pageInfo {{ {page_info} }} edges {{ cursor node {{ {node} }} }} }} }}"
    )


def _bytes_or_none(text: str | None) -> bytes | None:
    return b64url_decode(text) if text else None


def _parse_node(dialect: Dialect, node: Mapping[str, Any], cursor: str) -> TxRecord:
    tags = [(t["name"], t["value"]) for t in node.get("tags") or []]
    if dialect == "irys":
        timestamp = node.get("timestamp")
        return TxRecord(
            id=node["id"], owner_address=node.get("address") or "", owner_key=None,
            signature=_bytes_or_none(node.get("signature")), anchor=None, target=None,
            tags=tags, timestamp_ms=int(timestamp) if timestamp is not None else None,
            height=None, cursor=cursor,
        )
    owner = node.get("owner") or {}
    block = node.get("block")
    return TxRecord(
        id=node["id"], owner_address=owner.get("address") or "",
        owner_key=_bytes_or_none(owner.get("key")),
        signature=_bytes_or_none(node.get("signature")),
        anchor=_bytes_or_none(node.get("anchor")), target=node.get("recipient") or None,
        tags=tags, timestamp_ms=int(block["timestamp"]) * 1000 if block else None,
        height=int(block["height"]) if block else None, cursor=cursor,
    )


def parse_page(dialect: Dialect, data: Mapping[str, Any]) -> Page:
    """Turn a `transactions` answer into a Page.

    The next cursor is Irys' `pageInfo.endCursor` when given, else the last edge's
    cursor (gateways have no `endCursor`).

    Raises:
        KeyError: If the answer lacks the connection fields.
    """
    connection = data["transactions"]
    edges = connection["edges"]
    records = [_parse_node(dialect, edge["node"], edge["cursor"]) for edge in edges]
    page_info = connection.get("pageInfo") or {}
    end_cursor = page_info.get("endCursor") or (records[-1].cursor if records else None)
    return Page(records, end_cursor, bool(page_info.get("hasNextPage")) and bool(records))
