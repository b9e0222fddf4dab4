"""`kwil-sync demo` / `make demo`: the whole round trip on this machine, on 127.0.0.1.

It starts a Prefect server (with its UI), arlocal, the Irys-style bundler stand-in,
the gRPC shim for provider A, two Kwil provider stand-ins (A and B, kwild v0.9 wire;
A has the shim as its `db_sync` extension) and serves the deployments. Then it writes
a messages workload on A: A's node calls `db_sync.save_action_tx(@txid, @height, ...)`
itself while it executes each block, as kwild does, and one transaction's second
argument set fails, rolling back a transaction whose first set already made the call.
Upload flow runs confirm each call's transaction on A (`tx_query`) and carry only the
committed ones to the bundler (and from there, bundled, to arlocal); the rolled-back
call is voided. It restores the database onto B with a run of the restore deployment,
writes more and brings B level with one follow run, uploads a forged record (signed by
a key nobody trusts) to show it refused, and finally verifies B against A, then changes
one row on B behind kwil-sync's back and verifies again. Every run is in the Prefect UI.
What it started is stopped on exit (Ctrl-C too) unless `--keep` is given.

`--json` adds to the counts: `rolled_back_saved` (save_action calls made for
transactions that did not commit, voided in the outbox), `rolled_back_published`
(records of those on the bundler: must be 0), `untied` (records of the 2023
`save_action` form: 0 here), `events` (kwil-sync events the Prefect server received)
`automation_fired` (the quarantine automation the demo creates fired on the forged
record), `verified_equal_before` (verify found B equal to A: true) and `drift_keys`
(after one row of B is changed behind kwil-sync's back, the keys verify names: exactly
1).
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kwil_sync.defaults import (
    BUNDLER_BLOCK,
    FOLLOW_DEPLOYMENT,
    GATEWAY_BLOCK,
    RESTORE_DEPLOYMENT,
    SHIM_BLOCK,
)
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.testing.procs import free_port
from kwil_sync.testing.stack import PROJECT_ROOT, LocalStack, standin_call

__all__ = ["run_demo"]

ROWS = "SELECT id, body, author, created_at FROM messages ORDER BY id"
FORGED_ID = "999999"


@dataclass
class Demo:
    """The services and names of one demo run."""

    stack: LocalStack
    console: Console
    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    db_a: str = ""
    db_b: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def run_demo(*, actions: int, follow_actions: int, as_json: bool, keep: bool,
             root: Path | None = None) -> int:
    """Run the demo; returns the exit code (0 when B ends equal to A and nothing forged landed)."""
    root = root or PROJECT_ROOT / ".demo"
    shutil.rmtree(root, ignore_errors=True)
    console = Console(stderr=as_json)
    demo = Demo(LocalStack(root), console)
    started = time.monotonic()
    try:
        _start_services(demo)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: demo.urls["prefect"]}):
            _configure(demo)
            _write_restore_follow(demo, actions, follow_actions)
            _forge(demo)
            _verify(demo)
            _events(demo)
        demo.results["seconds"] = round(time.monotonic() - started, 1)
        _summary(demo)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    finally:
        if keep:
            pids = demo.stack.pids()
            console.print(f"[bold]--keep[/bold]: services still running (logs in {root}/logs): "
                          + ", ".join(f"{name} {pid}" for name, pid in pids.items()))
            console.print("stop them (each with its children) with: kill -- "
                          + " ".join(f"-{pid}" for pid in pids.values()))
        else:
            with console.status("stopping what the demo started"):
                demo.stack.stop()
    if as_json:
        print(json.dumps(demo.results))
    ok = (demo.results.get("state_equal") and demo.results.get("forged_applied") == 0
          and demo.results.get("rolled_back_published") == 0
          and demo.results.get("verified_equal_before") is True
          and demo.results.get("drift_keys") == 1)
    return 0 if ok else 1


def _step(demo: Demo, text: str, action: Callable[[], Any]) -> Any:
    with demo.console.status(text):
        value = action()
    demo.console.print(f"[green]✓[/green] {text}")
    return value


def _start_services(demo: Demo) -> None:
    stack = demo.stack
    port = 4200 if _free(4200) else free_port()
    demo.urls["prefect"] = _step(demo, "Prefect server (with UI) on 127.0.0.1",
                                 lambda: stack.start_prefect(ui=True, port=port))
    demo.urls["ui"] = demo.urls["prefect"].removesuffix("/api")
    demo.urls["arlocal"] = _step(demo, "arlocal, a local Arweave gateway", stack.start_arlocal)
    demo.urls["bundler"] = _step(demo, "Irys-style bundler stand-in, bundling into arlocal",
                                 lambda: stack.start_bundler(demo.urls["arlocal"], interval=1.0))
    demo.urls["node_b"] = _step(demo, "Kwil provider stand-in B (the restore target)",
                                lambda: stack.start_kwil_node("node-b", version="v0.9",
                                                              chain_id="kwil-demo-b"))
    demo.urls["node_a"] = f"http://127.0.0.1:{free_port()}"  # started after its shim


def _configure(demo: Demo) -> None:
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway, Bundler
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.blocks.shim import SyncShim
    from kwil_sync.flows.automations import create_automations
    from kwil_sync.testing.workload import messages_schema

    stack, urls = demo.stack, demo.urls
    demo.keys = {name: secrets.token_hex(32) for name in ("a", "b", "user", "attacker")}
    owners = {n: EthereumKey(demo.keys[n]).address for n in ("a", "b")}
    demo.db_b = str(standin_call(urls["node_b"], "deploy", owner=owners["b"], name="messages",
                                 schema=json.loads(messages_schema("none").to_json()))["target"])
    for name in ("a", "b"):
        KwilNode(rpc_url=urls[f"node_{name}"], version="v0.9",
                 private_key=SecretStr(demo.keys[name])).save(f"node-{name}", overwrite=True)
    ArweaveGateway(graphql_url=f"{urls['bundler']}/graphql", dialect="irys",
                   data_url=urls["bundler"]).save(GATEWAY_BLOCK, overwrite=True)
    Bundler(kind="irys", url=urls["bundler"]).save(BUNDLER_BLOCK, overwrite=True)
    urls["shim"] = _step(demo, "gRPC shim beside provider A (db_sync extension)",
                         lambda: stack.start_shim(
                             kwil_url=urls["node_a"], key_file=stack.write_key("a", demo.keys["a"]),
                             extra=["--restore-parameter", "node=node-a",
                                    "--restore-parameter", "skip_own=true",
                                    "--kwil-version", "v0.9", "--batch-interval-ms", "500"]))
    SyncShim(address=urls["shim"]).save(SHIM_BLOCK, overwrite=True)
    _step(demo, "automations: follow stalled (10 min), record quarantined",
          lambda: create_automations(stall_minutes=10))
    _step(demo, "deployments served (restore, follow, upload, backfill)",
          lambda: stack.start_serve("--upload-interval", "10"))
    port_a = int(urls["node_a"].rsplit(":", 1)[1])
    _step(demo, "Kwil provider stand-in A, calling the shim as its db_sync extension",
          lambda: stack.start_kwil_node("node-a", version="v0.9", chain_id="kwil-demo-a",
                                        port=port_a, extension_endpoints=[urls["shim"]]))
    # kwild initializes db_sync on deploy: the shim completes the metadata
    demo.db_a = str(standin_call(urls["node_a"], "deploy", owner=owners["a"], name="messages",
                                 schema=json.loads(messages_schema("tied").to_json()))["target"])


def _write_restore_follow(demo: Demo, actions: int, follow_actions: int) -> None:
    from kwil_sync.kwil.client import KwilClient
    from kwil_sync.testing.workload import MessagesWorkload

    workload = MessagesWorkload(KwilClient(demo.urls["node_a"], version="v0.9"), demo.db_a,
                                demo.keys["user"], demo.urls["shim"], {},
                                node_calls_extension=True)
    try:
        demo.results["saved"] = _write(demo, workload, actions,
                                       "Writing on A (A's node calls the shim)")
        failed = _step(demo, "One transaction on A whose second argument set fails",
                       workload.run_rolled_back)
        _wait_uploaded(demo, demo.results["saved"])
        _rolled_back(demo, failed.tx_hash)
        params = {"original_dbid": demo.db_a, "target": demo.db_b, "node": "node-b",
                  "gateway": GATEWAY_BLOCK}
        _run_flow(demo, RESTORE_DEPLOYMENT, params, "Restoring onto B",
                  expect=demo.results["saved"])
        demo.results["restored"] = _ledger_done(demo)
        _write(demo, workload, follow_actions, "Writing more on A")
        _wait_uploaded(demo, demo.results["saved"] + follow_actions)
        _run_flow(demo, FOLLOW_DEPLOYMENT, params, "One follow run onto B",
                  expect=follow_actions)
        demo.results["follow_applied"] = _ledger_done(demo) - demo.results["restored"]
        demo.results["saved"] += follow_actions
        rows_a = standin_call(demo.urls["node_a"], "rows", target=demo.db_a, sql=ROWS)["rows"]
        rows_b = standin_call(demo.urls["node_b"], "rows", target=demo.db_b, sql=ROWS)["rows"]
        demo.results["rows_a"], demo.results["rows_b"] = len(rows_a), len(rows_b)
        demo.results["state_equal"] = rows_a == rows_b
    finally:
        workload.close()


def _rolled_back(demo: Demo, tx_hash: str, timeout: float = 120) -> None:
    """Wait until the shim voided the failed transaction's call; count what was published."""
    from kwil_sync.arweave.graphql import GraphQLPager
    from kwil_sync.shim_client import ShimClient

    deadline = time.monotonic() + timeout
    with ShimClient(demo.urls["shim"]) as shim:
        while not (voided := shim.calls("voided", demo.db_a)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the call of failed transaction {tx_hash} was not voided "
                                   f"within {timeout:.0f} s; see {demo.stack.root}/logs")
            time.sleep(0.5)
        demo.results["untied"] = sum(c.untied for c in shim.status(demo.db_a))
    hashes = sorted({c.tx_hash for c in voided})
    demo.results["rolled_back_saved"] = len(voided)
    demo.results["rolled_back_tx_in_voided"] = tx_hash in hashes
    pager = GraphQLPager(f"{demo.urls['bundler']}/graphql", "irys")
    demo.results["rolled_back_published"] = sum(1 for _ in pager.records(
        {"Original-DBID": [demo.db_a], "Kwil-Tx-Hash": hashes}))


