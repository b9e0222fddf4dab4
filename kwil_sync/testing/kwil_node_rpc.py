"""kwild's user JSON-RPC methods, in v0.9 or v0.10 shapes, over the stand-in's `Chain`.

Shapes, codes and messages follow kwil-db v0.9.4 `internal/services/jsonrpc/usersvc`
and v0.10.2 `node/services/jsonrpc/usersvc` (PROTOCOLS.md section 3).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from kwil_sync.kwil.errors import (
    RPC_BROADCAST_REJECTED,
    RPC_INVALID_PARAMS,
    RPC_TX_INTERNAL,
    RPC_TX_NOT_FOUND,
    RPC_UNKNOWN_METHOD,
)
from kwil_sync.testing.kwil_node_chain import Chain, Duplicate, Rejected, TooLarge, TxRecord
from kwil_sync.testing.kwil_node_reads import ReadMethods, RpcFault, b64

__all__ = ["RpcFault", "UserService"]

COMMIT_TIMEOUT = 10.0  # kwild's default broadcast commit timeout
_TX_TIMEOUT_CODE = 10  # v0.10 CodeTxTimeoutCommit


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
            "user.estimate_price": lambda p: {"price": "0"},
        }
        reads = ReadMethods(chain)
        self.methods.update({"user.call": reads.call, "user.query": reads.query})
        if self.version == "v0.9":
            self.methods.update({"user.schema": reads.schema, "user.databases": reads.databases})

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
        return b64(bytes.fromhex(digest)) if self.version == "v0.9" else digest

    def _rejection(self, exc: Rejected) -> RpcFault:
        if isinstance(exc, Duplicate | TooLarge) and self.version == "v0.9":
            # CometBFT's CheckTx errors, not kwild codes: usersvc answers -200
            # (v0.9.4 internal/services/jsonrpc/usersvc/service.go, Broadcast)
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
