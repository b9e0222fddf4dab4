"""Applying actions to kwild: one at a time (each waits for its commit) vs the nonce pipeline.

Starts the kwild stand-in in its own process (block interval `--block-interval`,
50 ms by default), deploys two identical databases, and applies the same `--actions`
insert actions to each, in the same run:
- serial: sign with the next nonce, broadcast in commit mode, wait, next;
- pipeline: `NoncePipeline` (window `--window`): consecutive nonces, mempool
  broadcasts, confirmation by `tx_query` in a second thread.
The pipeline pass runs `--pipeline-runs` times (3 by default, each into its own
database) and its median counts: a few seconds of work is easily disturbed by other
processes on a shared machine, which the load averages in the result show. Every
database is then checked to hold every row, in order.

Prints progress lines, then one JSON object as the last line with `actions`,
`actions_per_s_serial`, `actions_per_s_pipeline` (the median) and `speedup`.
Run: `.venv/bin/python bench/kwil_apply.py [--actions 2000] [--version v0.10]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.payload import encode_action
from kwil_sync.kwil.pipeline import NoncePipeline
from kwil_sync.kwil.tx import build_tx
from kwil_sync.testing.procs import free_port, stop_process

KEY = "6c" * 32  # a throwaway bench key
CHAIN = "bench-chain"
SCHEMA = {
    "tables": ["CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
               "id INTEGER UNIQUE, body TEXT, author TEXT)"],
    "actions": [{"name": "add_entry", "parameters": [["$id", "int8"], ["$body", "text"]],
                 "public": True, "view": False,
                 "sql": "INSERT INTO entries (id, body, author) VALUES ($id, $body, @caller)"}],
}


def admin(url: str, method: str, **params: Any) -> Any:
    """Drive the stand-in process through its `standin.*` methods."""
    answer = httpx.post(f"{url}/rpc/v1", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                               "params": params}, timeout=30).json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def actions(version: str, target: str, count: int) -> list[tuple[str, str, list[Any]]]:
    int_type = "int" if version == "v0.9" else "int8"
    return [(target, "add_entry", [[{"type": int_type, "value": i},
                                    {"type": "text", "value": f"entry number {i}"}]])
            for i in range(count)]


def apply_serially(client: KwilClient, calls: list[tuple[str, str, list[Any]]],
                   address: str) -> float:
    """Seconds to apply `calls` one at a time, each broadcast waiting for its block."""
    started = time.perf_counter()
    nonce = client.account_nonce(address)
    for i, (target, action, arguments) in enumerate(calls):
        nonce += 1
        payload = encode_action(client.version, target, action, arguments)
        tx = build_tx(KEY, payload, description="", fee="0", nonce=nonce, chain_id=CHAIN)
        result = client.broadcast(tx, "commit").result
        if result is None or not result.ok:
            raise RuntimeError(f"serial action {i} failed: {result}")
        if (i + 1) % 250 == 0:
            print(f"serial: {i + 1}/{len(calls)}", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def apply_pipelined(client: KwilClient, calls: list[tuple[str, str, list[Any]]],
                    window: int) -> float:
    started = time.perf_counter()
    outcomes = NoncePipeline(client, KEY, CHAIN, client.version, window=window).execute(calls)
    elapsed = time.perf_counter() - started
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} pipelined actions failed, first: {failed[0]}")
    return elapsed


def check(url: str, target: str, count: int) -> None:
    rows = admin(url, "standin.rows", target=target, sql="SELECT id FROM entries ORDER BY seq")
    if [r["id"] for r in rows["rows"]] != list(range(count)):
        raise RuntimeError(f"{target} does not hold the {count} entries in order")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--version", choices=["v0.9", "v0.10"], default="v0.10")
    parser.add_argument("--block-interval", type=float, default=0.05)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--pipeline-runs", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    port = free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "kwil_sync.testing.kwil_node", "--version", args.version,
         "--port", str(port), "--chain-id", CHAIN, "--block-interval",
         str(args.block_interval)], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert node.stdout is not None
        url = json.loads(node.stdout.readline())["url"]
        address = EthereumKey(KEY).address
        serial_db = admin(url, "standin.deploy", owner=address, name="serial", schema=SCHEMA)
        piped_dbs = [admin(url, "standin.deploy", owner=address, name=f"piped{run}",
                           schema=SCHEMA)["target"] for run in range(args.pipeline_runs)]
        with KwilClient(url, version=args.version) as client:
            print(f"stand-in {args.version} at {url}, block interval {args.block_interval} s; "
                  f"applying {args.actions} actions each way", file=sys.stderr, flush=True)
            serial_s = apply_serially(client, actions(args.version, serial_db["target"],
                                                      args.actions), address)
            print(f"serial: {serial_s:.1f} s", file=sys.stderr, flush=True)
            piped_s = []
            for target in piped_dbs:
                piped_s.append(apply_pipelined(client, actions(args.version, target,
                                                               args.actions), args.window))
                print(f"pipeline: {piped_s[-1]:.2f} s", file=sys.stderr, flush=True)
        for target in [serial_db["target"], *piped_dbs]:
            check(url, target, args.actions)
    finally:
        stop_process(node)
    serial_rate = args.actions / serial_s
    piped_rates = [args.actions / seconds for seconds in piped_s]
    piped_rate = statistics.median(piped_rates)
    print(json.dumps({
        "actions": args.actions, "version": args.version,
        "block_interval_s": args.block_interval, "window": args.window,
        "seconds_serial": round(serial_s, 2),
        "seconds_pipeline_runs": [round(seconds, 2) for seconds in piped_s],
        "actions_per_s_serial": round(serial_rate, 1),
        "actions_per_s_pipeline": round(piped_rate, 1),
        "actions_per_s_pipeline_runs": [round(rate, 1) for rate in piped_rates],
        "speedup": round(piped_rate / serial_rate, 1),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
