"""One database on one node, read through kwild's read-only query RPC and nothing else.

`user.query` takes SQL in Kwil's dialect and answers rows: on v0.9 as base64 JSON in
`result` (the query names the dataset's tables bare, `dbid` picks the dataset; kwil-db
v0.9.4 `internal/services/jsonrpc/usersvc/service.go` `Query`), on v0.10 as
`column_names` and `values` (tables named `namespace.table`, `$name` parameters;
v0.10.2 `node/services/jsonrpc/usersvc/service.go` `Query`). kwild runs it in a read
transaction and refuses anything that writes. Tables and primary keys come from
`user.schema` on v0.9 (`schema.tables`) and from the `info.columns` view on v0.10
(v0.10.2 `node/engine/interpreter/schema.sql`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.direct_http import TRANSPORT_ERRORS, DirectPost
from kwil_sync.kwil.errors import KwilError, NodeUnavailable

__all__ = ["Column", "QueryNode", "QueryRefused", "TableSchema"]

_COLUMNS_SQL = ("SELECT table_name, name, data_type, is_primary_key, ordinal_position "
                "FROM info.columns WHERE namespace = $namespace")
_V09_TYPES = {"int": "int8", "blob": "bytea", "decimal": "numeric"}  # v0.10 names


class QueryRefused(KwilError):
    """The node answered the query RPC with an error (refused, private mode, bad SQL)."""

    def __init__(self, url: str, code: int, message: str) -> None:
        super().__init__(f"{url} refused a read query (JSON-RPC error {code}): {message}")
        self.code, self.reason = code, message


@dataclass(frozen=True)
class Column:
    """A column as both versions can report it: name and kwild v0.10 type name."""

    name: str
    type: str


@dataclass(frozen=True)
class TableSchema:
    """A table's columns in order and its primary key columns in key order (empty: none)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]


class QueryNode:
    """Read one database (`target`: dbid on v0.9, namespace on v0.10) of one node.

    Args:
        url: The node's base URL.
        target: The database's dbid (v0.9) or namespace (v0.10) on this node.
        version: `"v0.9"`, `"v0.10"` or `"auto"`.
        timeout: Seconds per request (digests of big ranges take the node a while).

    `queries` counts the `user.query` calls made (schema reads included).
    """

    def __init__(self, url: str, target: str, *, version: str = "auto",
                 timeout: float = 120.0) -> None:
        self.url, self.target = url.rstrip("/"), target
        self._client = KwilClient(self.url, version=version, timeout=timeout)
        self._post = DirectPost(self.url, timeout)
        self.queries = 0

    def __repr__(self) -> str:
        return f"QueryNode({self.url!r}, {self.target!r})"

    @property
    def version(self) -> str:
        return self._client.version

    def table_ref(self, table: str) -> str:
        """How a query names a table: bare on v0.9, `namespace.table` on v0.10."""
        return table if self.version == "v0.9" else f"{self.target}.{table}"

    def select(self, sql: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Rows of one read query; text parameters are v0.10 only.

        Raises:
            QueryRefused: The node answered with an error.
            NodeUnavailable: The node did not answer.
        """
        self.queries += 1
        body: dict[str, Any] = {"query": sql}
        if self.version == "v0.9":
            body["dbid"] = self.target
        elif params:
            body["params"] = {name: _text_param(value) for name, value in params.items()}
        result = self._rpc("user.query", body)
        if self.version == "v0.9":
            return list(json.loads(base64.b64decode(result.get("result") or "W10=")) or [])
        names = result.get("column_names") or []
        return [dict(zip(names, row, strict=False)) for row in result.get("values") or []]

    def tables(self) -> dict[str, TableSchema]:
        """Every table of the database with its columns and primary key."""
        if self.version == "v0.9":
            schema = self._rpc("user.schema", {"dbid": self.target}).get("schema") or {}
            return {t["name"]: _table_v09(t) for t in schema.get("tables") or []}
        found: dict[str, list[dict[str, Any]]] = {}
        for row in self.select(_COLUMNS_SQL, {"$namespace": self.target}):
            found.setdefault(str(row["table_name"]), []).append(row)
        out = {}
        for name, rows in found.items():
            rows.sort(key=lambda r: int(r.get("ordinal_position") or 0))
            out[name] = TableSchema(name, tuple(Column(str(r["name"]), str(r["data_type"]))
                                                for r in rows),
                                    tuple(str(r["name"]) for r in rows if r["is_primary_key"]))
        return out

    def _rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": self.queries, "method": method, "params": params}
        try:
            status, content = self._post.post("/rpc/v1", json.dumps(request).encode())
        except TRANSPORT_ERRORS as exc:
            raise NodeUnavailable(self.url, type(exc).__name__) from exc
        try:
            answer = json.loads(content)
        except ValueError:
            raise QueryRefused(self.url, status, content[:200].decode(errors="replace")) \
                from None
        error = answer.get("error") if isinstance(answer, dict) else None
        if error or not isinstance(answer, dict) or not isinstance(answer.get("result"), dict):
            error = error or {}
            raise QueryRefused(self.url, int(error.get("code", status)),
                               str(error.get("message", "no result in the answer")))
        return dict(answer["result"])


def _text_param(value: str) -> dict[str, Any]:
    """A v0.10 JSON EncodedValue of a text (a 1 byte "not null" prefix, then the bytes)."""
    return {"type": {"name": "text", "is_array": False, "metadata": [0, 0]},
            "data": [base64.b64encode(b"\x01" + value.encode()).decode()]}


def _table_v09(table: dict[str, Any]) -> TableSchema:
    columns, key = [], []
    for column in table.get("columns") or []:
        type_name = str((column.get("type") or {}).get("name", ""))
        columns.append(Column(column["name"], _V09_TYPES.get(type_name, type_name)))
        if any(str(a.get("type", "")).upper() == "PRIMARY_KEY"
               for a in column.get("attributes") or []):
            key.append(column["name"])
    for index in table.get("indexes") or []:
        if str(index.get("type", "")).upper() == "PRIMARY":
            key = list(index.get("columns") or [])
    return TableSchema(table["name"], tuple(columns), tuple(key))
