"""Kill the restore flow's process at five random moments and rerun it each time: the final
state equals an uninterrupted restore's, every action executed exactly once, none missing.

300 signed records (posts and edits of the messages workload) go onto arlocal as one
bundle. The restore flow runs in a child process (`python -c`, the real flow against a
real Prefect server) onto a Kwil node stand-in that keeps its chain on disk. An
uninterrupted run onto a first database is the reference; a second database is
restored by a run SIGKILLed at five seeded moments spread over the restore (after a
stratified share of the actions reached the ledger, plus a random delay), rerun after
each kill, and finally run to completion.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_records import (
    ROWS_SQL,
    Call,
    Provider,
    committed_calls,
    expected_rows,
    messages_calls,
    messages_schema,
    mine,
    post_bundle,
    session_stack,
    sign_chain,
    wait_indexed,
)

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.payload import decode_action
from kwil_sync.kwil.tx import parse_tx
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.stack import PROJECT_ROOT, LocalStack, standin_call

RECORDS = 300
KILLS = 5
BATCH = 50  # records per apply step
SEED = 20240605
ORIGINAL = Provider("71" * 32)  # wrote the log
TARGET_KEY = "72" * 32  # the provider restored onto (owns both target databases)
AUTHOR = EthereumKey("73" * 32).address  # the user who posted on the original provider
CHAIN_ID = "h8-kill-chain"

# The restore flow, run as its own process so it can be killed anywhere.
CHILD = """
import json, sys
from kwil_sync.flows.restore import restore
report = restore(**json.loads(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    json.dump(report, out)
"""


@dataclass
class World:
    stack: LocalStack
    node_url: str
    chain_dir: Path
    calls: list[Call]
    action_ids: list[str]
    reference: str
    killed: str
    children: list[subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, arlocal: Arlocal) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    calls = messages_calls(RECORDS, AUTHOR, seed=SEED)
    items = sign_chain(ORIGINAL, calls)
    post_bundle(arlocal, items)
    with ThreadPoolExecutor(1) as pool:
        mining = pool.submit(mine, arlocal.url)  # arlocal is slow: overlap it with the setup
        stack = session_stack(request)
        node_url = stack.start_kwil_node("h8-kill-node", chain_id=CHAIN_ID,
                                         block_interval=0.05)
        owner = EthereumKey(TARGET_KEY).address
        targets = [str(standin_call(node_url, "deploy", owner=owner, name=name,
                                    schema=messages_schema())["target"])
                   for name in ("messages_reference", "messages_killed")]
        assert stack.prefect_api_url is not None
        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            # a few records per transaction: packed, and still many transactions to kill in
            KwilNode(rpc_url=node_url, version="v0.9", private_key=SecretStr(TARGET_KEY),
                     max_calls_per_tx=3).save("h8-kill-node", overwrite=True)
            ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                           data_url=arlocal.url).save("h8-kill-arlocal", overwrite=True)
        mining.result()
    wait_indexed(arlocal.url, ORIGINAL.dbid, RECORDS)
    world = World(stack, node_url, stack.root / "h8-kill-node", calls,
                  [str(i.tag("Action-Id")) for i in items], *targets, children=[])
    yield world
    for child in world.children:  # a failed test leaves no restore running behind it
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)


def _start_restore(world: World, target: str, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    params = {"original_dbid": ORIGINAL.dbid, "target": target, "node": "h8-kill-node",
              "gateway": "h8-kill-arlocal", "ledger_path": str(_ledger(world, target)),
              "batch_size": BATCH}
    out = world.stack.root / f"{name}.json"
    out.unlink(missing_ok=True)
    log = (world.stack.root / "logs" / f"{name}.log").open("ab")
    process = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(params), str(out)],
                               cwd=PROJECT_ROOT, env=world.stack.env(), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    world.children.append(process)
    return process, out


def _finish(process: subprocess.Popen[bytes], out: Path, timeout: float = 180) -> dict[str, Any]:
    code = process.wait(timeout)
    assert code == 0, f"the restore exited with {code}; see {out.parent}/logs"
    return dict(json.loads(out.read_text()))


def _ledger(world: World, target: str) -> Path:
    return world.stack.root / "state" / f"ledger-{target}.sqlite"


def _states(world: World, target: str) -> dict[str, int]:
    """State -> count in the ledger (read-only, while the restore writes)."""
    path = _ledger(world, target)
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM actions WHERE target=? "
                                   "GROUP BY state", (f"{CHAIN_ID}/{target}",)).fetchall())
    except sqlite3.OperationalError:  # created but not yet initialised
        return {}


def _rows(world: World, target: str) -> list[dict[str, Any]]:
    return list(standin_call(world.node_url, "rows", target=target, sql=ROWS_SQL)["rows"])


def _run_and_kill(world: World, k: int, threshold: int, delay: float) -> dict[str, int]:
    """Start a restore of the second target, SIGKILL it `delay` s after `threshold` actions
    are in the ledger; returns the ledger's states at the kill."""
    process, _ = _start_restore(world, world.killed, f"restore-killed-{k}")
    deadline = time.monotonic() + 180
    while sum(_states(world, world.killed).values()) < threshold:
        assert process.poll() is None, f"run {k} ended before its kill moment"
        assert time.monotonic() < deadline, f"run {k} made no progress to {threshold}"
        time.sleep(0.01)
    time.sleep(delay)
    assert process.poll() is None, f"run {k} ended before its kill moment"
    os.killpg(process.pid, signal.SIGKILL)  # the child leads its own process group
    assert process.wait(30) == -signal.SIGKILL
    return _states(world, world.killed)


@pytest.mark.arlocal
@pytest.mark.timeout(600)
def test_restore_killed_five_times_ends_like_an_uninterrupted_one(world: World) -> None:
    started = time.monotonic()
    process, out = _start_restore(world, world.reference, "restore-reference")
    reference = _finish(process, out)
    duration = time.monotonic() - started
    expected = expected_rows(world.calls)
    assert reference["applied"] == RECORDS and reference["quarantined"] == {}
    assert _rows(world, world.reference) == expected

    # Five kills at seeded moments spread over the restore: the k-th once a random share
    # within the k-th fifth of the actions is in the ledger, then a random delay.
    rng = random.Random(SEED)
    # The moments leave the last two batches out: a batch's actions enter the ledger
    # together and commit a block or two later, so a kill timed inside the last one can
    # land after the last action is done (the run alive, finishing its report).
    span = RECORDS - 2 * BATCH
    thresholds = [int(span * (k + 0.1 + 0.6 * rng.random()) / KILLS) for k in range(KILLS)]
    delays = [rng.uniform(0, min(0.3, duration / RECORDS * 10)) for _ in range(KILLS)]
    at_kill = [_run_and_kill(world, k, threshold, delay)
               for k, (threshold, delay) in enumerate(zip(thresholds, delays, strict=True))]
    # each kill found the restore further along, and none came after it was done
    done_at_kill = [s.get("done", 0) for s in at_kill]
    assert done_at_kill == sorted(done_at_kill) and done_at_kill[-1] < RECORDS

    process, out = _start_restore(world, world.killed, "restore-final")
    final = _finish(process, out)
    assert final["quarantined"] == {} and final["failed"] == 0
    # what the last kill left open was finished exactly: resolved or applied, once
    recovery = final["recovery"]
    assert recovery["failed"] == []
    assert final["applied"] + len(recovery["completed"]) == RECORDS - done_at_kill[-1]

    # Same rows as the uninterrupted restore (and as the log says).
    assert _rows(world, world.killed) == _rows(world, world.reference) == expected
    # The ledger: every action done exactly once, nothing pending, nothing else.
    with sqlite3.connect(f"file:{_ledger(world, world.killed)}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT action_id, state, code FROM actions WHERE target=?",
                          (f"{CHAIN_ID}/{world.killed}",)).fetchall()
        slots = [s for (s,) in db.execute("SELECT sequence FROM sequenced WHERE target=? "
                                           "ORDER BY sequence",
                                           (f"{CHAIN_ID}/{world.killed}",))]
    assert sorted(a for a, _, _ in rows) == sorted(world.action_ids)
    assert {(state, code) for _, state, code in rows} == {("done", 0)}
    assert slots == list(range(1, RECORDS + 1))
    # The chain: each call executed successfully exactly once on each target, and the
    # killed target saw no failed transaction (a repeated post would fail on its id).
    wanted = {f"{c.action}({json.dumps([v for _, v in c.data])})" for c in world.calls}
    for target in (world.reference, world.killed):
        executed = committed_calls(world.chain_dir, target)
        assert set(executed) == wanted
        assert set(executed.values()) == {1}, {k: n for k, n in executed.items() if n > 1}
    assert _failed_txs(world.chain_dir, world.killed) == 0
    print(json.dumps({"records": RECORDS, "uninterrupted_s": round(duration, 1),
                      "ledger_at_kills": at_kill, "final_run": {
                          "applied": final["applied"],
                          **{k: len(v) for k, v in recovery.items()}}}))


def _failed_txs(chain_dir: Path, target: str) -> int:
    """Committed transactions on `target` that failed (code != 0)."""
    with sqlite3.connect(f"file:{chain_dir / 'chain.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT tx FROM txs WHERE code != 0").fetchall()
    return sum(1 for (text,) in rows
               if decode_action("v0.9", parse_tx(json.loads(text)).payload).target == target)
