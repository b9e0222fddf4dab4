"""The Irys GraphQL dialect, served by the bundler stand-in from what it received.

Built with graphql-core (`build_schema` + `graphql_sync`), so any well-formed query
against this schema works, with variables, fragments and aliases. Semantics modelled:
`ids`, `owners` (native address, case-insensitive), `tags` (values OR'd within a tag,
tags AND'd), `token`/`currency`, `first` or `limit` (default 10, at most 100), `after`
(a cursor), `order: ASC | DESC`, `timestamp: {from, to}` (ms, both inclusive). Records
are ordered by the receipt timestamp, which the stand-in keeps strictly increasing.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema, build_schema, graphql_sync

from kwil_sync.arweave.signers import b64url, b64url_decode
from kwil_sync.testing.bundler_store import ItemQuery, Store, StoredItem

__all__ = ["IRYS_SDL", "execute_graphql", "irys_schema"]

MAX_PAGE = 100

IRYS_SDL = """
scalar BigInt

enum SortOrder { ASC DESC }

input TagFilter { name: String!, values: [String!]! }

input TimestampFilter { from: BigInt, to: BigInt }

type Tag { name: String!, value: String! }

type Receipt {
  deadlineHeight: BigInt!
  signature: String!
  timestamp: BigInt!
  version: String!
}

type Transaction {
  id: String!
  address: String!
  token: String!
  currency: String!
  signature: String!
  timestamp: BigInt!
  tags: [Tag!]!
  receipt: Receipt
}

type TransactionEdge { cursor: String!, node: Transaction! }

type PageInfo { hasNextPage: Boolean!, endCursor: String }

type TransactionConnection { edges: [TransactionEdge!]!, pageInfo: PageInfo! }

type Query {
  transactions(
    ids: [String!]
    owners: [String!]
    tags: [TagFilter!]
    token: String
    currency: String
    first: Int
    limit: Int
    after: String
    order: SortOrder = ASC
    timestamp: TimestampFilter
  ): TransactionConnection!
}
"""


def irys_schema() -> GraphQLSchema:
    return build_schema(IRYS_SDL)


def _cursor(seq: int) -> str:
    return b64url(str(seq).encode())


def _seq(cursor: str) -> int:
    try:
        return int(b64url_decode(cursor).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"after: {cursor!r} is not a cursor this node issued") from exc


def _node(item: StoredItem) -> dict[str, Any]:
    receipt = item.receipt
    return {
        "id": item.id, "address": item.address, "token": item.token, "currency": item.token,
        "signature": item.signature, "timestamp": item.timestamp,
        "tags": [{"name": n, "value": v} for n, v in item.tags],
        "receipt": {"deadlineHeight": receipt["deadlineHeight"],
                    "signature": receipt["signature"], "timestamp": receipt["timestamp"],
                    "version": receipt["version"]},
    }


def _transactions(store: Store, args: dict[str, Any]) -> dict[str, Any]:
    size = args.get("first") if args.get("first") is not None else args.get("limit")
    size = 10 if size is None else int(size)
    if not 0 <= size <= MAX_PAGE:
        raise ValueError(f"first/limit must be 0..{MAX_PAGE}, got {size}")
    window = args.get("timestamp") or {}
    query = ItemQuery(
        ids=args.get("ids"), owners=args.get("owners"),
        tags=[(t["name"], t["values"]) for t in args.get("tags") or []],
        token=args.get("token") or args.get("currency"),
        since_ms=_int_or_none(window.get("from")), until_ms=_int_or_none(window.get("to")),
        after_seq=_seq(args["after"]) if args.get("after") else None,
        descending=args.get("order") == "DESC", limit=size + 1)
    items = store.query(query)
    page = items[:size]
    edges = [{"cursor": _cursor(item.seq), "node": _node(item)} for item in page]
    return {"edges": edges,
            "pageInfo": {"hasNextPage": len(items) > size,
                         "endCursor": edges[-1]["cursor"] if edges else None}}


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def execute_graphql(schema: GraphQLSchema, store: Store, body: dict[str, Any]
                    ) -> tuple[int, dict[str, Any]]:
    """Run one GraphQL request body (`query`, `variables`, `operationName`).

    Returns:
        (HTTP status, answer): 400 when the request did not run (a syntax or schema
        error), else 200, with resolver errors (e.g. a bad cursor) under `errors`.
    """
    root = {"transactions": lambda info, **args: _transactions(store, args)}
    result = graphql_sync(schema, body.get("query") or "", root_value=root,
                          variable_values=body.get("variables"),
                          operation_name=body.get("operationName"))
    return (400 if result.data is None else 200), dict(result.formatted)
