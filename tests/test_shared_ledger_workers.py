"""Exactly once on any worker: restore and follow runs on two process-pool workers, each run
in a new empty state folder (as every run on a container pool is), sharing one PostgreSQL
ledger through a LedgerDatabase block.

The log is a counter workload whose twin is not idempotent (`UPDATE counters SET n = n + 1`),
so any record applied twice shows in the counts. Each worker polls a work queue of its own
(`shared-a`, `shared-b`), so a test chooses where each run lands. Scenarios, in order:
(b) a restore SIGKILLed mid-batch on worker A, rerun on worker B; (a) three follow polls
A, B, A with new records between them; (c) two restores of one pair racing on A and B;
(d) PostgreSQL restarted mid-run, then a rerun; (e) a run with no shared ledger configured
on a pair Prefect knows: refused; (f) the ledger exported and imported into a new
database: the next run there applies nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from helpers_records import (
    Call,
    Provider,
    committed_calls,
    mine,
    post_bundle,
    prefect_cli,
    session_stack,
    worker_polls,
)
from helpers_records import sign_chain as sign_calls

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.ledger import open_ledger
from kwil_sync.testing.arlocal import Arlocal, wait_indexed
from kwil_sync.testing.kwil_node_schema import ActionDef, Schema
from kwil_sync.testing.postgres import PostgresServer
from kwil_sync.testing.procs import stop_process, wait_until
from kwil_sync.testing.stack import PROJECT_ROOT, LocalStack, standin_call

POOL = "kwil-sync"
QUEUES = ("shared-a", "shared-b")
ORIGINAL = Provider("81" * 32, name="counters")
TARGET_KEY = "82" * 32
CHAIN_ID = "shared-ledger-chain"
NODE_BLOCK, GATEWAY_BLOCK, LEDGER_BLOCK = "shared-node", "shared-arlocal", "shared-ledger"
COUNTERS = Schema(
    tables=["CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"],
    actions=[ActionDef("add_counter_sync", [("$id", "int")], False,
                       "INSERT INTO counters (id, n) VALUES ($id, 0)"),
             ActionDef("bump_sync", [("$id", "int"), ("$serial", "int")], False,
                       "UPDATE counters SET n = n + 1 WHERE id = $id")])
FIRST = 60  # records restored by (b), (c) and (d)


def counter_calls(first_serial: int, count: int) -> list[Call]:
    """Bumps of counters 1-3 (serials make every record's Action-Id unique)."""
    return [Call("bump_sync", [("$id", str(1 + s % 3)), ("$serial", str(s))])
            for s in range(first_serial, first_serial + count)]


def expected_counts(calls: list[Call]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for call in calls:
        values = dict(call.data)
        if call.action == "add_counter_sync":
            counts[int(values["$id"])] = 0
        else:
            counts[int(values["$id"])] += 1
    return counts


@dataclass
class World:
    stack: LocalStack
    arlocal: Arlocal
    postgres: PostgresServer
    node_url: str
    chain_dir: Path
    calls: list[Call] = field(default_factory=list)
    items: list[DataItem] = field(default_factory=list)

    def publish(self, calls: list[Call]) -> None:
        """Sign `calls` as the next records of the original provider and index them."""
        prev = self.items[-1].tag("Action-Id") if self.items else None
        items = sign_calls(ORIGINAL, calls, first_sequence=len(self.items) + 1,
                           **({"prev_action_id": prev} if prev else {}))
        post_bundle(self.arlocal, items)
        mine(self.arlocal.url)
        self.items += items
        self.calls += calls
        wait_indexed(self.arlocal.url, ORIGINAL.dbid, len(self.items))

    def target(self, name: str) -> str:
        """Deploy a counters database `name` owned by the target key; its dbid."""
        return str(standin_call(self.node_url, "deploy", owner=EthereumKey(TARGET_KEY).address,
                                name=name, schema=json.loads(COUNTERS.to_json()))["target"])

    def counts(self, target: str) -> dict[int, int]:
        rows = standin_call(self.node_url, "rows", target=target,
                            sql="SELECT id, n FROM counters ORDER BY id")["rows"]
        return {int(r["id"]): int(r["n"]) for r in rows}

    def assert_exact(self, target: str) -> None:
        """Every record applied once: the counts, and each call committed exactly once."""
        assert self.counts(target) == expected_counts(self.calls)
        committed = committed_calls(self.chain_dir, target)
        assert len(committed) == len(self.calls) and set(committed.values()) == {1}, \
            {k: n for k, n in committed.items() if n != 1}


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, arlocal: Arlocal,
          postgres: PostgresServer) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.blocks.ledger import LedgerDatabase

    stack = session_stack(request)
    assert stack.prefect_api_url is not None
    # Blocks of 0.5 s: a run spends most of its time waiting for confirmations, the
    # moment the kill and the restart below aim at.
    node_url = stack.start_kwil_node("shared-node", chain_id=CHAIN_ID, block_interval=0.5)
    world = World(stack, arlocal, postgres, node_url, stack.root / "shared-node")
    with ThreadPoolExecutor(1) as pool:
        published = pool.submit(world.publish, [Call("add_counter_sync", [("$id", str(i))])
                                                for i in (1, 2, 3)]
                                + counter_calls(1, FIRST - 3))
        ledger_url = postgres.create_database("shared_ledger")
        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            # a transaction per record: the scenarios interrupt a run between its stored
            # intents and its results, which packed transactions pass through too fast
            # to hit (tests/test_tx_packing.py covers crashes of packed ones)
            KwilNode(rpc_url=node_url, version="v0.9", chain_id=CHAIN_ID,
                     private_key=SecretStr(TARGET_KEY),
                     max_calls_per_tx=1).save(NODE_BLOCK, overwrite=True)
            ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                           data_url=arlocal.url).save(GATEWAY_BLOCK, overwrite=True)
            LedgerDatabase(url=SecretStr(ledger_url)).save(LEDGER_BLOCK, overwrite=True)
        prefect_cli(stack, "work-pool", "create", POOL, "--type", "process", "--overwrite")
        for queue in QUEUES:
            prefect_cli(stack, "work-queue", "create", queue, "--pool", POOL, check=False)
        prefect_cli(stack, "--no-prompt", "deploy", "--name", "restore", "--name", "follow")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")
            for queue in QUEUES:
                stack.spawn(queue, [str(Path(sys.executable).parent / "prefect"), "worker",
                                    "start", "--pool", POOL, "--work-queue", queue, "--name",
                                    queue, "--limit", "2"],
                            ready=partial(worker_polls, stack, POOL, queue), timeout=120)
        published.result()
    try:
        yield world
    finally:
        for queue in QUEUES:
            stop_process(stack.processes.pop(queue), timeout=10)


