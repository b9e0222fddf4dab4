"""Restore speed and memory: kwil-sync's restore vs the 2023 algorithm vs the read floor.

Set-up (timed apart): a fresh arlocal gets `--records` version 2 records
(`post_message_sync` of the messages workload, unique post ids, one provider key) as
bundles of 1,000, one mined block each. Every way below restores onto its own fresh Kwil
node stand-in, each in its own process (block interval `--block-interval`, 50 ms by
default), with its own messages database:

1. floor: GraphQL pager + `GatewayDataClient.fetch_many` over every record, no apply
   (streamed across pages, and page by page as the replayer reads);
2. core: `kwil_sync.replay.Replayer` wired as `flows.common.build_pipeline` wires it,
   without Prefect;
3. flow: the restore flow (`flows/restore.py`) against a Prefect server started by
   `prefect_test_harness`, with saved KwilNode and ArweaveGateway blocks;
3b. flow_pg: the same flow with its ledger in PostgreSQL (a throwaway server on
   127.0.0.1, `kwil_sync.testing.postgres`, a fresh database per round), the ledger
   container and multi-machine work pools share; `ratio_pg_to_sqlite` is its time over
   the SQLite flow's (best round of each);
3c. slow blocks: the flow once more onto a node making a block a second
   (`actions_per_s_1s_blocks`, `ratio_1s_blocks` to the best 50 ms flow);
   `txs_per_action` counts the flow's transactions (records go as argument sets of one
   transaction, `kwil_sync.tx_packing`);
4. baseline: the 2023 algorithm (`bench/baseline_2023.py`) on the first
   `--baseline-records` records, its rate extrapolated to the rest;
5. legacy proofs: `legacy_proof_ms_per_record`, what proving a 2023 record from its own
   bytes costs (`bench/legacy_proof.py`: 500 anchored 2023 records, 200 with `--quick`,
   in one bundle on the same arlocal; best of 3 rounds).

Floor, core, flow and flow_pg run `--rounds` times (2 by default), interleaved, and the best
rate of each way counts: the machine may be shared with other work, which only ever
slows a run down. Every round's rates are reported too (`*_actions_per_s_rounds`).

Checks: the core and flow targets each hold exactly one row per record, with equal
rows, and every baseline row equals the core row of the same id. Memory: the log is
extended to the largest `--memory-sizes` entry, then each size is restored in a fresh
child process (the flow, and the core), whose peak RSS (VmHWM) is read at its end.
The machine may be shared, so CPU per action of this process, the node and arlocal is
reported too (`*_cpu_ms_per_action_*`): it does not move with the load as rates do.
arlocal keeps its database in /dev/shm (set-up speed only); the ledgers stay on disk.

Prints progress on stderr, then one JSON object as the last line of stdout.
Run: `.venv/bin/python bench/restore.py [--records 10000] [--quick]` (about 15 to 25
minutes on 2 cores by default; `--quick` about 1 to 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/restore.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._records import (  # noqa: E402
    CpuMeter,
    MessagesLog,
    NodeProcess,
    RunResult,
    action_ids_in_order,
    measure_floor,
    run_core,
    save_blocks,
    start_arlocal,
)
from bench.baseline_2023 import restore_2023  # noqa: E402
from bench.legacy_proof import measure_legacy_proofs  # noqa: E402
from kwil_sync.ethkeys import EthereumKey  # noqa: E402
from kwil_sync.testing.arlocal import Arlocal  # noqa: E402
from kwil_sync.testing.postgres import PostgresServer  # noqa: E402

PROVIDER_KEY = "11" * 32  # signs the log (the original provider)
TARGET_KEY = "22" * 32  # owns every target database and signs the replayed actions
AUTHOR = EthereumKey("33" * 32).address  # the user who wrote the posts


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--baseline-records", type=int, default=500)
    parser.add_argument("--memory-sizes", default="2000,20000",
                        help="comma-separated restore sizes for the peak RSS runs ('' skips)")
    parser.add_argument("--memory-modes", default="flow,core")
    parser.add_argument("--version", choices=["v0.9", "v0.10"], default="v0.9")
    parser.add_argument("--block-interval", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=2,
                        help="floor, core and flow this many times, interleaved; the best "
                             "of each counts (the machine may be shared)")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 records, 100 baseline records, memory at 200 and 2,000")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        from bench._records import memory_child
        print(json.dumps(memory_child(json.loads(args.memory_child))), flush=True)
        return
    if args.quick:
        args.records, args.baseline_records, args.memory_sizes = 1000, 100, "200,2000"
    sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
    print(json.dumps(run(args, sizes)))


def run(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    out: dict[str, Any] = {"records": args.records, "kwil_version": args.version,
                           "block_interval_s": args.block_interval, "page_size": 100,
                           "batch_size": 1000, "pipeline_window": 256,
                           "fetch_concurrency": 16,
                           "node": "Kwil stand-in, its own process per way",
                           "cores": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    owner = EthereumKey(TARGET_KEY).address
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry from the harness
    with start_arlocal() as gw, tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp, \
            PostgresServer.start() as pg:
        mark = time.perf_counter()
        log = MessagesLog(gw, PROVIDER_KEY, AUTHOR)
        log.extend(args.records)
        out["setup_records_s"] = round(time.perf_counter() - mark, 1)
        say(f"{args.records} records on arlocal in {out['setup_records_s']} s")
        mark = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=180):
            out["prefect_startup_s"] = round(time.perf_counter() - mark, 1)
            api_url = str(PREFECT_API_URL.value())
            rounds = [_round(args, gw, log.original_dbid, owner, Path(tmp), n, pg)
                      for n in range(args.rounds)]
            slow = _slow_blocks(args, gw, log.original_dbid, owner, Path(tmp))
            memory = _memory_runs(args, gw, log, sizes, owner, api_url, Path(tmp))
        floor, core, flow, flow_pg = (max(rounds, key=lambda r: r[way]["rate"])[way]
                                      for way in ("floor", "core", "flow", "flow_pg"))
        for way, best in (("floor", floor), ("core", core), ("flow", flow),
                          ("flow_pg", flow_pg)):
            out.update(best["figures"])
            out[f"{way}_actions_per_s_rounds"] = [r[way]["rate"] for r in rounds]
        core_rows = core["rows"]
        baseline = _run_baseline(args, gw.url, log.original_dbid, owner, core_rows,
                                 gw.process.pid, out)
        out.update(measure_legacy_proofs(gw, records=200 if args.quick else 500))
    out.update(_summary(args, core["result"], flow["result"], baseline, floor["figures"]))
    out.update(_postgres_summary(flow["result"], flow_pg["result"]))
    out["actions_per_s_1s_blocks"] = round(slow.actions_per_s, 1)
    out["seconds_1s_blocks"] = round(slow.seconds, 2)
    # goal >= 0.8: slow blocks must not throttle a restore
    out["ratio_1s_blocks"] = round(slow.actions_per_s / flow["result"].actions_per_s, 3)
    out.update(_cpu_figures(out))
    out.update(memory)
    out["load_avg_end"] = os.getloadavg()[0]
    return out


def _round(args: argparse.Namespace, gw: Arlocal, original_dbid: str, owner: str, tmp: Path,
           n: int, pg: PostgresServer) -> dict[str, dict[str, Any]]:
    """One floor, one core restore and two flow restores (SQLite and PostgreSQL ledger),
    each onto a fresh node."""
    floor = measure_floor(gw.url, original_dbid, args.records, gw.process.pid)
    say(f"round {n + 1}: floor {floor['floor_actions_per_s']}/s streamed, "
        f"{floor['floor_per_page_actions_per_s']}/s page by page")
    out: dict[str, dict[str, Any]] = {
        "floor": {"rate": floor["floor_actions_per_s"], "figures": floor}}
    rows: list[dict[str, Any]] | None = None
    for way in ("core", "flow", "flow_pg"):
        with NodeProcess(owner, version=args.version,
                         block_interval=args.block_interval) as node:
            blocks = f"bench-{way.replace('_', '-')}-{n}"  # block names take no "_"
            if way != "core":
                save_blocks(blocks, node, gw.url, TARGET_KEY)
            ledger = (pg.create_database(f"bench_ledger_{n}") if way == "flow_pg"
                      else str(tmp / f"{way}-{n}.sqlite"))
            cpu = CpuMeter(node=node.process.pid, arlocal=gw.process.pid)
            result = (run_core(gw.url, original_dbid, node.url, args.version, node.target,
                               TARGET_KEY, Path(ledger)) if way == "core"
                      else _run_flow(original_dbid, node, ledger, blocks))
            figures = cpu.per_action_ms(args.records, way)
            _check_full(result, node, args.records, way)
            if way == "flow":  # goal <= 0.05: records packed as argument sets
                figures["txs_per_action"] = round(_transactions(ledger) / args.records, 4)
            if rows is None:
                rows = node.rows()
            elif node.rows() != rows:
                raise SystemExit("the flow's target rows differ from the core's")
        say(f"round {n + 1}: {way} {result.actions_per_s:.1f}/s ({result.seconds:.1f} s)")
        out[way] = {"rate": round(result.actions_per_s, 1), "figures": figures,
                    "result": result, "rows": rows}
    return out


def _transactions(ledger_path: str) -> int:
    """Distinct transactions a restore's SQLite ledger saw land."""
    with sqlite3.connect(ledger_path) as db:
        [(count,)] = db.execute("SELECT COUNT(DISTINCT tx_hash) FROM actions "
                                "WHERE state='done'").fetchall()
    return int(count)