def _write(demo: Demo, workload: Any, count: int, title: str) -> int:
    with _bar(demo) as bar:
        task = bar.add_task(title, total=count)
        for start in range(0, count, 50):
            workload.run(workload.plan(min(50, count - start)))
            bar.advance(task, min(50, count - start))
    return count


def _wait_uploaded(demo: Demo, total: int, timeout: float = 300) -> None:
    """Until the bundler's GraphQL lists `total` records of the database."""
    from kwil_sync.arweave.graphql import GraphQLPager

    pager = GraphQLPager(f"{demo.urls['bundler']}/graphql", "irys")
    deadline = time.monotonic() + timeout
    with _bar(demo) as bar:
        task = bar.add_task("Upload flow runs carrying records to the bundler", total=total)
        while time.monotonic() < deadline:
            seen = sum(1 for _ in pager.records({"Original-DBID": [demo.db_a]}))
            bar.update(task, completed=seen)
            if seen >= total:
                return
            time.sleep(1)
    raise TimeoutError(f"records did not all reach the bundler within {timeout:.0f} s; see "
                       f"{demo.stack.root}/logs/serve.log and shim.log")


def _run_flow(demo: Demo, deployment: str, params: dict[str, Any], title: str,
              timeout: float = 600, expect: int = 1) -> None:
    """Run a deployment and wait; the bar counts records applied (the ledger's done
    count, read while the run writes it) of the `expect` records the log holds for it."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    before = _ledger_done(demo)
    run: Any = run_deployment(deployment, parameters=params, timeout=0)
    deadline = time.monotonic() + timeout
    with _bar(demo) as bar, get_client(sync_client=True) as client:
        task = bar.add_task(f"{title} ({run.name})", total=expect)
        while time.monotonic() < deadline:
            run = client.read_flow_run(run.id)  # named by the flow once it starts
            state = run.state
            bar.update(task, completed=min(expect, _ledger_done(demo) - before),
                       description=f"{title} ({run.name}: "
                                   f"{state.name if state else 'pending'})")
            if state is not None and state.is_final():
                break
            time.sleep(0.5)
    if state is None or not state.is_completed():
        raise RuntimeError(f"{deployment} run {run.name} ended {state}; see "
                           f"{demo.urls['ui']}/runs/flow-run/{run.id}")
    demo.console.print(f"[green]✓[/green] {title}: {demo.urls['ui']}/runs/flow-run/{run.id}")


def _ledger_done(demo: Demo) -> int:
    from kwil_sync.ledger import Ledger

    ledger = Ledger(demo.stack.root / "state" / "ledger.sqlite")  # readers never block (WAL)
    try:
        counts = ledger.counts(f"kwil-demo-b/{demo.db_b}")
        demo.results["quarantined"] = counts.quarantined
        return counts.done
    finally:
        ledger.close()


def _forge(demo: Demo) -> None:
    """Upload a record for A's database signed by an untrusted key; follow must refuse it."""
    from kwil_sync.arweave.ans104 import EthereumSigner
    from kwil_sync.arweave.uploaders import IrysUploader
    from kwil_sync.records import build_record

    attacker = EthereumSigner(demo.keys["attacker"])
    forged = build_record(attacker, original_dbid=demo.db_a, local_dbid=demo.db_a,
                          local_db_name="messages", action_name="post_message_sync",
                          data=[("$id", FORGED_ID), ("$body", "forged"),
                                ("$author", attacker.address),
                                ("$created_at", str(int(time.time() * 1000)))],
                          sequence=1, prev_action_id="-", created_at_ms=int(time.time() * 1000))
    IrysUploader(demo.urls["bundler"]).upload([forged])
    params = {"original_dbid": demo.db_a, "target": demo.db_b, "node": "node-b",
              "gateway": GATEWAY_BLOCK}
    _run_flow(demo, FOLLOW_DEPLOYMENT, params, "Follow run with a forged record",
              expect=0)
    _ledger_done(demo)
    rows = standin_call(demo.urls["node_b"], "rows", target=demo.db_b,
                        sql=f"SELECT id FROM messages WHERE id = {FORGED_ID}")["rows"]
    demo.results["forged_applied"] = len(rows)


