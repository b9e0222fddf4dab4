"""Apply many actions to kwild quickly: consecutive nonces, a window in flight, then confirm.

Waiting for each commit costs a block per action. The pipeline reads the account
nonce once, signs up to `window` transactions with consecutive nonces, broadcasts them
in order in mempool mode and confirms them oldest first with `tx_query`, sending more
as older ones land. Per-sender nonces make kwild include them in order, so the actions
apply in the order given.

Transactions are signed in groups (as many as the window has room for, at most 64)
and each group is handed to `on_signed` before any of it is broadcast: a caller that
must store every signed transaction durably before its broadcast (the replay ledger's
intents) does so with one commit per group instead of one per transaction.

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

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.arguments import PayloadError
from kwil_sync.kwil.client import KwilClient
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
from kwil_sync.kwil.payload import encode_action
from kwil_sync.kwil.rpc_results import TxStatus
from kwil_sync.kwil.tx import build_tx, tx_hash
from kwil_sync.retry import RetryPolicy

__all__ = ["NoncePipeline", "OnPrepared", "PipelineStuck", "PreparedTx", "TxOutcome", "while_down"]


@dataclass(frozen=True)
class TxOutcome:
    """What became of `calls[index]`: `height` None when it never entered a block.

    The pipeline knows positions and transactions only; `appliers.CallResult` is the
    same answer for a sync record (keyed by its action id).
    """

    index: int
    tx_hash: str
    code: int
    log: str
    height: int | None

    @property
    def ok(self) -> bool:
        """Executed in a block with code 0."""
        return self.code == 0 and self.height is not None


T = TypeVar("T")

# Most transactions signed ahead at once: enough that the caller's durable write per
# group is cheap per transaction, few enough that the first broadcast is not delayed.
_GROUP = 64


@dataclass(frozen=True)
class PreparedTx:
    """`calls[index]` signed with `nonce`, not yet broadcast: `tx` is the exact JSON sent."""

    index: int
    tx_hash: str
    nonce: int
    tx: dict[str, Any]


# Runs with each group of freshly signed transactions before any of them is broadcast
# (again, with new hashes and nonces, for transactions signed again).
OnPrepared = Callable[[list[PreparedTx]], None]


class PipelineStuck(KwilError):
    """A transaction stayed in the mempool longer than `confirm_timeout`."""


@dataclass
class _Sent:
    tx_hash: str
    nonce: int
    since: float


_MAX_RETRY_DELAY = 2.0  # seconds: a node back from a restart is noticed soon


def _node_trouble(error: Exception) -> bool:
    """The node did not answer or failed the call (not a refusal of the transaction)."""
    return (isinstance(error, NodeUnavailable | RpcError)
            and not isinstance(error, BroadcastRejected))


def while_down(op: Callable[[], T], *, retries: int = 6, first_delay: float = 0.2) -> T:
    """`op()`, tried again with backoff (doubling, at most 2 s a wait) while the node
    does not answer (`NodeUnavailable`); after `retries` failures in a row the last
    error is raised. For reads and idempotent sends outside the pipeline."""
    return RetryPolicy(retries, first_delay, max_backoff=_MAX_RETRY_DELAY,
                       retryable=lambda e: isinstance(e, NodeUnavailable)).call(op)


def _parts(call: Any) -> tuple[str, str, Any]:
    """(target, action, arguments) of an ActionCall-like object or a 3-tuple."""
    if hasattr(call, "target"):
        return call.target, call.action, call.arguments
    target, action, arguments = call
    return target, action, arguments


class NoncePipeline:
    """Sign and apply actions for one key through one node.

    Args:
        client: The node.
        private_key_hex: The signer's key (kept out of reprs and logs).
        chain_id: The chain id to sign for (`client.chain_info().chain_id`).
        version: "v0.9" or "v0.10" (None: the client's).
        window: Most transactions in flight (broadcast, not yet confirmed). Each is
            confirmed with its own `tx_query`, so a transaction stays counted a little
            after its block; 64 held the bench to about 450/s on a 50 ms block, 256 did
            not (kwild has no per-account mempool limit).
        description: The text shown above the signed body.
        poll_interval: Seconds between confirmations while all in flight are pending.
        confirm_timeout: Seconds a transaction may stay pending before `PipelineStuck`.
        retries: Failures in a row (node down, errors) before giving up.
        retry_delay: The first backoff delay in seconds (doubling, at most 2 s).
    """

    def __init__(self, client: KwilClient, private_key_hex: str, chain_id: str,
                 version: str | None = None, *, window: int = 256, description: str = "",
                 poll_interval: float = 0.025, confirm_timeout: float = 120.0,
                 retries: int = 6, retry_delay: float = 0.2) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.client, self.chain_id = client, chain_id
        self.version = version or client.version
        self.address = EthereumKey(private_key_hex).address
        self._key = private_key_hex
        self.window, self.description = window, description
        self.poll_interval, self.confirm_timeout = poll_interval, confirm_timeout
        # One streak for the node calls of this thread (reads and broadcasts alike).
        self._backoff = RetryPolicy(retries, retry_delay, max_backoff=_MAX_RETRY_DELAY,
                                    retryable=_node_trouble).streak()

    def __repr__(self) -> str:
        return f"NoncePipeline(address={self.address!r}, version={self.version!r})"

    def _retrying(self, op: Callable[[], Any]) -> Any:
        return self._backoff.call(op)

    def execute(self, calls: Sequence[Any], *,
                on_signed: OnPrepared | None = None) -> list[TxOutcome]:
        """Apply `calls` (each with `target`, `action`, `arguments`, and optionally its
        encoded `payload`) in order, one transaction per call.

        `on_signed(group)` runs with each group of signed transactions before any of
        them is broadcast; if it raises, nothing of that group is sent.
        Returns one `TxOutcome` per call, in the order of `calls`.
        """
        outcomes: dict[int, TxOutcome] = {}
        payloads: dict[int, bytes] = {}
        for index, call in enumerate(calls):
            encoded = getattr(call, "payload", None)  # packed calls come encoded
            if isinstance(encoded, bytes):
                payloads[index] = encoded
                continue
            try:
                payloads[index] = encode_action(self.version, *_parts(call))
            except PayloadError as exc:
                outcomes[index] = TxOutcome(index, "", TX_ENCODING_ERROR, str(exc), None)
        if payloads:
            _Run(self, payloads, outcomes, on_signed).run()
        return [outcomes[i] for i in range(len(calls))]

    def _pending_nonce(self) -> int:
        """The signer's last nonce as the node sees it, mempool included."""
        return int(self._retrying(lambda: self.client.account_nonce(self.address,
                                                                    pending=True)))

    def _status(self, digest: str) -> TxStatus | None:
        status: TxStatus | None = self._retrying(lambda: self.client.tx_query(digest))
        return status

    def _sign(self, indexes: Sequence[int], payloads: dict[int, bytes],
              first_nonce: int) -> list[PreparedTx]:
        """Sign `indexes` with consecutive nonces from `first_nonce`."""
        group = []
        for nonce, index in enumerate(indexes, first_nonce):
            tx = build_tx(self._key, payloads[index], description=self.description, fee="0",
                          nonce=nonce, chain_id=self.chain_id)
            group.append(PreparedTx(index, tx_hash(tx, self.version), nonce, tx))
        return group

    def _send(self, signed: PreparedTx) -> _Sent | TxOutcome | None:
        """Broadcast one; None when its nonce is taken (resync and sign again)."""
        while True:
            try:
                self.client.broadcast(signed.tx, "mempool")
            except DuplicateTx:
                pass  # an earlier attempt got through
            except NonceError:
                if self._known(signed.tx_hash):  # it got through, its answer did not
                    break
                return None
            except (WrongChainId, InvalidSignature):
                raise
            except BroadcastRejected as exc:
                return TxOutcome(signed.index, signed.tx_hash, exc.tx_code, exc.log, None)
            except (NodeUnavailable, RpcError) as exc:
                if self._known(signed.tx_hash):  # the answer was lost, not the transaction
                    break
                self._backoff.failed(exc)
                continue
            break
        self._backoff.succeeded()
        return _Sent(signed.tx_hash, signed.nonce, time.monotonic())

    def _known(self, digest: str) -> bool:
        try:
            return self.client.tx_query(digest) is not None
        except (NodeUnavailable, RpcError):
            return False


class _Run:
    """One `execute`: this thread signs and sends, a second one confirms oldest first.

    Both work on `inflight` (index -> sent, in nonce order) under `cond`. A resync
    (a nonce taken, or a transaction the node forgot) pauses the confirmer, keeps what
    the node holds, queues the rest again in index order and reads the nonce anew.
    """

    def __init__(self, pipeline: NoncePipeline, payloads: dict[int, bytes],
                 outcomes: dict[int, TxOutcome],
                 on_signed: OnPrepared | None) -> None:
        self.p, self.payloads, self.outcomes, self.on_signed = (pipeline, payloads, outcomes,
                                                                on_signed)
        self.cond = threading.Condition()
        self.todo = deque(sorted(payloads))
        self.inflight: OrderedDict[int, _Sent] = OrderedDict()
        self.forgotten = self.paused = self.finished = False
        self.error: BaseException | None = None
        self.confirm_backoff = pipeline._backoff.policy.streak()

    def run(self) -> None:
        confirmer = threading.Thread(target=self._confirm_loop, daemon=True,
                                     name="kwil-pipeline-confirm")
        confirmer.start()
        try:
            self._send_loop()
        finally:
            with self.cond:
                self.finished = True
                self.cond.notify_all()
            confirmer.join()
        if self.error is not None:
            raise self.error

    def _send_loop(self) -> None:
        next_nonce = self.p._pending_nonce() + 1
        taken = 0  # nonces taken in a row from under us
        while True:
            with self.cond:
                while not (self.error or self.forgotten or (not self.todo and not self.inflight)
                           or (self.todo and len(self.inflight) < self.p.window)):
                    self.cond.wait()
                if self.error or (not self.todo and not self.inflight):
                    return
                resync = self.forgotten
                room = min(self.p.window - len(self.inflight), _GROUP)
                indexes = [] if resync else list(islice(self.todo, room))
            if not resync:
                group = self.p._sign(indexes, self.payloads, next_nonce)
                if self.on_signed is not None:
                    self.on_signed(group)
                nonce_taken, next_nonce = self._send_group(group, next_nonce)
                if not nonce_taken:
                    taken = 0
                    continue
                taken = taken + 1 if next_nonce == group[0].nonce else 1
                if taken > self.p._backoff.policy.max_retries:
                    raise KwilError(f"nonce {next_nonce} was refused {taken} times in a row: "
                                    f"is another writer using {self.p.address}?")
            next_nonce = self._resync()

    def _send_group(self, group: list[PreparedTx], next_nonce: int) -> tuple[bool, int]:
        """Broadcast `group` in order. Stops early when a nonce is taken, when one is
        refused at the door (its nonce stays free, so the rest must be signed again) or
        when the node forgot what it held (the caller resyncs). Returns (a nonce was
        taken, the next nonce to sign with)."""
        for signed in group:
            with self.cond:
                if self.error or self.forgotten:
                    return False, next_nonce
            sent = self.p._send(signed)
            if sent is None:
                return True, next_nonce
            with self.cond:
                self.todo.popleft()
                if isinstance(sent, TxOutcome):
                    self.outcomes[signed.index] = sent
                else:
                    self.inflight[signed.index] = sent
                    next_nonce += 1
                self.cond.notify_all()
            if isinstance(sent, TxOutcome):
                return False, next_nonce
        return False, next_nonce

    def _resync(self) -> int:
        with self.cond:
            self.paused = True
            held = list(self.inflight.items())
        statuses = [(index, sent, self.p._status(sent.tx_hash)) for index, sent in held]
        with self.cond:
            for index, sent, status in statuses:
                if status is None:
                    del self.inflight[index]
                    self.todo.append(index)
                elif not status.pending:
                    self._landed(index, sent, status)
            ordered = sorted(self.todo)
            self.todo.clear()
            self.todo.extend(ordered)
            self.forgotten = self.paused = False
            self.cond.notify_all()
        return self.p._pending_nonce() + 1

    def _landed(self, index: int, sent: _Sent, status: TxStatus) -> None:
        self.outcomes[index] = TxOutcome(index, sent.tx_hash, status.code, status.log,
                                         status.height)
        del self.inflight[index]

    def _confirm_loop(self) -> None:
        while True:
            with self.cond:
                while not self.finished and (not self.inflight or self.forgotten or self.paused):
                    self.cond.wait()
                if self.finished:
                    return
                index, sent = next(iter(self.inflight.items()))
            try:
                status = self.p.client.tx_query(sent.tx_hash)
                self.confirm_backoff.succeeded()
            except (NodeUnavailable, RpcError) as exc:
                try:
                    self.confirm_backoff.failed(exc)
                except KwilError as final:
                    self._fail(final)
                    return
                continue
            with self.cond:
                if self.paused or self.inflight.get(index) is not sent:
                    continue  # a resync is deciding about it
                if status is None:
                    self.forgotten = True
                elif not status.pending:
                    self._landed(index, sent, status)
                elif time.monotonic() - sent.since > self.p.confirm_timeout:
                    self._fail(PipelineStuck(
                        f"transaction {sent.tx_hash} (nonce {sent.nonce}) is still in the "
                        f"mempool after {self.p.confirm_timeout} s"))
                    return
                self.cond.notify_all()
            if status is not None and status.pending:
                time.sleep(self.p.poll_interval)  # the oldest waits for a block

    def _fail(self, error: BaseException) -> None:
        with self.cond:
            self.error = error
            self.cond.notify_all()
