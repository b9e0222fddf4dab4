"""A JSON-RPC client for kwild's user service (`POST {url}/rpc/v1`), v0.9 and v0.10.

The versions differ in shapes (PROTOCOLS.md section 3): hashes are base64 bytes in
v0.9 and hex in v0.10; `user.account` takes `identifier` or `id: {identifier,
key_type}`; broadcast sync modes are numbered differently; actions come from
`user.schema` (v0.9) or from `info.actions` through `user.query` (v0.10).
`version="auto"` asks `user.chain_info` once: only v0.10 reports `gas`. Hashes given
to and returned by this client are always 64-char lowercase hex.

Each method is written once as a request description (`_Call`: method, params, result
parser); `KwilClient` runs them one connection per call, as kwild closes every
connection anyway (`kwil_sync.kwil.direct_http`), or over a given `httpx.Client`;
`AsyncKwilClient` over an `httpx.AsyncClient`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from kwil_sync.kwil.direct_http import TRANSPORT_ERRORS, DirectPost
from kwil_sync.kwil.errors import (
    RPC_ENGINE_INTERNAL,
    RPC_TX_NOT_FOUND,
    NodeUnavailable,
    RpcError,
    TxFailed,
    error_from_rpc,
    error_from_tx_result,
)
from kwil_sync.kwil.payload import encode_call

__all__ = ["ActionInfo", "AsyncKwilClient", "BroadcastResult", "ChainInfo", "KwilClient",
           "TxStatus", "VERSIONS"]

VERSIONS = ("v0.9", "v0.10")
# v0.10 has no fire-and-forget mode: "async" there waits for the mempool check too.
_SYNC_MODES = {"v0.9": {"async": 0, "mempool": 1, "commit": 2},
               "v0.10": {"async": 0, "mempool": 0, "commit": 1}}
_ACTIONS_SQL = ("SELECT name, parameter_names, parameter_types, access_modifiers "
                "FROM info.actions WHERE namespace = $namespace")
_TRANSIENT_HTTP = (502, 503, 504)
T = TypeVar("T")


@dataclass(frozen=True)
class ChainInfo:
    """`user.chain_info`; `gas` is None on v0.9, which does not report it."""

    chain_id: str
    height: int
    block_hash: str
    gas: bool | None

    @classmethod
    def from_result(cls, r: dict[str, Any]) -> ChainInfo:
        return cls(str(r.get("chain_id", "")), int(r.get("block_height") or 0),
                   str(r.get("block_hash") or ""), r.get("gas"))


@dataclass(frozen=True)
class ActionInfo:
    """One action: parameters as (name with `$`, type or None when untyped, as v0.9
    actions are); `public` is True when any signer may execute it (not private, not
    owner-only); `modifiers` are kwild's upper-case words (PUBLIC, VIEW, OWNER, ...)."""

    name: str
    parameters: list[tuple[str, str | None]]
    public: bool
    modifiers: list[str]

    @property
    def view(self) -> bool:
        return "VIEW" in self.modifiers


@dataclass(frozen=True)
class TxStatus:
    """Where a transaction is: `height` -1 while in the mempool; then `code` 0 = success."""

    height: int
    code: int
    log: str

    @property
    def pending(self) -> bool:
        return self.height < 0

    @property
    def ok(self) -> bool:
        return not self.pending and self.code == 0

    @classmethod
    def from_result(cls, r: dict[str, Any]) -> TxStatus:
        result = r.get("tx_result") or {}
        return cls(int(r.get("height") or 0), int(result.get("code") or 0),
                   str(result.get("log") or ""))


@dataclass(frozen=True)
class BroadcastResult:
    """The hash kwild gave the transaction and, in commit mode, its result."""

    tx_hash: str
    result: TxStatus | None = None


@dataclass
class _Call(Generic[T]):
    method: str
    params: dict[str, Any]
    parse: Callable[[Any], T]
    none_if_unknown_tx: bool = False


def _hash_hex(value: str, version: str) -> str:
    return base64.b64decode(value).hex() if version == "v0.9" else value.lower()


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