def _verify(demo: Demo) -> None:
    """Verify B equals A; change one row on B behind kwil-sync's back; verify names it."""
    from kwil_sync.deployments.demo_verify import run_verify_demo

    result = _step(demo, "Verify B equals A, then find one row changed on B behind our back",
                   lambda: run_verify_demo(
                       db_a=demo.db_a, db_b=demo.db_b, node_b_dir=demo.stack.root / "node-b",
                       ledger_path=str(demo.stack.root / "state" / "ledger.sqlite")))
    demo.results["verified_equal_before"] = result["verified_equal_before"]
    demo.results["drift_keys"] = result["drift_keys"]


def _events(demo: Demo, timeout: float = 60) -> None:
    """Count the kwil-sync events the server received, and wait for the quarantine
    automation to fire on the forged record."""
    from kwil_sync.flows.automations import QUARANTINE_AUTOMATION
    from kwil_sync.flows.events import read_events

    def fired() -> bool:
        return any(e["resource"].get("prefect.resource.name") == QUARANTINE_AUTOMATION
                   for e in read_events("prefect.automation.triggered"))

    deadline = time.monotonic() + timeout
    with demo.console.status("the quarantine automation firing on the forged record"):
        while not (done := fired()) and time.monotonic() < deadline:
            time.sleep(1)
    demo.results["automation_fired"] = done
    demo.results["events"] = _count_events()
    demo.console.print(f"[green]✓[/green] {demo.results['events']} kwil-sync events on the "
                       f"server; quarantine automation fired: {done}")


