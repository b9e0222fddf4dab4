"""The read methods of the kwild stand-in: schema, databases, query and view calls.

Shapes, codes and messages follow kwil-db v0.9.4 and v0.10.2 `usersvc` (see
`kwil_node_rpc`); `RpcFault` and the result encoders are shared with it. `user.query`
runs one SELECT only, in the Kwil functions `kwil_node_dialect` maps onto SQLite, and
refuses anything else as kwild does; `refuse_queries` plays a node in private mode,
which refuses the method altogether (v0.9.4/v0.10.2 `usersvc/service.go` `Query`).
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from typing import Any, cast

from eth_utils import to_checksum_address

from kwil_sync.errors import KwilSyncError
from kwil_sync.kwil.arguments import PayloadError
from kwil_sync.kwil.errors import RPC_ENGINE_INTERNAL, RPC_ENGINE_NOT_FOUND, RPC_INVALID_PARAMS
from kwil_sync.kwil.payload import decode_call
from kwil_sync.testing.kwil_node_catalog import table_columns, tables_v09
from kwil_sync.testing.kwil_node_chain import Chain
from kwil_sync.testing.kwil_node_dialect import QueryRefused, install_functions, read_only_sql
from kwil_sync.testing.kwil_node_schema import Database, ExecutionError

__all__ = ["ReadMethods", "RpcFault", "reads_of"]

RPC_NO_QUERY_PRIVATE = -1007  # core/rpc/json/errors.go ErrorNoQueryWithPrivateRPC
_PRIVATE_MODE = "query is prohibited when authenticated calls are enforced (private mode)"

_ACTIONS_COLUMNS = ("namespace", "name", "raw_statement", "access_modifiers", "parameter_names",
                    "parameter_types", "return_names", "return_types", "returns_table",
                    "built_in")


class RpcFault(KwilSyncError):
    """A JSON-RPC error answer."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _json_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as kwild v0.9 marshals them (Go encodes []byte as base64)."""
    return b64(json.dumps(rows, default=lambda v: b64(v) if isinstance(v, bytes) else str(v))
                .encode())


def _type_of(value: Any) -> dict[str, Any]:
    name = {bool: "bool", int: "int8", float: "numeric", bytes: "bytea", list: "text"}.get(
        type(value), "text" if value is not None else "null")
    return {"name": name, "is_array": isinstance(value, list), "metadata": [0, 0]}


def _query_result(rows: list[dict[str, Any]], columns: list[str] | None = None) -> dict[str, Any]:
    names = columns if columns is not None else (list(rows[0]) if rows else [])
    values = [[row.get(c) for c in names] for row in rows]
    return {"column_names": names, "column_types": [_type_of(v) for v in (values[0] if values
                                                                             else [])],
            "values": values}


def _decode_param(value: dict[str, Any]) -> Any:
    """A v0.10 JSON EncodedValue ({type, data: [b64(01|bytes)]}) as a Python value."""
    data = [base64.b64decode(d) for d in value.get("data") or []]
    if not data or data[0][:1] != b"\x01":
        return None
    raw, name = data[0][1:], (value.get("type") or {}).get("name", "text")
    if name in ("int", "int8"):
        return int.from_bytes(raw, "big", signed=True)
    return raw.decode() if name in ("text", "numeric", "decimal", "uuid") else raw