def _call_rows(version: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    if version == "v0.9":
        rows = json.loads(base64.b64decode(result.get("result") or "W10="))  # "[]"
        return list(rows or [])
    if result.get("error"):
        raise error_from_tx_result(RPC_ENGINE_INTERNAL, str(result["error"]))
    qr = result.get("query_result") or {}
    columns = qr.get("column_names") or []
    return [dict(zip(columns, row, strict=False)) for row in qr.get("values") or []]


class _Requests:
    """The request and result shapes of each method, per version."""

    @staticmethod
    def account_nonce(version: str, address: str, pending: bool) -> _Call[int]:
        ident = address.lower().removeprefix("0x")
        params: dict[str, Any] = {"status": 1 if pending else 0}
        if version == "v0.9":
            params["identifier"] = ident
        else:
            params["id"] = {"identifier": ident, "key_type": "secp256k1"}
        return _Call("user.account", params, lambda r: int(r.get("nonce") or 0))

    @staticmethod
    def actions(version: str, target: str) -> _Call[list[ActionInfo]]:
        if version == "v0.9":
            return _Call("user.schema", {"dbid": target}, _actions_v09)
        datum = base64.b64encode(b"\x01" + target.encode()).decode()
        param = {"type": {"name": "text", "is_array": False, "metadata": [0, 0]},
                 "data": [datum]}
        return _Call("user.query", {"query": _ACTIONS_SQL, "params": {"$namespace": param}},
                     _actions_v010)

    @staticmethod
    def broadcast(version: str, tx: dict[str, Any], sync: str) -> _Call[BroadcastResult]:
        modes = _SYNC_MODES[version]
        if sync not in modes:
            raise ValueError(f"kwild {version} takes sync in {sorted(modes)}, got {sync!r}")

        def parse(r: dict[str, Any]) -> BroadcastResult:
            res = r.get("result")
            status = None if res is None else TxStatus(0, int(res.get("code") or 0),
                                                       str(res.get("log") or ""))
            return BroadcastResult(_hash_hex(r["tx_hash"], version), status)

        return _Call("user.broadcast", {"tx": tx, "sync": modes[sync]}, parse)

    @staticmethod
    def tx_query(version: str, tx_hash: str) -> _Call[TxStatus | None]:
        raw = bytes.fromhex(tx_hash.removeprefix("0x"))
        value = base64.b64encode(raw).decode() if version == "v0.9" else raw.hex()
        return _Call("user.tx_query", {"tx_hash": value}, TxStatus.from_result,
                     none_if_unknown_tx=True)

    @staticmethod
    def call(version: str, target: str, action: str, arguments: Sequence[Any],
             sender: str | None) -> _Call[list[dict[str, Any]]]:
        payload = base64.b64encode(encode_call(version, target, action, list(arguments)))
        params: dict[str, Any] = {
            "body": {"payload": payload.decode(), "challenge": ""},
            "auth_type": "secp256k1_ep" if sender else "",
            "sender": (sender or "").lower().removeprefix("0x"),
            "signature": {"sig": "", "type": ""} if version == "v0.9" else "",
        }
        return _Call("user.call", params, lambda r: _call_rows(version, r))


def _envelope(call: _Call[Any], request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": call.method, "params": call.params}


def _unwrap(url: str, call: _Call[T], status: int, content: bytes) -> T:
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict) or ("result" not in body and "error" not in body):
        if status in _TRANSIENT_HTTP:
            raise NodeUnavailable(url, f"HTTP {status}")
        text = content[:200].decode(errors="replace")
        raise RpcError(status, f"not a JSON-RPC answer: {text}")
    error = body.get("error")
    if error:
        code = int(error.get("code", 0))
        if code == RPC_TX_NOT_FOUND and call.none_if_unknown_tx:
            return None  # type: ignore[return-value]
        raise error_from_rpc(code, str(error.get("message", "")), error.get("data"))
    return call.parse(body["result"])


def _check_version(version: str) -> str | None:
    if version not in (*VERSIONS, "auto"):
        raise ValueError(f"version must be 'auto' or one of {VERSIONS}, got {version!r}")
    return None if version == "auto" else version


def _detected(info: ChainInfo) -> str:
    return "v0.10" if info.gas is not None else "v0.9"


class KwilClient:
    """Synchronous client for one kwild node.

    Args:
        url: The node's base URL, e.g. `http://127.0.0.1:8484`.
        version: `"v0.9"`, `"v0.10"` or `"auto"` (asks `user.chain_info` once).
        timeout: Seconds per request.
        http: An `httpx.Client` to send through (proxies, custom TLS; `close` leaves it
            open). Without one, each call is one `http.client` connection.

    Every method raises `NodeUnavailable` when the node does not answer, and the typed
    errors of `kwil_sync.kwil.errors` for kwild's error answers.
    """

    def __init__(self, url: str, *, version: str = "auto", timeout: float = 10.0,
                 http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._version = _check_version(version)
        self._direct = DirectPost(self.url, timeout)  # also checks the URL up front
        self._http = http
        self._ids = 0

    @property
    def version(self) -> str:
        """`"v0.9"` or `"v0.10"`, detected on first use when created with `"auto"`."""
        if self._version is None:
            self._version = _detected(self.chain_info())
        return self._version

    def _run(self, call: _Call[T]) -> T:
        self._ids += 1
        body = json.dumps(_envelope(call, self._ids)).encode()
        try:
            if self._http is None:
                status, content = self._direct.post("/rpc/v1", body)
            else:
                response = self._http.post(f"{self.url}/rpc/v1", content=body,
                                           headers={"Content-Type": "application/json"})
                status, content = response.status_code, response.content
        except (httpx.TransportError, *TRANSPORT_ERRORS) as exc:
            raise NodeUnavailable(self.url, type(exc).__name__) from exc
        return _unwrap(self.url, call, status, content)

    def chain_info(self) -> ChainInfo:
        """Chain id, best height and hash (and `gas` from v0.10 on)."""
        return self._run(_Call("user.chain_info", {}, ChainInfo.from_result))

    def account_nonce(self, address: str, *, pending: bool = True) -> int:
        """The last nonce the account used (pending counts the mempool); next is + 1."""
        return self._run(_Requests.account_nonce(self.version, address, pending))

    def actions(self, target: str) -> list[ActionInfo]:
        """The actions of a database: dbid on v0.9, namespace on v0.10."""
        return self._run(_Requests.actions(self.version, target))

    def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> BroadcastResult:
        """Send a signed transaction; `sync` is "async", "mempool" or "commit".

        A rejected transaction raises (`NonceError`, `WrongChainId`, ...). In commit
        mode a failed execution is reported in `result`, not raised, on both versions.
        """
        version = self.version
        try:
            sent = self._run(_Requests.broadcast(version, tx, sync))
        except TxFailed as failed:  # v0.9 reports commit-mode failures as error -201
            if sync != "commit" or not failed.tx_hash:
                raise
            return BroadcastResult(failed.tx_hash.lower(),
                                   self._committed(failed.tx_hash, failed.code, failed.log))
        if sync == "commit":  # fill in the height (v0.10) or the whole result (v0.9)
            code, log = (sent.result.code, sent.result.log) if sent.result else (0, "")
            return BroadcastResult(sent.tx_hash, self._committed(sent.tx_hash, code, log))
        return sent

    def _committed(self, tx_hash: str, code: int, log: str) -> TxStatus:
        status = self.tx_query(tx_hash)
        return status if status is not None and not status.pending else TxStatus(0, code, log)

    def tx_query(self, tx_hash: str) -> TxStatus | None:
        """None if the node does not know the hash (error -202); height -1 if pending."""
        return self._run(_Requests.tx_query(self.version, tx_hash))

    def call(self, target: str, action: str, arguments: Sequence[Any] = (), *,
             sender: str | None = None) -> list[dict[str, Any]]:
        """Run a view action (unsigned, like kwil-js on an open node); returns its rows.

        `arguments` is one list of `{"type", "value"}` dicts; `sender` fills `@caller`.
        """
        return self._run(_Requests.call(self.version, target, action, arguments, sender))

    def estimate_price(self, tx: dict[str, Any]) -> str:
        """The fee kwild asks for `tx`, as a decimal string ("0" when gas is off)."""
        return self._run(_Call("user.estimate_price", {"tx": tx},
                               lambda r: str(r.get("price") or "0")))

    def close(self) -> None:
        """Nothing to release without an `httpx.Client`; a given one stays open."""

    def __enter__(self) -> KwilClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncKwilClient:
    """The asynchronous twin of `KwilClient` for reads and mempool broadcasts."""

    def __init__(self, url: str, *, version: str = "auto", timeout: float = 10.0,
                 http: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self._version = _check_version(version)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._ids = 0

    async def version(self) -> str:
        if self._version is None:
            self._version = _detected(await self.chain_info())
        return self._version

    async def _run(self, call: _Call[T]) -> T:
        self._ids += 1
        try:
            response = await self._http.post(f"{self.url}/rpc/v1",
                                             json=_envelope(call, self._ids))
        except (httpx.TransportError, OSError) as exc:
            raise NodeUnavailable(self.url, type(exc).__name__) from exc
        return _unwrap(self.url, call, response.status_code, response.content)

    async def chain_info(self) -> ChainInfo:
        return await self._run(_Call("user.chain_info", {}, ChainInfo.from_result))

    async def account_nonce(self, address: str, *, pending: bool = True) -> int:
        return await self._run(_Requests.account_nonce(await self.version(), address, pending))

    async def actions(self, target: str) -> list[ActionInfo]:
        return await self._run(_Requests.actions(await self.version(), target))

    async def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> BroadcastResult:
        """Send a signed transaction (in v0.9 commit mode a failure raises `TxFailed`)."""
        return await self._run(_Requests.broadcast(await self.version(), tx, sync))

    async def tx_query(self, tx_hash: str) -> TxStatus | None:
        return await self._run(_Requests.tx_query(await self.version(), tx_hash))

    async def call(self, target: str, action: str, arguments: Sequence[Any] = (), *,
                   sender: str | None = None) -> list[dict[str, Any]]:
        version = await self.version()
        return await self._run(_Requests.call(version, target, action, arguments, sender))

    async def estimate_price(self, tx: dict[str, Any]) -> str:
        return await self._run(_Call("user.estimate_price", {"tx": tx},
                                     lambda r: str(r.get("price") or "0")))

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()