def submit(world: World, flow: str, queue: str, tmp: Path, **parameters: Any) -> UUID:
    """A run of the `flow` deployment on `queue`'s worker, in a new empty state folder."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    state_dir = tmp / f"state-{time.monotonic_ns()}"  # never used before: a fresh container
    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}):
        run = run_deployment(f"kwil-sync-{flow}/{flow}", timeout=0, work_queue_name=queue,
                             job_variables={"env": {
                                 "PREFECT_INTEGRATIONS_KWIL_SYNC_STATE_DIR": str(state_dir)}},
                             parameters={"original_dbid": ORIGINAL.dbid, "node": NODE_BLOCK,
                                         "gateway": GATEWAY_BLOCK, **parameters})
    return run.id  # type: ignore[union-attr]


def read_run(world: World, run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}), \
            get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def finish(world: World, run_id: UUID, timeout: float = 180) -> Any:
    """Wait for the run's final state; returns the flow run."""
    wait_until(lambda: _final(read_run(world, run_id)), timeout=timeout,
               what=f"flow run {run_id}", interval=0.5)
    return read_run(world, run_id)


def _final(run: Any) -> bool:
    return run.state is not None and run.state.is_final()


def ledger_states(world: World, target: str) -> dict[str, int]:
    with open_ledger(world.postgres.url("shared_ledger")) as ledger:
        rows = ledger.store.rows("SELECT state, COUNT(*) FROM actions WHERE target LIKE ? "
                                 "GROUP BY state", (f"%/{target}",))
    return {str(s): int(n) for s, n in rows}