def _slow_blocks(args: argparse.Namespace, gw: Arlocal, original_dbid: str, owner: str,
                 tmp: Path) -> RunResult:
    """One flow restore onto a node making a block a second (kwild's default is about
    6 s; 1 s already shows whether the in-flight window follows block time)."""
    with NodeProcess(owner, version=args.version, block_interval=1.0) as node:
        save_blocks("bench-slow", node, gw.url, TARGET_KEY)
        result = _run_flow(original_dbid, node, str(tmp / "slow.sqlite"), "bench-slow")
        _check_full(result, node, args.records, "flow at 1 s blocks")
    say(f"flow at 1 s blocks: {result.actions_per_s:.1f}/s ({result.seconds:.1f} s)")
    return result


def _run_flow(original_dbid: str, node: NodeProcess, ledger: str, blocks: str) -> RunResult:
    from kwil_sync.flows.restore import restore

    heights = node.height()
    mark = time.perf_counter()
    report = restore(original_dbid, node.target, node=f"{blocks}-node",
                     gateway=f"{blocks}-gateway", ledger_path=ledger)
    seconds = time.perf_counter() - mark
    return RunResult(seconds, report, node.height() - heights)


def _check_full(result: RunResult, node: NodeProcess, records: int, what: str) -> None:
    report = result.report
    rows = node.count()
    if rows != records or report["applied"] != records or report["failed"]:
        raise SystemExit(f"{what}: {rows} rows and {report['applied']} applied for {records} "
                         f"records ({report['failed']} failed, quarantined "
                         f"{report['quarantined']})")


