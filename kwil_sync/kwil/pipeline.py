"""Apply many actions to kwild quickly: consecutive nonces, a window in flight, then confirm.

Waiting for each commit costs a block per action. The pipeline reads the account
nonce once, signs up to `window` transactions with consecutive nonces, broadcasts them
in order in mempool mode and confirms them oldest first with `tx_query`, sending more
as older ones land. Per-sender nonces make kwild include them in order, so the actions
apply in the order given.

Trouble it handles:
- a nonce another writer took (`NonceError`): read the pending nonce again, re-sign
  what was not taken (`on_signed` sees the new hash) and go on in the same order;
- the node down or failing for a while: retry with backoff; a transaction whose
  answer was lost is looked up by hash before it is sent again; after `retries`
  failures in a row, `NodeUnavailable` (or the last error) is raised;
- transactions the node forgot (a restart empties kwild's mempool): sent again, in
  order, with fresh nonces. The nonce of a forgotten one is reused only once the node
  reports it free, so it cannot also run later.

A transaction that executed and failed (code != 0) is reported in its `TxOutcome`,
not raised, so one bad action does not stop a batch; so is one kwild refuses for a
reason that concerns only it (and a payload that does not encode). Wrong chain id and
bad signatures concern every transaction and are raised.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient, TxStatus
from kwil_sync.kwil.errors import (
    TX_ENCODING_ERROR,
    BroadcastRejected,
    DuplicateTx,
    InvalidSignature,
    KwilError,
    NodeUnavailable,
    NonceError,
    RpcError,
    WrongChainId,
)
from kwil_sync.kwil.payload import PayloadError, encode_action
from kwil_sync.kwil.tx import build_tx, tx_hash

__all__ = ["NoncePipeline", "PipelineStuck", "TxOutcome"]


@dataclass(frozen=True)
class TxOutcome:
    """What became of `calls[index]`: `height` None when it never entered a block."""

    index: int
    tx_hash: str
    code: int
    log: str
    height: int | None

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.height is not None


class PipelineStuck(KwilError):
    """A transaction stayed in the mempool longer than `confirm_timeout`."""


@dataclass
class _Sent:
    tx_hash: str
    nonce: int
    since: float


class _Backoff:
    """Consecutive failures: wait longer each time, give up after `retries`."""

    def __init__(self, retries: int, first_delay: float) -> None:
        self.retries, self.first_delay, self.failures = retries, first_delay, 0

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failures > self.retries:
            raise error
        time.sleep(min(self.first_delay * 2 ** (self.failures - 1), 2.0))

    def succeeded(self) -> None:
        self.failures = 0


def _parts(call: Any) -> tuple[str, str, Any]:
    if isinstance(call, tuple | list):
        target, action, arguments = call
        return target, action, arguments
    return call.target, call.action, call.arguments


class NoncePipeline:
    """Sign and apply actions for one key through one node.

    Args:
        client: The node.
        private_key_hex: The signer's key (kept out of reprs and logs).
        chain_id: The chain id to sign for (`client.chain_info().chain_id`).
        version: "v0.9" or "v0.10" (None: the client's).
        window: Most transactions in flight (broadcast, not yet confirmed).
        description: The text shown above the signed body.
        poll_interval: Seconds between confirmations while all in flight are pending.
        confirm_timeout: Seconds a transaction may stay pending before `PipelineStuck`.
        retries: Failures in a row (node down, errors) before giving up.
        retry_delay: The first backoff delay in seconds (doubling, at most 2 s).
    """

    def __init__(self, client: KwilClient, private_key_hex: str, chain_id: str,
                 version: str | None = None, *, window: int = 64, description: str = "",
                 poll_interval: float = 0.01, confirm_timeout: float = 120.0,
                 retries: int = 6, retry_delay: float = 0.2) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.client, self.chain_id = client, chain_id
        self.version = version or client.version
        self.address = EthereumKey(private_key_hex).address
        self._key = private_key_hex
        self.window, self.description = window, description
        self.poll_interval, self.confirm_timeout = poll_interval, confirm_timeout
        self._backoff = _Backoff(retries, retry_delay)

    def __repr__(self) -> str:
        return f"NoncePipeline(address={self.address!r}, version={self.version!r})"

    def _retrying(self, op: Callable[[], Any]) -> Any:
        while True:
            try:
                result = op()
            except (NodeUnavailable, RpcError) as exc:
                if isinstance(exc, BroadcastRejected):
                    raise
                self._backoff.failed(exc)
                continue
            self._backoff.succeeded()
            return result

    def execute(self, calls: Sequence[Any], *,
                on_signed: Callable[[int, str], None] | None = None) -> list[TxOutcome]:
        """Apply `calls` (each with `target`, `action`, `arguments`) in order.

        `on_signed(index, tx_hash)` runs before each broadcast (again after a re-sign).
        Returns one `TxOutcome` per call, in the order of `calls`.
        """
        outcomes: dict[int, TxOutcome] = {}
        payloads: dict[int, bytes] = {}
        for index, call in enumerate(calls):
            try:
                payloads[index] = encode_action(self.version, *_parts(call))
            except PayloadError as exc:
                outcomes[index] = TxOutcome(index, "", TX_ENCODING_ERROR, str(exc), None)
        todo = deque(sorted(payloads))
        inflight: OrderedDict[int, _Sent] = OrderedDict()
        next_nonce = self._pending_nonce() + 1
        taken = 0  # nonces taken in a row from under us
        while todo or inflight:
            progressed = False
            while todo and len(inflight) < self.window:
                index = todo[0]
                sent = self._send(index, payloads[index], next_nonce, on_signed)
                if sent is None:  # the nonce was taken: start again from the node's view
                    taken += 1
                    if taken > self._backoff.retries:
                        raise KwilError(f"nonce {next_nonce} was refused {taken} times in a "
                                        f"row: is another writer using {self.address}?")
                    next_nonce = self._resync(inflight, todo, outcomes)
                    continue
                taken = 0
                todo.popleft()
                if isinstance(sent, TxOutcome):
                    outcomes[index] = sent
                else:
                    inflight[index] = sent
                    next_nonce += 1
                progressed = True
            confirmed, forgotten = self._confirm(inflight, outcomes)
            if forgotten:
                next_nonce = self._resync(inflight, todo, outcomes)
            elif not confirmed and not progressed:
                time.sleep(self.poll_interval)
        return [outcomes[i] for i in range(len(calls))]

    def _pending_nonce(self) -> int:
        return int(self._retrying(lambda: self.client.account_nonce(self.address,
                                                                    pending=True)))

    def _send(self, index: int, payload: bytes, nonce: int,
              on_signed: Callable[[int, str], None] | None) -> _Sent | TxOutcome | None:
        """Sign and broadcast one; None when its nonce is taken (resync and sign again)."""
        tx = build_tx(self._key, payload, description=self.description, fee="0", nonce=nonce,
                      chain_id=self.chain_id)
        digest = tx_hash(tx, self.version)
        if on_signed is not None:
            on_signed(index, digest)
        while True:
            try:
                self.client.broadcast(tx, "mempool")
            except DuplicateTx:
                pass  # an earlier attempt got through
            except NonceError:
                return None
            except (WrongChainId, InvalidSignature):
                raise
            except BroadcastRejected as exc:
                return TxOutcome(index, digest, exc.tx_code, exc.log, None)
            except (NodeUnavailable, RpcError) as exc:
                if self._known(digest):  # the answer was lost, not the transaction
                    break
                self._backoff.failed(exc)
                continue
            break
        self._backoff.succeeded()
        return _Sent(digest, nonce, time.monotonic())

    def _status(self, digest: str) -> TxStatus | None:
        status: TxStatus | None = self._retrying(lambda: self.client.tx_query(digest))
        return status

    def _known(self, digest: str) -> bool:
        try:
            return self.client.tx_query(digest) is not None
        except (NodeUnavailable, RpcError):
            return False

    def _confirm(self, inflight: OrderedDict[int, _Sent],
                 outcomes: dict[int, TxOutcome]) -> tuple[int, bool]:
        """Confirm oldest first until one is pending; (how many landed, any forgotten)."""
        landed = 0
        for index, sent in list(inflight.items()):
            status = self._status(sent.tx_hash)
            if status is None:
                return landed, True
            if status.pending:
                if time.monotonic() - sent.since > self.confirm_timeout:
                    raise PipelineStuck(f"transaction {sent.tx_hash} (nonce {sent.nonce}) is "
                                        f"still in the mempool after {self.confirm_timeout} s")
                break
            outcomes[index] = TxOutcome(index, sent.tx_hash, status.code, status.log,
                                        status.height)
            del inflight[index]
            landed += 1
        return landed, False

    def _resync(self, inflight: OrderedDict[int, _Sent], todo: deque[int],
                outcomes: dict[int, TxOutcome]) -> int:
        """Keep what the node holds, queue the rest again in order; the next nonce."""
        for index, sent in list(inflight.items()):
            status = self._status(sent.tx_hash)
            if status is None:
                del inflight[index]
                todo.append(index)
            elif not status.pending:
                outcomes[index] = TxOutcome(index, sent.tx_hash, status.code, status.log,
                                            status.height)
                del inflight[index]
        ordered = sorted(todo)
        todo.clear()
        todo.extend(ordered)
        return self._pending_nonce() + 1