def interrupt_then_rerun(world: World, tmp: Path, target: str,
                         interrupt: Callable[[UUID], None]) -> Any:
    """A restore on worker A, interrupted once its intents are stored (mid-batch: the
    results are not), then a rerun on worker B that must finish it exactly.
    Returns A's run."""
    first = submit(world, "restore", "shared-a", tmp, target=target, ledger=LEDGER_BLOCK)
    wait_until(lambda: ledger_states(world, target).get("intended", 0) > 0, timeout=120,
               what="intents of the first restore", interval=0.05)
    interrupt(first)
    assert ledger_states(world, target).get("done", 0) < FIRST
    second = submit(world, "restore", "shared-b", tmp, target=target, ledger=LEDGER_BLOCK)
    assert finish(world, second).state.is_completed()
    world.assert_exact(target)
    return read_run(world, first)


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_b_a_restore_killed_on_worker_a_is_finished_exactly_on_worker_b(
        world: World, tmp_path: Path) -> None:
    def kill(run_id: UUID) -> None:
        os.kill(int(str(read_run(world, run_id).infrastructure_pid).rsplit(":", 1)[-1]),
                signal.SIGKILL)

    interrupt_then_rerun(world, tmp_path, world.target("counters_kill"), kill)


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_a_three_follow_polls_on_two_workers_in_fresh_folders_apply_exactly(
        world: World, tmp_path: Path) -> None:
    target = world.target("counters_follow")
    for n, queue in enumerate(("shared-a", "shared-b", "shared-a")):
        if n < 2:  # new records before the first two polls; the third only re-reads
            world.publish(counter_calls(1000 + 10 * n, 5))
        run = finish(world, submit(world, "follow", queue, tmp_path, target=target,
                                   ledger=LEDGER_BLOCK, lookback_seconds=3600))
        assert run.state.is_completed(), run.state.message
        assert world.counts(target) == expected_counts(world.calls)
    world.assert_exact(target)


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_c_two_workers_racing_on_one_pair_apply_once(world: World, tmp_path: Path) -> None:
    target = world.target("counters_race")
    runs = [submit(world, "restore", queue, tmp_path, target=target, ledger=LEDGER_BLOCK)
            for queue in QUEUES]
    assert [finish(world, r).state.is_completed() for r in runs] == [True, True]
    world.assert_exact(target)


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_d_postgresql_restarted_mid_run_then_a_rerun_is_exact(world: World,
                                                              tmp_path: Path) -> None:
    def restart(run_id: UUID) -> None:
        world.postgres.restart()
        run = finish(world, run_id)
        if not run.state.is_completed():  # it fails cleanly, naming the ledger (every time)
            assert "lost the ledger database" in (run.state.message or ""), run.state.message

    interrupt_then_rerun(world, tmp_path, world.target("counters_pg_restart"), restart)


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_e_a_fresh_worker_without_a_shared_ledger_is_refused(world: World,
                                                            tmp_path: Path) -> None:
    target = world.target("counters_unshared")
    run = finish(world, submit(world, "follow", "shared-a", tmp_path, target=target,
                               ledger=LEDGER_BLOCK, lookback_seconds=3600))
    assert run.state.is_completed()  # the first poll creates the cursor
    before = world.counts(target)
    # The next poll lands on a worker with no ledger configured: an empty SQLite file.
    run = finish(world, submit(world, "follow", "shared-b", tmp_path, target=target,
                               lookback_seconds=3600))
    assert run.state.is_failed() and "holds nothing for" in (run.state.message or "")
    assert "follow cursor" in run.state.message
    assert world.counts(target) == before
    world.assert_exact(target)


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_f_an_exported_then_imported_ledger_applies_nothing_again(world: World,
                                                                 tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.blocks.ledger import LedgerDatabase

    target = world.target("counters_moved")
    run = finish(world, submit(world, "restore", "shared-a", tmp_path, target=target,
                               ledger=LEDGER_BLOCK))
    assert run.state.is_completed()
    moved = world.postgres.create_database("moved_ledger")
    export = tmp_path / "ledger.jsonl"
    cli = [sys.executable, "-m", "kwil_sync.cli", "ledger"]
    subprocess.run([*cli, "export", "--ledger", world.postgres.url("shared_ledger"), "-o",
                    str(export)], cwd=PROJECT_ROOT, check=True, capture_output=True)
    subprocess.run([*cli, "import", str(export), "--ledger", moved], cwd=PROJECT_ROOT,
                   check=True, capture_output=True)
    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}):
        LedgerDatabase(url=SecretStr(moved)).save("shared-ledger-moved", overwrite=True)
    run = finish(world, submit(world, "restore", "shared-b", tmp_path, target=target,
                               ledger="shared-ledger-moved"))
    assert run.state.is_completed(), run.state.message
    world.assert_exact(target)
    with open_ledger(moved) as ledger:
        counts = [ledger.counts(t) for t in ledger.targets() if t.endswith(target)]
    assert [c.done for c in counts] == [len(world.calls)]
