"""The chaos driver shared by tests/test_chaos.py (small) and bench/chaos.py (large): a
target on a Kwil stand-in that keeps its chain on disk, runs retried as a schedule would,
and the counting that does not trust kwil-sync's own report.

Scenarios live in `kwil_sync.testing.chaos_scenarios`; each takes a `ChaosWorld` and its
size, breaks something, and returns its figures (records expected and applied,
duplicates, missing, unexpected, plus what the scenario measured). The test asserts on
them; the bench adds them up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.data import GatewayDataClient, GatewayError
from kwil_sync.arweave.graphql import GraphQLError, GraphQLPager
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.errors import KwilError
from kwil_sync.ledger import Ledger
from kwil_sync.records import MAX_DOCUMENT_BYTES
from kwil_sync.replay import Replayer, ReplayReport
from kwil_sync.replay_recovery import PendingTransactions
from kwil_sync.sources import GraphQLSource, Start
from kwil_sync.testing.arlocal import Arlocal, wait_indexed
from kwil_sync.testing.faultproxy import FaultRates
from kwil_sync.testing.hostile import expected_rows
from kwil_sync.testing.hostile_judge import executions, post_bundles, tally
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import TrustPolicy

__all__ = ["ADMIN", "ADMIN_KEY", "Calls", "ChaosTarget", "ChaosWorld", "Figures",
           "RUN_FAILURES", "fault_rates", "run_until_done"]

# Records per transaction in the scenarios' restores (see ChaosTarget.replayer).
CALLS_PER_TX = 4

ADMIN_KEY = "d4" * 32  # owns every target database (a throwaway test key)
ADMIN = EthereumKey(ADMIN_KEY).address
ROWS = "SELECT id, body, author, created_at FROM messages ORDER BY id"
RUN_FAILURES = (GatewayError, GraphQLError, KwilError, PendingTransactions)
Calls = list[tuple[str, list[str]]]
Figures = dict[str, Any]


def fault_rates(rate: float) -> FaultRates:
    """`rate` of requests fail, split evenly over the four kinds; 10% more are slowed."""
    return FaultRates(latency=0.1, server_error=rate / 4, rate_limit=rate / 4, reset=rate / 4,
                      truncate=rate / 4, latency_seconds=0.05, retry_after_seconds=1)


class ChaosTarget:
    """A target database on an in-process kwild stand-in keeping its chain on disk."""

    def __init__(self, root: Path, name: str, version: str = "v0.9") -> None:
        (root / name).mkdir(parents=True)
        self.node = KwilNodeStandIn.start(version=version, block_interval=0.02,
                                          data_dir=root / name)
        self.name, self.version, self.chain_dir = name, version, root / name
        self.id = self.node.deploy(ADMIN, name, MESSAGES_SCHEMA)
        self.ledger = Ledger(root / name / "ledger.sqlite")

    def replayer(self, graphql_url: str, data_url: str, original: str, *,
                 kwil_url: str | None = None, trusted: frozenset[str] = frozenset(),
                 page_size: int = 100) -> Replayer:
        pager = GraphQLPager(graphql_url, "gateway", page_size=page_size)
        # a few records per transaction: packed, yet a restore of a hundred records still
        # takes dozens of transactions, so a fault can strike in the middle of it
        applier = KwilApplier(KwilClient(kwil_url or self.node.url, version=self.version),
                              ADMIN_KEY, self.id, max_calls_per_tx=CALLS_PER_TX)
        return Replayer(GraphQLSource(pager, original),
                        GatewayDataClient(data_url, max_bytes=MAX_DOCUMENT_BYTES), applier,
                        self.ledger, TrustPolicy(original, trusted), target_id=self.id)

    def figures(self, calls: Calls) -> Figures:
        """What the node executed against `calls`, counted on its own chain."""
        counts = tally(calls, executions(self.chain_dir, self.id, self.version))
        return {"records_expected": counts.expected, "records_applied": counts.applied,
                "duplicates": len(counts.duplicates), "missing": len(counts.missing),
                "unexpected": len(counts.unexpected),
                "rows_match": self.node.rows(self.id, ROWS) == expected_rows(calls)}

    def close(self) -> None:
        self.ledger.close()
        self.node.stop()


@dataclass
class ChaosWorld:
    """What every scenario shares: a folder, arlocal, and the environment of the processes
    a scenario starts (with `PREFECT_API_URL` for the flows run there)."""

    root: Path
    arlocal: Arlocal
    env: dict[str, str]
    say: Callable[[str], None] = field(default=lambda text: None)

    @contextmanager
    def target(self, name: str, version: str = "v0.9") -> Iterator[ChaosTarget]:
        target = ChaosTarget(self.root, name, version)
        try:
            yield target
        finally:
            target.close()

    def publish(self, original: str, items: list[DataItem], total: int) -> None:
        """Post items straight to arlocal (bundles of 250) until `total` are indexed."""
        post_bundles(self.arlocal, [items[i:i + 250] for i in range(0, len(items), 250)])
        self.wait_indexed(original, total)

    def wait_indexed(self, original: str, total: int, timeout: float = 300) -> None:
        wait_indexed(self.arlocal.url, original, total, timeout=timeout, interval=0.5)


@dataclass
class Runs:
    """How a run retried as a schedule would ended: the completing run's report (None if
    none completed), each failed run's error, and the ledger at the first failure."""

    report: ReplayReport | None
    failures: list[str]
    done_at_first_failure: int | None = None
    pending_at_first_failure: int | None = None

    def failed_runs(self) -> dict[str, int]:
        return {kind: self.failures.count(kind) for kind in sorted(set(self.failures))}


def run_until_done(make: Callable[[], Replayer], start: Start | None = None, *,
                   follow: bool = False, attempts: int = 60, pause_s: float = 1.0,
                   target: ChaosTarget | None = None,
                   say: Callable[[str], None] = lambda text: None) -> Runs:
    """Run, and rerun `pause_s` after each failure the pipeline reports."""
    runs = Runs(None, [])
    for _ in range(attempts):
        try:
            runs.report = make().run(start, follow=follow, skip_provider=ADMIN)
            return runs
        except RUN_FAILURES as exc:
            if target is not None and not runs.failures:
                runs.done_at_first_failure = target.ledger.counts(target.id).done
                runs.pending_at_first_failure = len(target.ledger.pending(target.id))
            runs.failures.append(type(exc).__name__)
            say(f"  run failed ({type(exc).__name__}: {str(exc)[:120]}); running again")
            time.sleep(pause_s)
    say(f"  no run completed in {attempts} attempts")
    return runs