def _count_events() -> int:
    """kwil-sync events on the server (paged through the API, 50 a page)."""
    import httpx
    from prefect.settings import get_current_settings

    api = str(get_current_settings().api.url)
    page = httpx.post(f"{api}/events/filter", timeout=15, json={
        "filter": {"event": {"prefix": ["kwil-sync."]}}, "limit": 50}).json()
    return int(page.get("total", len(page.get("events", []))))


def _summary(demo: Demo) -> None:
    r = demo.results
    table = Table(title="kwil-sync demo")
    table.add_column("what")
    table.add_column("result", justify="right")
    for label, key in [("actions saved on A through the shim", "saved"),
                       ("applied on B by the restore run", "restored"),
                       ("applied on B by the follow run", "follow_applied"),
                       ("records quarantined on B", "quarantined"),
                       ("forged records applied", "forged_applied"),
                       ("save_action calls of rolled-back transactions (voided)",
                        "rolled_back_saved"),
                       ("... of which published", "rolled_back_published"),
                       ("untied records (2023 save_action form)", "untied"),
                       ("verify before the change: B equal to A", "verified_equal_before"),
                       ("keys verify named after one row changed on B", "drift_keys"),
                       ("kwil-sync events on the Prefect server", "events"),
                       ("quarantine automation fired", "automation_fired"),
                       ("rows on A / on B", None), ("B equals A", "state_equal"),
                       ("seconds", "seconds")]:
        value = f"{r.get('rows_a')} / {r.get('rows_b')}" if key is None else r.get(key)
        table.add_row(label, str(value))
    demo.console.print(table)
    demo.console.print(f"Every run is in the Prefect UI: [bold]{demo.urls['ui']}[/bold] "
                       "(flow runs, task runs per page and batch, artifacts)")


def _bar(demo: Demo) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=demo.console, transient=False)


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


if __name__ == "__main__":
    sys.exit(run_demo(actions=300, follow_actions=50, as_json="--json" in sys.argv,
                      keep="--keep" in sys.argv))
