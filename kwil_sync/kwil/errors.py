"""Typed errors for talking to kwild, and the mapping from kwild's own codes to them.

kwild answers JSON-RPC errors with a numeric `code` and a `message`; a rejected
broadcast (code -201) carries `data = {tx_code | code, hash, message}` whose
`tx_code` is a transaction code (kwil-db `core/types/transactions/result.go` in
v0.9, `core/types/results.go` in v0.10). A committed transaction that failed has
`tx_result = {code, log}` with the engine's message in `log`. `error_from_rpc` and
`error_from_tx_result` turn both into the classes below, so the stand-in node and a
real kwild give the same Python errors.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.kwil.versions import V09

__all__ = [
    "RPC_BROADCAST_REJECTED", "RPC_ENGINE_INTERNAL", "RPC_ENGINE_NOT_FOUND", "RPC_INVALID_PARAMS",
    "RPC_TX_INTERNAL", "RPC_TX_NOT_FOUND", "RPC_UNKNOWN_METHOD", "TX_DATASET_MISSING",
    "TX_ENCODING_ERROR", "TX_INVALID_NONCE", "TX_INVALID_SIGNATURE", "TX_OK", "TX_WRONG_CHAIN",
    "BroadcastRejected", "DuplicateTx", "InvalidSignature", "KwilError", "NodeUnavailable",
    "NonceError", "NotOwner", "RpcError", "TxFailed", "UnknownAction", "WrongChainId",
    "error_from_rpc", "error_from_tx_result", "tx_unknown_error_code",
]

# JSON-RPC error codes (kwil-db core/rpc/json/errors.go, same in v0.9 and v0.10).
RPC_INVALID_PARAMS = -32602
RPC_UNKNOWN_METHOD = -32601
RPC_TX_INTERNAL = -200
RPC_BROADCAST_REJECTED = -201  # v0.9 calls it ErrorTxExecFailure
RPC_TX_NOT_FOUND = -202
RPC_ENGINE_INTERNAL = -300
RPC_ENGINE_NOT_FOUND = -301

# Transaction codes (the same numbers in both versions).
TX_OK = 0
TX_ENCODING_ERROR = 1
TX_INVALID_SIGNATURE = 3
TX_INVALID_NONCE = 4
TX_WRONG_CHAIN = 5
TX_DATASET_MISSING = 110
_FIRST_ENGINE_CODE = 100


def tx_unknown_error_code(version: str) -> int:
    """CodeUnknownError: MaxUint32 in v0.9 (uint32 codes), MaxUint16 in v0.10."""
    return 0xFFFFFFFF if version == V09 else 0xFFFF


class KwilError(KwilSyncError):
    """Anything that went wrong talking to kwild."""


class NodeUnavailable(KwilError):
    """kwild did not answer (connection refused, reset or timed out)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no answer from {url} ({reason}): is kwild running at {url}?")
        self.url = url
        self.reason = reason


class RpcError(KwilError):
    """kwild answered with a JSON-RPC error that has no more specific class."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        detail = f" ({json.dumps(data)})" if data is not None else ""
        super().__init__(f"kwild error {code}: {message}{detail}")
        self.code = code
        self.message = message
        self.data = data


class BroadcastRejected(RpcError):
    """kwild refused a transaction before it entered the mempool (error -201)."""

    def __init__(self, message: str, *, tx_code: int, tx_hash: str, log: str,
                 data: Any = None) -> None:
        super().__init__(RPC_BROADCAST_REJECTED, message, data)
        self.tx_code = tx_code
        self.tx_hash = tx_hash
        self.log = log

    def __str__(self) -> str:
        return f"broadcast rejected (tx code {self.tx_code}): {self.log}"


class WrongChainId(BroadcastRejected):
    """The transaction names another chain: sign with the node's `chain_info().chain_id`."""


class InvalidSignature(BroadcastRejected):
    """The signature does not recover the sender: check the key and the signed text."""


class DuplicateTx(BroadcastRejected):
    """The node already holds this exact transaction (v0.10 says so; v0.9 answers -200)."""


class NonceError(BroadcastRejected):
    """The nonce is not the account's next one (reused, or one was skipped).

    `got` and `expected` are parsed from kwild's log when it states them; re-read
    the account nonce (status pending) and sign again from `expected`.
    """

    def __init__(self, message: str, *, tx_code: int, tx_hash: str, log: str,
                 data: Any = None) -> None:
        super().__init__(message, tx_code=tx_code, tx_hash=tx_hash, log=log, data=data)
        self.got, self.expected = _parse_nonces(log)


