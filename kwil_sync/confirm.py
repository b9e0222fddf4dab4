"""Confirm tied calls against the provider's node before anything is published.

kwild calls the extension during block execution, before it knows whether the
transaction commits (docs/SHIM.md, "Commit-tied capture"), so a tied call waits in the
outbox until its transaction's result is known. One pass asks the node once per
transaction (`user.tx_query` on v0.9 and v0.10), never once per call:

- code 0: every call of the transaction becomes a signed record (next sequence);
- code not 0: its calls are voided, kept with the node's code and log, never signed;
- not found, or still in the mempool: asked again later; past `timeout_s` the calls
  are reported `unconfirmed`, and still never published until the node says code 0;
- the node does not answer: the pass stops there (what was already answered is
  settled), the next pass retries.

All answers of a pass are settled in one fsynced outbox commit.

The record's height is the one the node reports for the transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.kwil.rpc_results import TxStatus
from kwil_sync.outbox_calls import Settlement, StoredCall

if TYPE_CHECKING:  # the outbox's batches carry a ConfirmReport
    from kwil_sync.outbox import Outbox

__all__ = ["ConfirmReport", "Confirmer"]

BuildTied = Callable[[StoredCall, int, int, str], DataItem]  # (call, height, sequence, prev)


@dataclass
class ConfirmReport:
    """What one confirmation pass did; counts are calls, `transactions` node queries."""

    confirmed: int = 0
    voided: int = 0
    waiting: int = 0
    unconfirmed: int = 0
    transactions: int = 0
    node_error: str = ""


class Confirmer:
    """Confirms the outbox's due tied calls, one pass at a time.

    Args:
        outbox: Where the calls wait.
        tx_query: The node's `tx_query` (None when the node does not know the hash).
        build: Signs the record of a confirmed call: (call, height, sequence, prev id).
        timeout_s: After this long unknown to the node, a call is reported unconfirmed.
        retry_s: How soon a transaction not committed yet is asked about again.
        max_txs: At most this many transactions per pass.
        budget_s: Stop asking after this long (a slow node must not make the upload
            flow's PendingItems call time out); the rest waits for the next pass.
    """

    def __init__(self, outbox: Outbox, tx_query: Callable[[str], TxStatus | None],
                 build: BuildTied, *, timeout_s: float = 600.0, retry_s: float = 0.5,
                 max_txs: int = 200, budget_s: float = 10.0) -> None:
        self.outbox, self.tx_query, self.build = outbox, tx_query, build
        self.timeout_s, self.retry_s, self.max_txs = timeout_s, retry_s, max_txs
        self.budget_s = budget_s
        self._pass = threading.Lock()  # one pass at a time: no transaction asked twice

    def run_pass(self) -> ConfirmReport:
        """Ask the node about every due transaction, then settle all its answers in one
        fsynced commit."""
        report = ConfirmReport()
        with self._pass:
            settlements: list[Settlement] = []
            deadline = time.monotonic() + self.budget_s
            for tx_hash, calls in self.outbox.due_calls(max_txs=self.max_txs).items():
                if time.monotonic() > deadline:
                    break  # the rest is due again on the next pass
                try:
                    status = self.tx_query(tx_hash)
                except Exception as exc:  # down, restarting, overloaded: retry next pass
                    report.node_error = (f"the node did not answer tx_query for {tx_hash}: "
                                         f"{exc}; the calls wait for the next pass")
                    break
                report.transactions += 1
                settlements.append(self._settlement(tx_hash, calls, status))
            counts = self.outbox.settle(settlements) if settlements else {}
        report.confirmed = counts.get("confirmed", 0)
        report.voided = counts.get("voided", 0)
        report.waiting = counts.get("waiting", 0)
        report.unconfirmed = counts.get("unconfirmed", 0)
        return report

    def _settlement(self, tx_hash: str, calls: list[StoredCall], status: TxStatus | None
                    ) -> Settlement:
        if status is None or status.pending:
            now_ms = time.time_ns() // 1_000_000
            late = now_ms - min(c.created_at_ms for c in calls) > self.timeout_s * 1000
            retry = max(self.retry_s, min(self.timeout_s, 30.0)) if late else self.retry_s
            return Settlement(tx_hash, calls, "unconfirmed" if late else "waiting",
                              next_check_ms=now_ms + int(retry * 1000))
        if status.code != 0:
            return Settlement(tx_hash, calls, "voided", code=status.code, log=status.log)
        height, build = status.height, self.build

        def sign(call: StoredCall, sequence: int, prev: str) -> DataItem:
            return build(call, height, sequence, prev)

        return Settlement(tx_hash, calls, "confirmed", build=sign)
