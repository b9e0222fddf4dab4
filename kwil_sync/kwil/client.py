"""A JSON-RPC client for kwild's user service (`POST {url}/rpc/v1`), v0.9 and v0.10.

The versions differ in shapes; each method's request and result parser per version
is in `kwil_sync.kwil.rpc_requests`, the answers' types in `kwil_sync.kwil.rpc_results`.
`version="auto"` asks `user.chain_info` once: only v0.10 reports `gas`. Hashes given
to and returned by this client are always 64-char lowercase hex.

`KwilClient` runs each request one connection per call, as kwild closes every
connection anyway (`kwil_sync.kwil.direct_http`), or over a given `httpx.Client`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx

from kwil_sync.kwil.direct_http import TRANSPORT_ERRORS, DirectPost
from kwil_sync.kwil.errors import (
    RPC_TX_NOT_FOUND,
    NodeUnavailable,
    RpcError,
    TxFailed,
    error_from_rpc,
)
from kwil_sync.kwil.rpc_requests import Requests, RpcCall
from kwil_sync.kwil.rpc_results import ActionInfo, BroadcastResult, ChainInfo, TxStatus
from kwil_sync.kwil.versions import V010, V09, VERSIONS

__all__ = ["KwilClient"]

_TRANSIENT_HTTP = (502, 503, 504)
T = TypeVar("T")


def _envelope(call: RpcCall[Any], request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": call.method, "params": call.params}


def _unwrap(url: str, call: RpcCall[T], status: int, content: bytes) -> T:
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
    return V010 if info.gas is not None else V09


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

    def _run(self, call: RpcCall[T]) -> T:
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
        return self._run(RpcCall("user.chain_info", {}, ChainInfo.from_result))

    def account_nonce(self, address: str, *, pending: bool = True) -> int:
        """The last nonce the account used (pending counts the mempool); next is + 1."""
        return self._run(Requests.account_nonce(self.version, address, pending))

    def actions(self, target: str) -> list[ActionInfo]:
        """The actions of a database: dbid on v0.9, namespace on v0.10."""
        return self._run(Requests.actions(self.version, target))

    def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> BroadcastResult:
        """Send a signed transaction; `sync` is "async", "mempool" or "commit".

        A rejected transaction raises (`NonceError`, `WrongChainId`, ...). In commit
        mode a failed execution is reported in `result`, not raised, on both versions.
        """
        version = self.version
        try:
            sent = self._run(Requests.broadcast(version, tx, sync))
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
        return self._run(Requests.tx_query(self.version, tx_hash))

    def query(self, sql: str, *, dbid: str | None = None) -> list[dict[str, Any]]:
        """Rows of one read-only query (`user.query`; kwild refuses any that writes).

        On v0.9 the query runs in database `dbid` (required there); on v0.10 it names
        its tables `namespace.table` and takes no dbid.

        Raises:
            ValueError: `dbid` missing on v0.9, or given on v0.10.
        """
        return self._run(Requests.query(self.version, sql, dbid))

    def call(self, target: str, action: str, arguments: Sequence[Any] = (), *,
             sender: str | None = None) -> list[dict[str, Any]]:
        """Run a view action (unsigned, like kwil-js on an open node); returns its rows.

        `arguments` is one list of `{"type", "value"}` dicts; `sender` fills `@caller`.
        """
        return self._run(Requests.call(self.version, target, action, arguments, sender))

    def estimate_price(self, tx: dict[str, Any]) -> str:
        """The fee kwild asks for `tx`, as a decimal string ("0" when gas is off)."""
        return self._run(RpcCall("user.estimate_price", {"tx": tx},
                                 lambda r: str(r.get("price") or "0")))

    def close(self) -> None:
        """Nothing to release without an `httpx.Client`; a given one stays open."""

    def __enter__(self) -> KwilClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