def _run_baseline(args: argparse.Namespace, gateway_url: str, original_dbid: str, owner: str,
                  core_rows: list[dict[str, Any]], arlocal_pid: int, out: dict[str, Any]) -> Any:
    limit = min(args.baseline_records, args.records)
    with NodeProcess(owner, version=args.version,
                     block_interval=args.block_interval) as node:
        say(f"baseline (2023 algorithm): {limit} records, one at a time ...")
        cpu = CpuMeter(node=node.process.pid, arlocal=arlocal_pid)
        result = restore_2023(f"{gateway_url}/graphql", gateway_url, original_dbid, node.url,
                              TARGET_KEY, node.target, limit=limit, version=args.version)
        out.update(cpu.per_action_ms(limit, "baseline"))
        rows = node.rows()
    by_id = {row["id"]: row for row in core_rows}
    if result.applied != limit or len(rows) != limit or any(by_id[r["id"]] != r for r in rows):
        raise SystemExit(f"baseline: {result.applied} applied, {len(rows)} rows for {limit} "
                         "records, or rows that differ from kwil-sync's")
    say(f"baseline: {result.actions_per_s:.1f}/s ({result.seconds:.1f} s)")
    return result


def _memory_runs(args: argparse.Namespace, gw: Arlocal, log: MessagesLog, sizes: list[int],
                 owner: str, api_url: str, tmp: Path) -> dict[str, Any]:
    if not sizes:
        return {}
    mark = time.perf_counter()
    log.extend(max(sizes))
    out: dict[str, Any] = {"setup_memory_records_s": round(time.perf_counter() - mark, 1),
                           "memory_log_records": log.count}
    order = action_ids_in_order(gw.url, log.original_dbid)
    for mode in [m for m in args.memory_modes.split(",") if m]:
        for size in sizes:
            with NodeProcess(owner, version=args.version,
                             block_interval=args.block_interval) as node:
                name = f"bench-mem-{mode}-{size}"
                if mode == "flow":
                    save_blocks(name, node, gw.url, TARGET_KEY)
                spec = {"mode": mode, "name": name, "node_url": node.url,
                        "target": node.target, "version": args.version,
                        "gateway_url": gw.url, "original_dbid": log.original_dbid,
                        "until": order[size - 1] if size < len(order) else None,
                        "ledger": str(tmp / f"{name}.sqlite"), "key": TARGET_KEY}
                child = _child(spec, api_url)
                if node.count() != size or child["applied"] != size:
                    raise SystemExit(f"memory run {name}: {node.count()} rows, "
                                     f"{child['applied']} applied for {size} records")
            suffix = "" if mode == "flow" else f"_{mode}"
            label = f"{size // 1000}k" if size % 1000 == 0 else str(size)
            out[f"peak_rss_mb{suffix}_{label}"] = child["peak_rss_mb"]
            out[f"memory_run_actions_per_s{suffix}_{label}"] = child["actions_per_s"]
            out[f"memory_run_cpu_ms_per_action{suffix}_{label}"] = child["cpu_ms_per_action"]
            say(f"memory {mode} {size}: {child['peak_rss_mb']} MB peak RSS")
        if len(sizes) > 1:
            key = "" if mode == "flow" else f"_{mode}"
            small, large = (f"{s // 1000}k" if s % 1000 == 0 else str(s)
                            for s in (min(sizes), max(sizes)))
            out[f"rss_growth_mb{key}"] = round(out[f"peak_rss_mb{key}_{large}"]
                                               - out[f"peak_rss_mb{key}_{small}"], 1)
    return out