class ReadMethods:
    """`user.schema`, `user.databases` (v0.9), `user.query` and `user.call`."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.version = chain.version
        self.refuse_queries = False  # private mode: `user.query` refused outright
        self._dialect_ready: set[int] = set()

    def _database(self, target: str) -> Database:
        database = self.chain.databases.get(target)
        if database is None:
            raise RpcFault(RPC_ENGINE_NOT_FOUND, "dataset not found" if self.version == "v0.9"
                           else f'namespace not found: "{target}"')
        return database

    def schema(self, params: dict[str, Any]) -> dict[str, Any]:
        database = self._database(str(params.get("dbid", "")))
        actions = [{"name": a.name, "annotations": [], "parameters": [p for p, _ in a.parameters],
                    "public": True, "modifiers": [m for m in a.modifiers() if m != "PUBLIC"],
                    "body": a.sql} for a in database.schema.actions]
        return {"schema": {"owner": database.owner.lower().removeprefix("0x"),
                           "name": database.name, "tables": tables_v09(database.conn),
                           "actions": actions,
                           "extensions": [], "procedures": [], "foreign_calls": []}}

    def databases(self, params: dict[str, Any]) -> dict[str, Any]:
        owner = str(params.get("owner") or "").lower().removeprefix("0x")
        listed = [{"dbid": d.target, "name": d.name, "owner": d.owner.lower()[2:]}
                  for d in self.chain.databases.values()
                  if not owner or d.owner.lower()[2:] == owner]
        return {"databases": listed}

    def query(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.refuse_queries:
            raise RpcFault(RPC_NO_QUERY_PRIVATE, _PRIVATE_MODE)
        sql = str(params.get("query", ""))
        with self.chain.lock:
            if self.version == "v0.9":
                rows = self._select(self._database(str(params.get("dbid", ""))), sql)
                return {"result": _json_rows(rows)}
            if "info.actions" in sql:
                return self._info_actions(sql, params.get("params") or {})
            if "info.columns" in sql:
                return self._info_columns(sql, params.get("params") or {})
            self._check_read_only(sql)  # refused in the words of the text as sent
            database, sql = self._qualified(sql)
            return _query_result(self._select(database, sql))

    def _check_read_only(self, sql: str) -> None:
        try:
            read_only_sql(sql, self.version)
        except QueryRefused as exc:
            raise RpcFault(RPC_ENGINE_INTERNAL, str(exc)) from None

    def _select(self, database: Database, sql: str) -> list[dict[str, Any]]:
        try:
            translated = read_only_sql(sql, self.version)
            if id(database.conn) not in self._dialect_ready:
                install_functions(database.conn)
                self._dialect_ready.add(id(database.conn))
            try:
                return database.select(translated)
            except sqlite3.OperationalError as exc:
                if "BLOB" not in str(exc):
                    raise
                return database.select(read_only_sql(sql, self.version, blobs=True))
        except Exception as exc:  # refusals and sqlite3 errors: kwild says -300 for both
            raise RpcFault(RPC_ENGINE_INTERNAL, str(exc)) from None

    def _info_columns(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        """v0.10 `info.columns`: every column of the namespace's tables."""
        wanted = _decode_param(params["$namespace"]) if "$namespace" in params else None
        columns = _selected(sql) or ["namespace", "table_name", "name", "data_type",
                                     "is_nullable", "default_value", "is_primary_key",
                                     "ordinal_position"]
        rows = [{"namespace": target, **column}
                for target, database in self.chain.databases.items()
                if wanted is None or target == wanted
                for column in table_columns(database.conn)]
        return _query_result(rows, columns)

    def _qualified(self, sql: str) -> tuple[Database, str]:
        """Find the namespace a v0.10 query names (`ns.table` or legacy `{ns}query`)."""
        legacy = re.match(r"\s*\{(\w+)\}(.*)", sql, re.S)
        if legacy:
            return self._database(legacy.group(1)), legacy.group(2)
        for target, database in self.chain.databases.items():
            pattern = re.compile(rf"\b{re.escape(target)}\.")
            if pattern.search(sql):
                return database, pattern.sub("", sql)
        raise RpcFault(RPC_ENGINE_INTERNAL, "the stand-in runs queries on one namespace: "
                                            "name its tables as namespace.table")

    def _info_actions(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        wanted = _decode_param(params["$namespace"]) if "$namespace" in params else None
        columns = _selected(sql) or list(_ACTIONS_COLUMNS)
        rows = []
        for target, database in self.chain.databases.items():
            if wanted is not None and target != wanted:
                continue
            for a in database.schema.actions:
                rows.append({
                    "namespace": target, "name": a.name, "raw_statement": a.sql,
                    "access_modifiers": a.modifiers(),
                    "parameter_names": [p for p, _ in a.parameters],
                    "parameter_types": [t for _, t in a.parameters], "return_names": [],
                    "return_types": [], "returns_table": False, "built_in": False})
        return _query_result(rows, columns)

    def call(self, params: dict[str, Any]) -> dict[str, Any]:
        body = params.get("body") or {}
        try:
            call = decode_call(self.version, base64.b64decode(body.get("payload") or ""))
        except (PayloadError, ValueError) as exc:
            raise RpcFault(RPC_INVALID_PARAMS, f"failed to convert action call: {exc}") from None
        sender = str(params.get("sender") or "")
        caller = _caller(sender) if sender and params.get("auth_type") else ""
        with self.chain.lock:
            database = self._database(call.target)
            try:
                rows = database.run(self.version, call.action, [a["value"] for a in
                                                                 call.arguments],
                                    caller=caller, txid="", height=self.chain.height,
                                    read_only=True)
            except ExecutionError as exc:
                if self.version == "v0.10" and not exc.refused:
                    return {"query_result": _query_result([]), "logs": "", "error": str(exc)}
                raise RpcFault(RPC_ENGINE_INTERNAL, str(exc)) from None
        if self.version == "v0.9":
            return {"result": _json_rows(rows), "logs": []}
        return {"query_result": _query_result(rows), "logs": "", "error": None}


def _caller(sender_hex: str) -> str:
    return str(to_checksum_address("0x" + sender_hex.lower().removeprefix("0x")))


def _selected(sql: str) -> list[str] | None:
    """The plain column names a `SELECT a, b FROM info.x` asks for (None for `*`)."""
    select = re.match(r"\s*select\s+(.*?)\s+from\s", sql, re.I | re.S)
    if not select or select.group(1).strip() == "*":
        return None
    return [c.strip() for c in select.group(1).split(",")]


def reads_of(service: Any) -> ReadMethods:
    """The `ReadMethods` behind a stand-in's `UserService` (e.g. to set `refuse_queries`)."""
    return cast(ReadMethods, service.methods["user.query"].__self__)
