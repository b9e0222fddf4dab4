"""The request and result shapes of kwild's JSON-RPC methods, per version (v0.9, v0.10).

PROTOCOLS.md section 3: hashes are base64 bytes in v0.9 and hex in v0.10;
`user.account` takes `identifier` or `id: {identifier, key_type}`; broadcast sync
modes are numbered differently; actions come from `user.schema` (v0.9) or from
`info.actions` through `user.query` (v0.10). Each method is written once as a
request description (`RpcCall`: method, params, result parser) that `KwilClient` runs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kwil_sync.kwil.errors import RPC_ENGINE_INTERNAL, error_from_tx_result
from kwil_sync.kwil.payload import encode_call
from kwil_sync.kwil.rpc_results import ActionInfo, BroadcastResult, TxStatus
from kwil_sync.kwil.versions import V010, V09

__all__ = ["Requests", "RpcCall"]

# v0.10 has no fire-and-forget mode: "async" there waits for the mempool check too.
_SYNC_MODES = {V09: {"async": 0, "mempool": 1, "commit": 2},
               V010: {"async": 0, "mempool": 0, "commit": 1}}
_ACTIONS_SQL = ("SELECT name, parameter_names, parameter_types, access_modifiers "
                "FROM info.actions WHERE namespace = $namespace")
T = TypeVar("T")


@dataclass
class RpcCall(Generic[T]):
    """One JSON-RPC request: `method`, `params`, and `parse` for its `result`.

    `none_if_unknown_tx`: kwild's "transaction not found" answer (-202) means None.
    """

    method: str
    params: dict[str, Any]
    parse: Callable[[Any], T]
    none_if_unknown_tx: bool = False


def _hash_hex(value: str, version: str) -> str:
    return base64.b64decode(value).hex() if version == V09 else value.lower()


def _access(mods: Sequence[str], public_flag: bool) -> tuple[bool, list[str]]:
    upper = [str(m).upper() for m in mods or []]
    return public_flag and "OWNER" not in upper and "PRIVATE" not in upper, upper


def _actions_v09(result: dict[str, Any]) -> list[ActionInfo]:
    schema = result.get("schema") or {}
    out = []
    for a in schema.get("actions") or []:
        public, mods = _access(a.get("modifiers") or [], bool(a.get("public")))
        out.append(ActionInfo(a["name"], [(p, None) for p in a.get("parameters") or []],
                              public, mods))
    for p in schema.get("procedures") or []:
        public, mods = _access(p.get("modifiers") or [], bool(p.get("public")))
        params = [(q["name"], (q.get("type") or {}).get("name")) for q in p.get("parameters")
                  or []]
        out.append(ActionInfo(p["name"], params, public, mods))
    return out


def _actions_v010(result: dict[str, Any]) -> list[ActionInfo]:
    columns = result.get("column_names") or []
    out = []
    for row in result.get("values") or []:
        r = dict(zip(columns, row, strict=False))
        mods = r.get("access_modifiers") or []
        public, upper = _access(mods, "PUBLIC" in [str(m).upper() for m in mods])
        names, types = r.get("parameter_names") or [], r.get("parameter_types") or []
        out.append(ActionInfo(r["name"], list(zip(names, types, strict=True)), public, upper))
    return out


def _rows_v09(result: dict[str, Any]) -> list[dict[str, Any]]:
    """v0.9 answers rows as base64 JSON in `result`."""
    rows = json.loads(base64.b64decode(result.get("result") or "W10="))  # "[]"
    return list(rows or [])


def _query_rows(version: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    if version == V09:
        return _rows_v09(result)
    columns = result.get("column_names") or []
    return [dict(zip(columns, row, strict=False)) for row in result.get("values") or []]


def _text_param(value: str) -> dict[str, Any]:
    """A v0.10 query parameter of type text: one non-null datum."""
    datum = base64.b64encode(b"\x01" + value.encode()).decode()
    return {"type": {"name": "text", "is_array": False, "metadata": [0, 0]}, "data": [datum]}


def _call_rows(version: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    if version == V09:
        return _rows_v09(result)
    if result.get("error"):
        raise error_from_tx_result(RPC_ENGINE_INTERNAL, str(result["error"]))
    qr = result.get("query_result") or {}
    columns = qr.get("column_names") or []
    return [dict(zip(columns, row, strict=False)) for row in qr.get("values") or []]


class Requests:
    """The request and result shapes of each method, per version."""

    @staticmethod
    def account_nonce(version: str, address: str, pending: bool) -> RpcCall[int]:
        """`user.account`: the account's last nonce (`pending` counts the mempool)."""
        ident = address.lower().removeprefix("0x")
        params: dict[str, Any] = {"status": 1 if pending else 0}
        if version == V09:
            params["identifier"] = ident
        else:
            params["id"] = {"identifier": ident, "key_type": "secp256k1"}
        return RpcCall("user.account", params, lambda r: int(r.get("nonce") or 0))

    @staticmethod
    def actions(version: str, target: str) -> RpcCall[list[ActionInfo]]:
        """`user.schema` (v0.9, by dbid) or `info.actions` (v0.10, by namespace)."""
        if version == V09:
            return RpcCall("user.schema", {"dbid": target}, _actions_v09)
        params = {"$namespace": _text_param(target)}
        return RpcCall("user.query", {"query": _ACTIONS_SQL, "params": params}, _actions_v010)

    @staticmethod
    def broadcast(version: str, tx: dict[str, Any], sync: str) -> RpcCall[BroadcastResult]:
        """`user.broadcast` in sync mode "async", "mempool" or "commit"."""
        modes = _SYNC_MODES[version]
        if sync not in modes:
            raise ValueError(f"kwild {version} takes sync in {sorted(modes)}, got {sync!r}")

        def parse(r: dict[str, Any]) -> BroadcastResult:
            res = r.get("result")
            status = None if res is None else TxStatus(0, int(res.get("code") or 0),
                                                       str(res.get("log") or ""))
            return BroadcastResult(_hash_hex(r["tx_hash"], version), status)

        return RpcCall("user.broadcast", {"tx": tx, "sync": modes[sync]}, parse)

    @staticmethod
    def tx_query(version: str, tx_hash: str) -> RpcCall[TxStatus | None]:
        """`user.tx_query` by hex hash; None when the node does not know it."""
        raw = bytes.fromhex(tx_hash.removeprefix("0x"))
        value = base64.b64encode(raw).decode() if version == V09 else raw.hex()
        return RpcCall("user.tx_query", {"tx_hash": value}, TxStatus.from_result,
                       none_if_unknown_tx=True)

    @staticmethod
    def query(version: str, sql: str, dbid: str | None) -> RpcCall[list[dict[str, Any]]]:
        """`user.query`: one read-only query; v0.9 runs it in database `dbid` (required
        there), v0.10 names tables `namespace.table` (no dbid)."""
        params: dict[str, Any] = {"query": sql}
        if version == V09:
            if not dbid:
                raise ValueError("kwild v0.9 runs a query in one database: give its dbid")
            params["dbid"] = dbid
        elif dbid is not None:
            raise ValueError("kwild v0.10 takes no dbid: name the tables namespace.table")
        return RpcCall("user.query", params, lambda r: _query_rows(version, r))

    @staticmethod
    def call(version: str, target: str, action: str, arguments: Sequence[Any],
             sender: str | None) -> RpcCall[list[dict[str, Any]]]:
        """`user.call`: an unsigned view action call; `sender` fills `@caller`."""
        payload = base64.b64encode(encode_call(version, target, action, list(arguments)))
        params: dict[str, Any] = {
            "body": {"payload": payload.decode(), "challenge": ""},
            "auth_type": "secp256k1_ep" if sender else "",
            "sender": (sender or "").lower().removeprefix("0x"),
            "signature": {"sig": "", "type": ""} if version == V09 else "",
        }
        return RpcCall("user.call", params, lambda r: _call_rows(version, r))