class TxFailed(KwilError):
    """A transaction was executed in a block but failed (its code is not 0)."""

    def __init__(self, code: int, log: str, tx_hash: str = "") -> None:
        where = f" {tx_hash}" if tx_hash else ""
        super().__init__(f"transaction{where} failed with code {code}: {log}")
        self.code = code
        self.log = log
        self.tx_hash = tx_hash


class UnknownAction(TxFailed):
    """The database (dbid or namespace) or the action does not exist on this node."""


class NotOwner(TxFailed):
    """The action is private or owner-only and the signer is not the database owner."""


_NONCE_PATTERNS = (
    re.compile(r"got (\d+), expected (\d+)"),  # mempool check, both versions
    re.compile(r"expected(?: nonce)? (\d+), got (\d+)"),  # accounts store, both versions
)
_UNKNOWN_MARKERS = ("dataset not found", "namespace not found", "unknown action",
                    "does not exist in namespace")
_OWNER_MARKERS = ("not owner", "owner-only", "owner only", "is not public", "is private")
_UNKNOWN_ACTION_RE = re.compile(r'action "[^"]*" not found')


def _parse_nonces(log: str) -> tuple[int | None, int | None]:
    first = _NONCE_PATTERNS[0].search(log)
    if first:
        return int(first.group(1)), int(first.group(2))
    second = _NONCE_PATTERNS[1].search(log)
    if second:
        return int(second.group(2)), int(second.group(1))
    return None, None


def error_from_tx_result(code: int, log: str, tx_hash: str = "") -> TxFailed:
    """The error for a failed transaction result (`tx_result.code != 0`)."""
    lowered = log.lower()
    if code == TX_DATASET_MISSING or any(m in lowered for m in _UNKNOWN_MARKERS) \
            or _UNKNOWN_ACTION_RE.search(lowered):
        return UnknownAction(code, log, tx_hash)
    if any(m in lowered for m in _OWNER_MARKERS):
        return NotOwner(code, log, tx_hash)
    return TxFailed(code, log, tx_hash)


def _kind_from_log(log: str) -> type[BroadcastRejected] | None:
    """v0.10 reports some rejections under CodeUnknownError: tell them by the message."""
    if "invalid nonce" in log:
        return NonceError
    if "failed to verify the transaction" in log or "invalid signature" in log:
        return InvalidSignature
    if "already exists" in log:
        return DuplicateTx
    if "wrong chain" in log.lower():
        return WrongChainId
    return None


def _broadcast_error(message: str, data: Any) -> KwilError:
    fields = data if isinstance(data, dict) else {}
    tx_code = int(fields.get("tx_code", fields.get("code", 0)) or 0)
    tx_hash = str(fields.get("hash", ""))
    log = str(fields.get("message", message))
    kinds: dict[int, type[BroadcastRejected]] = {
        TX_WRONG_CHAIN: WrongChainId, TX_INVALID_NONCE: NonceError,
        TX_INVALID_SIGNATURE: InvalidSignature,
    }
    kind = kinds.get(tx_code)
    if kind is None and tx_code != tx_unknown_error_code(V09):  # v0.9: a failed execution
        kind = _kind_from_log(log)
    if kind is not None:
        return kind(message, tx_code=tx_code, tx_hash=tx_hash, log=log, data=data)
    if tx_code >= _FIRST_ENGINE_CODE:  # v0.9 commit mode reports execution failures here
        return error_from_tx_result(tx_code, log, tx_hash)
    return BroadcastRejected(message, tx_code=tx_code, tx_hash=tx_hash, log=log, data=data)


def error_from_rpc(code: int, message: str, data: Any = None) -> KwilError:
    """The typed error for a JSON-RPC `error` object from kwild."""
    if code == RPC_BROADCAST_REJECTED:
        if isinstance(data, str):
            with contextlib.suppress(ValueError):
                data = json.loads(data)
        return _broadcast_error(message, data)
    if code == RPC_ENGINE_NOT_FOUND:
        return UnknownAction(code, message)
    if code == RPC_ENGINE_INTERNAL:  # a view call failed; the RPC code stands in for a tx code
        failure = error_from_tx_result(code, message)
        if isinstance(failure, UnknownAction | NotOwner):
            return failure
    return RpcError(code, message, data)
