"""Resolve what a killed run left `intended` in the ledger, before applying anything new.

The rule (see `kwil_sync.ledger` for why it gives exactly once):

1. ask the node about each pending hash: committed -> complete it (done or failed);
   in the mempool -> wait for it;
2. an unknown hash is asked about again after a short grace period (a broadcast in
   flight when the process died may still arrive);
3. still unknown and its nonce already used by the account -> those bytes can never
   land: release the intent, the action will be executed afresh;
4. still unknown and its nonce free -> broadcast the *same signed bytes* again (so the
   action can land at most once), then wait for it like step 1;
5. anything still in the mempool after `wait_s` stops the run with
   `PendingTransactions`: applying more now could not be proven safe.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kwil_sync.errors import KwilSyncError
from kwil_sync.kwil.errors import BroadcastRejected, DuplicateTx
from kwil_sync.kwil.rpc_results import BroadcastResult, TxStatus
from kwil_sync.ledger import ActionResult, Intent, Ledger

__all__ = ["NodeStatus", "PendingTransactions", "Recovery", "resolve_pending"]


class NodeStatus(Protocol):
    """What recovery needs from a Kwil node (`kwil_sync.kwil.client.KwilClient`)."""

    def tx_query(self, tx_hash: str) -> TxStatus | None: ...
    def account_nonce(self, address: str, *, pending: bool = True) -> int: ...
    def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> BroadcastResult: ...


class PendingTransactions(KwilSyncError, RuntimeError):
    """Transactions of an earlier run are still unresolved; retry the run later."""


@dataclass
class Recovery:
    """What `resolve_pending` did, by action id."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


def resolve_pending(ledger: Ledger, target: str, node: NodeStatus, sender: str, *,
                    wait_s: float = 60.0, poll_s: float = 0.5, grace_s: float = 1.0,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> Recovery:
    """Bring every pending intent of `target` to done, failed or released.

    Args:
        ledger: The ledger holding the intents.
        target: The target dbid or namespace.
        node: The node the transactions were broadcast to.
        sender: The address that signed them (its nonce tells "can never land").
        wait_s: How long to wait for mempool transactions to commit.
        poll_s: Pause between status polls.
        grace_s: Pause before an unknown hash is asked about again.
        sleep: Sleep function (tests pass a fake).
        clock: Monotonic clock (tests pass a fake).

    Raises:
        PendingTransactions: If some are still in the mempool after `wait_s`.
    """
    report = Recovery()
    intents = ledger.pending(target)
    waiting, unknown = _settle(ledger, target, intents, node, report)
    if unknown:
        sleep(grace_s)
        more_waiting, unknown = _settle(ledger, target, unknown, node, report)
        waiting += more_waiting
    if unknown:
        used = node.account_nonce(sender, pending=False)
        sent: dict[str, bool] = {}  # a packed transaction's bytes go out once for all
        for intent in unknown:
            if intent.tx_hash not in sent:
                sent[intent.tx_hash] = (intent.nonce > used and intent.signed_tx is not None
                                        and _resend(node, intent))
            if not sent[intent.tx_hash]:
                ledger.release(target, intent.action_id)
                report.released.append(intent.action_id)
            else:
                report.resent.append(intent.action_id)
                waiting.append(intent)
    deadline = clock() + wait_s
    while waiting:
        sleep(poll_s)
        waiting, lost = _settle(ledger, target, waiting, node, report)
        waiting += lost  # a re-sent tx not yet visible: keep asking until the deadline
        if waiting and clock() >= deadline:
            hashes = ", ".join(i.tx_hash for i in waiting)
            raise PendingTransactions(f"{len(waiting)} transaction(s) of an earlier run on "
                                      f"{target} are still unresolved ({hashes}); run again "
                                      "once they commit")
    return report


def _settle(ledger: Ledger, target: str, intents: list[Intent], node: NodeStatus,
            report: Recovery) -> tuple[list[Intent], list[Intent]]:
    """Complete the committed ones; return (in the mempool, unknown to the node).

    Earlier signatures of the same action are asked about too: one of them may have
    landed after all, and then it is the one that counts.
    """
    waiting, unknown, done = [], [], []
    statuses = _Statuses(node)
    for intent in intents:
        tx_hash, status = _find(statuses, intent)
        if status is None:
            unknown.append(intent)
        elif status.pending:
            waiting.append(intent)
        else:
            done.append(ActionResult(intent.action_id, status.code, status.log, status.height,
                                     landed_hash=tx_hash))
    # A failed transaction that carried several records (kwil_sync.tx_packing) applied
    # none of them, and the fault is one record's: release them all, so the next apply
    # packs them again and bisects down to that record.
    carried = Counter(r.landed_hash for r in done)
    shared = [r for r in done if r.code != 0 and carried[r.landed_hash] > 1]
    if shared:
        ledger.release_many(target, [r.action_id for r in shared])
        report.released += [r.action_id for r in shared]
        released = {r.action_id for r in shared}
        done = [r for r in done if r.action_id not in released]
    for r in done:
        (report.completed if r.code == 0 else report.failed).append(r.action_id)
    if done:
        ledger.complete_many(target, done)
    return waiting, unknown


class _Statuses:
    """`tx_query` answers for one settling pass, asked once per hash: the records of a
    packed transaction all carry its hash."""

    def __init__(self, node: NodeStatus) -> None:
        self._node = node
        self._known: dict[str, TxStatus | None] = {}

    def get(self, tx_hash: str) -> TxStatus | None:
        if tx_hash not in self._known:
            self._known[tx_hash] = self._node.tx_query(tx_hash)
        return self._known[tx_hash]


def _find(statuses: _Statuses, intent: Intent) -> tuple[str, TxStatus | None]:
    pending: tuple[str, TxStatus] | None = None
    for tx_hash in (intent.tx_hash, *intent.prior_hashes):
        status = statuses.get(tx_hash)
        if status is not None and not status.pending:
            return tx_hash, status
        if status is not None and pending is None:
            pending = (tx_hash, status)
    return pending if pending is not None else (intent.tx_hash, None)


def _resend(node: NodeStatus, intent: Intent) -> bool:
    """Broadcast the stored bytes again; False when the node refuses them for good."""
    assert intent.signed_tx is not None
    try:
        node.broadcast(intent.signed_tx, "mempool")
    except DuplicateTx:
        return True  # the node already holds these exact bytes
    except BroadcastRejected:
        # Refused at the door, so not in the mempool: safe to drop, unless it was
        # refused because these very bytes committed a moment ago.
        return node.tx_query(intent.tx_hash) is not None
    return True