def _child(spec: dict[str, Any], api_url: str) -> dict[str, Any]:
    """Run one memory restore in a fresh interpreter; its last stdout line is JSON."""
    env = {**os.environ, "PREFECT_API_URL": api_url}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child",
                           json.dumps(spec)], env=env, capture_output=True, text=True,
                          check=False, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"memory child {spec['name']} failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(args: argparse.Namespace, core: RunResult, flow: RunResult, baseline: Any,
             floor: dict[str, Any]) -> dict[str, Any]:
    base = baseline.actions_per_s
    floor_rate = floor["floor_actions_per_s"]
    return {
        "actions_per_s": round(flow.actions_per_s, 1),
        "actions_per_s_flow": round(flow.actions_per_s, 1),
        "actions_per_s_core": round(core.actions_per_s, 1),
        "seconds_flow": round(flow.seconds, 2), "seconds_core": round(core.seconds, 2),
        "blocks_flow": flow.blocks, "blocks_core": core.blocks,
        "pages": core.report["pages"],
        "baseline_records": baseline.records,
        "baseline_extrapolated": baseline.records < args.records,
        "baseline_actions_per_s": round(base, 2),
        "baseline_seconds": round(baseline.seconds, 1),
        "baseline_fetch_share": round(baseline.fetch_seconds / baseline.seconds, 3),
        "baseline_estimated_full_s": round(args.records / base, 0),
        "speedup_vs_2023": round(flow.actions_per_s / base, 1),
        "speedup_vs_2023_core": round(core.actions_per_s / base, 1),
        "ratio_to_floor": round(floor_rate / flow.actions_per_s, 2),
        "ratio_to_floor_core": round(floor_rate / core.actions_per_s, 2),
    }


def _postgres_summary(flow: RunResult, flow_pg: RunResult) -> dict[str, Any]:
    return {"actions_per_s_flow_pg": round(flow_pg.actions_per_s, 1),
            "seconds_flow_pg": round(flow_pg.seconds, 2),
            # goal <= 1.15: intents are committed per signed group, never per record
            "ratio_pg_to_sqlite": round(flow_pg.seconds / flow.seconds, 3)}


def _cpu_figures(out: dict[str, Any]) -> dict[str, Any]:
    """Load-independent figures from CPU per action (the machine is shared)."""
    def total(prefix: str) -> float:
        return sum(v for k, v in out.items() if k.startswith(f"{prefix}_cpu_ms_per_action_"))

    return {
        # the most one client process could do with a whole core to itself
        "core_client_cpu_cap_actions_per_s": round(1000 / out["core_cpu_ms_per_action_bench"]),
        "flow_client_cpu_cap_actions_per_s": round(1000 / out["flow_cpu_ms_per_action_bench"]),
        "floor_client_cpu_cap_actions_per_s": round(1000 / out["floor_cpu_ms_per_action_bench"]),
        # CPU of client + node + arlocal per action, kwil-sync's over the floor's
        "cpu_ratio_to_floor_core": round(total("core") / total("floor"), 2),
        "cpu_ratio_to_floor_flow": round(total("flow") / total("floor"), 2),
    }


if __name__ == "__main__":
    main()
