"""kwild's user JSON-RPC methods, in v0.9 or v0.10 shapes, over the stand-in's `Chain`.

Shapes, codes and messages follow kwil-db v0.9.4 `internal/services/jsonrpc/usersvc`
and v0.10.2 `node/services/jsonrpc/usersvc` (PROTOCOLS.md section 3).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

from eth_utils import to_checksum_address

from kwil_sync.kwil.errors import (
    RPC_BROADCAST_REJECTED,
    RPC_ENGINE_INTERNAL,
    RPC_ENGINE_NOT_FOUND,
    RPC_INVALID_PARAMS,
    RPC_TX_INTERNAL,
    RPC_TX_NOT_FOUND,
    RPC_UNKNOWN_METHOD,
)
from kwil_sync.kwil.payload import PayloadError, decode_call
from kwil_sync.testing.kwil_node_chain import Chain, Duplicate, Rejected, TxRecord
from kwil_sync.testing.kwil_node_schema import Database, ExecutionError

__all__ = ["RpcFault", "UserService"]

COMMIT_TIMEOUT = 10.0  # kwild's default broadcast commit timeout
_TX_TIMEOUT_CODE = 10  # v0.10 CodeTxTimeoutCommit
_ACTIONS_COLUMNS = ("namespace", "name", "raw_statement", "access_modifiers", "parameter_names",
                    "parameter_types", "return_names", "return_types", "returns_table",
                    "built_in")


class RpcFault(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _json_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as kwild v0.9 marshals them (Go encodes []byte as base64)."""
    return _b64(json.dumps(rows, default=lambda v: _b64(v) if isinstance(v, bytes) else str(v))
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


class UserService:
    """The `user.*` methods of one stand-in node."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.version = chain.version
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "user.ping": lambda p: {"message": "pong"},
            "user.version": self.api_version, "user.health": self.health,
            "user.chain_info": self.chain_info, "user.account": self.account,
            "user.broadcast": self.broadcast, "user.tx_query": self.tx_query,
            "user.estimate_price": lambda p: {"price": "0"}, "user.call": self.call,
            "user.query": self.query,
        }
        if self.version == "v0.9":
            self.methods.update({"user.schema": self.schema, "user.databases": self.databases})

    def handle(self, method: str, params: Any) -> Any:
        handler = self.methods.get(method)
        if handler is None:
            raise RpcFault(RPC_UNKNOWN_METHOD, "unknown method")
        if not isinstance(params, dict):
            raise RpcFault(RPC_INVALID_PARAMS, "params must be an object")
        return handler(params)

    # -- node information -------------------------------------------------------------

    def chain_info(self, _: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {"chain_id": self.chain.chain_id,
                                "block_height": self.chain.height,
                                "block_hash": self.chain.block_hash}
        if self.version == "v0.10":
            info["gas"] = False
        return info

    def api_version(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"service": "user", "api_ver": "0.2.0", "major": 0, "minor": 2, "patch": 0,
                "kwil_ver": f"{self.version.removeprefix('v')}-standin"}

    def health(self, params: dict[str, Any]) -> dict[str, Any]:
        age = int((time.time() - self.chain.block_time) * 1000)
        return {**self.chain_info(params), "healthy": True, "version": "0.2.0",
                "block_time": int(self.chain.block_time * 1000), "block_age": age,
                "syncing": False, "height": self.chain.height, "app_height": self.chain.height,
                "app_hash": self.chain.block_hash, "peer_count": 0, "mode": "open"}

    def account(self, params: dict[str, Any]) -> dict[str, Any]:
        ident = params.get("identifier") if self.version == "v0.9" else \
            (params.get("id") or {}).get("identifier")
        if not ident:
            raise RpcFault(RPC_INVALID_PARAMS, "missing account identifier")
        nonce = self.chain.nonce(str(ident), pending=bool(params.get("status")))
        answer: dict[str, Any] = {"balance": "0", "nonce": nonce}
        if nonce > 0:  # kwild leaves the id out for an account it has never seen
            key = "identifier" if self.version == "v0.9" else "id"
            answer[key] = ident if self.version == "v0.9" else params["id"]
        return answer

    # -- transactions -----------------------------------------------------------------

    def _hash_out(self, digest: str) -> str:
        return _b64(bytes.fromhex(digest)) if self.version == "v0.9" else digest

    def _rejection(self, exc: Rejected) -> RpcFault:
        if isinstance(exc, Duplicate) and self.version == "v0.9":
            return RpcFault(RPC_TX_INTERNAL, "failed to broadcast transaction")
        key = "tx_code" if self.version == "v0.9" else "code"
        return RpcFault(RPC_BROADCAST_REJECTED, "broadcast error",
                        {key: exc.code, "hash": exc.tx_hash, "message": exc.log})

    def broadcast(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = params.get("tx")
        if not isinstance(tx, dict):
            raise RpcFault(RPC_INVALID_PARAMS, "missing tx")
        sync = params.get("sync")
        commit = sync == (2 if self.version == "v0.9" else 1)
        try:
            digest = self.chain.submit(tx)
        except Rejected as exc:
            if self.version == "v0.9" and sync == 0 and exc.tx_hash:  # async: no CheckTx answer
                return {"tx_hash": self._hash_out(exc.tx_hash)}
            raise self._rejection(exc) from None
        if not commit:
            return {"tx_hash": self._hash_out(digest)}
        record = self.chain.wait_committed(digest, COMMIT_TIMEOUT)
        if record is None:
            if self.version == "v0.9":
                raise RpcFault(RPC_TX_INTERNAL, "failed to broadcast transaction")
            raise RpcFault(RPC_BROADCAST_REJECTED, "broadcast error", {
                "code": _TX_TIMEOUT_CODE, "hash": digest,
                "message": "timed out waiting for tx to be included in a block"})
        if self.version == "v0.9":
            if record.code:
                raise self._rejection(Rejected(record.code, record.log, digest))
            return {"tx_hash": self._hash_out(digest)}
        return {"tx_hash": digest, "result": {"code": record.code, "gas": 0, "log": record.log}}

    def tx_query(self, params: dict[str, Any]) -> dict[str, Any]:
        value = str(params.get("tx_hash") or "")
        try:
            digest = (base64.b64decode(value).hex() if self.version == "v0.9"
                      else bytes.fromhex(value).hex())
        except ValueError:
            raise RpcFault(RPC_INVALID_PARAMS, "invalid tx_hash") from None
        record = self.chain.lookup(digest)
        if record is None:
            raise RpcFault(RPC_TX_NOT_FOUND, "transaction not found")
        return self._tx_answer(record)

    def _tx_answer(self, record: TxRecord) -> dict[str, Any]:
        pending = record.height < 0
        if self.version == "v0.9":
            return {"hash": self._hash_out(record.hash), "height": record.height,
                    "tx": None if pending else record.tx,  # kwild v0.9 omits mempool txs
                    "tx_result": {"code": record.code, "log": record.log, "gas_used": 0,
                                  "gas_wanted": 0}}
        return {"tx_hash": record.hash, "height": record.height, "tx": record.tx,
                "tx_result": None if pending else {"code": record.code, "gas": 0,
                                                   "log": record.log}}

    # -- reads ------------------------------------------------------------------------

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
                           "name": database.name, "tables": [], "actions": actions,
                           "extensions": [], "procedures": [], "foreign_calls": []}}

    def databases(self, params: dict[str, Any]) -> dict[str, Any]:
        owner = str(params.get("owner") or "").lower().removeprefix("0x")
        listed = [{"dbid": d.target, "name": d.name, "owner": d.owner.lower()[2:]}
                  for d in self.chain.databases.values()
                  if not owner or d.owner.lower()[2:] == owner]
        return {"databases": listed}

    def query(self, params: dict[str, Any]) -> dict[str, Any]:
        sql = str(params.get("query", ""))
        with self.chain.lock:
            if self.version == "v0.9":
                rows = self._select(self._database(str(params.get("dbid", ""))), sql)
                return {"result": _json_rows(rows)}
            if "info.actions" in sql:
                return self._info_actions(sql, params.get("params") or {})
            database, sql = self._qualified(sql)
            return _query_result(self._select(database, sql))

    def _select(self, database: Database, sql: str) -> list[dict[str, Any]]:
        try:
            return database.select(sql)
        except Exception as exc:  # sqlite3 errors: kwild reports engine errors as -300
            raise RpcFault(RPC_ENGINE_INTERNAL, str(exc)) from None

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
        select = re.match(r"\s*select\s+(.*?)\s+from\s", sql, re.I | re.S)
        columns = list(_ACTIONS_COLUMNS)
        if select and select.group(1).strip() != "*":
            columns = [c.strip() for c in select.group(1).split(",")]
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
