"""save_action through the shim: latency under a concurrent client, flow runs, losses.

Starts on 127.0.0.1, each in its own process: the kwild stand-in (action parameters),
the Irys bundler stand-in, a Prefect server, a process serving the
`kwil-sync-upload/upload` deployment (each run in its own subprocess, as
`deployments/serve.py` does) and the shim (`python -m kwil_sync.shim`). A client with
`--concurrency` threads sends Execute (save_action) calls as kwild does. Measured:
- `p50_ms`, `p99_ms`, `actions_per_s`: Execute latency (answered only once the record
  is fsynced) while the threads send `--rate` calls per second, latency counted from
  each call's due time; `saturated`: the same for `--actions` more calls sent as fast
  as answers come back (the shim's ceiling, latency then mostly queueing);
- `flow_runs_per_1000`: upload runs the shim submitted per 1,000 actions (and when
  they started executing, seconds after the burst began: a run's subprocess start
  competes with the shim for the CPU; `over_50ms_due_s` shows when slow calls were due);
- `lost`: answered item ids the bundler does not hold once the served runs drained
  the outbox (`doubled`: ids held more than once);
- CPU per unit of work, read from /proc, because wall-clock rates on a shared machine
  mostly measure the neighbours: `shim_cpu_ms_per_call` (the shim process) and
  `client_cpu_ms_per_call` (this process's gRPC client) in each phase; for the drain,
  `drain_actions_per_s` (items drained per wall second), `bundler_cpu_ms_per_item` (the
  bundler stand-in's own cost, which a real bundler pays on its own machines),
  `drain_client_cpu_ms_per_item` (this process: `upload_pending` and the uploader) and
  `drain_shim_cpu_ms_per_item` (the shim answering PendingItems and AckUploaded), and
  `drain_client_bound_actions_per_s`, the rate those two would allow on one core if the
  bundler cost nothing (1000 / their CPU per item): the client's rate.
`rss_growth_mb`: the shim's resident memory growth from the paced phase to the end
of the drain.
Goal: p99 < 25 ms, >= 300 actions/s, lost 0 (`goal_met`); issue 13's, for
`--no-prefect --concurrency 1`: saturated >= 1500 actions/s with p99 < 5 ms, a drain at
least as fast, rss growth < 50 MB (`goal_13_met`). `--no-prefect` skips Prefect (the shim
does not submit) and `--no-serve` (runs are submitted but not executed) drain the
outbox with the upload task's function instead.

Prints progress lines, then one JSON object as the last line.
Run: `.venv/bin/python bench/shim.py [--actions 3000] [--concurrency 8] [--no-prefect]`.
"""

# ruff: noqa: E402  (the path fix below must run before the project imports)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and `bench/shim.py` would
# shadow the `shim` package; the project root takes its place.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import grpc
import httpx

from kwil_sync.arweave.ans104 import EthereumSigner
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.kwil import dbid
from kwil_sync.proto import extension_pb2, extension_pb2_grpc
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.kwil_node import ActionDef, Schema
from kwil_sync.testing.procs import free_port, stop_process, wait_until

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

ROOT = _HERE.parent
KEY = "6b" * 32
NAME = "bench"
SCHEMA = Schema(tables=["CREATE TABLE rows_ (id INTEGER PRIMARY KEY, body TEXT, who TEXT)"],
                actions=[ActionDef("add_row_sync", [("$id", "int"), ("$body", "text"),
                                                    ("$who", "text")], False,
                                   "INSERT INTO rows_ VALUES ($id, $body, $who)")])


def log(message: str) -> None:
    print(message, flush=True)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads); this one when None."""
    if pid is None:
        return time.process_time()
    # /proc/<pid>/stat: fields after the parenthesised name; utime and stime are 14 and 15
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CpuMeter:
    """CPU seconds that named processes spend between `start` and `per`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.started = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def per(self, count: int) -> dict[str, float]:
        """Milliseconds of CPU per unit of work, for each process, since construction."""
        return {name: round((cpu_seconds(pid) - self.started[name]) * 1000 / max(count, 1), 3)
                for name, pid in self.pids.items()}


def spawn(args: list[str], env: dict[str, str], logfile: Path) -> subprocess.Popen[bytes]:
    with logfile.open("wb") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def start_standin(module: str, args: list[str], work: Path, env: dict[str, str]
                  ) -> tuple[subprocess.Popen[bytes], str]:
    """A stand-in in its own process (so its work does not hold the client's GIL)."""
    process = subprocess.Popen([sys.executable, "-m", module, *args], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{module} exited before it was ready (code {process.wait()})")
    return process, str(json.loads(line)["url"])


def start_prefect(work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = free_port()
    env.update(PREFECT_HOME=str(work / "prefect"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_RUNNER_POLL_FREQUENCY="2")
    server = spawn([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                    "--port", str(port), "--no-ui", "--analytics-off"], env, work / "prefect.log")
    wait_until(lambda: httpx.get(f"{env['PREFECT_API_URL']}/health").status_code == 200,
               timeout=180, interval=0.5, what="the Prefect server", process=server)
    return server


def serve_upload(work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = ("from flows.upload import upload\n"
            "upload.serve(name='upload', limit=2)\n")
    return spawn([sys.executable, "-c", code], env, work / "serve.log")


def run_starts(env: dict[str, str], since: float) -> list[float]:
    """Seconds after `since` (epoch) at which upload runs started executing."""
    from datetime import datetime

    response = httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/filter", json={
        "deployments": {"name": {"any_": ["upload"]}}})
    response.raise_for_status()
    return sorted(round(datetime.fromisoformat(run["start_time"]).timestamp() - since, 1)
                  for run in response.json() if run.get("start_time"))


def upload_runs(env: dict[str, str]) -> int:
    response = httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/count", json={
        "deployments": {"name": {"any_": ["upload"]}}})
    response.raise_for_status()
    return int(response.json())


Samples = list[tuple[float, float]]  # (due time after the start, latency), seconds


def drive(address: str, metadata: dict[str, str], first: int, count: int, concurrency: int,
          rate: float | None = None) -> tuple[Samples, float, dict[int, str]]:
    """Send `count` Execute calls from `concurrency` threads on one channel (as kwild).

    With `rate`, call k is due at start + k / rate and its latency counts from then (a
    call sent late because all threads were busy counts its wait too); without, every
    thread sends as fast as answers come back.
    """
    latencies: Samples = []
    answered: dict[int, str] = {}
    lock = threading.Lock()
    indexes = iter(range(count))
    with grpc.insecure_channel(address) as channel:
        stub = extension_pb2_grpc.ExtensionServiceStub(channel)
        started = time.perf_counter()

        def worker() -> None:
            while True:
                with lock:
                    k = next(indexes, None)
                if k is None:
                    return
                i = first + k
                values = ("add_row_sync", i, f"row {i} " + "x" * 100, "0x" + "ab" * 20)
                request = extension_pb2.ExecuteRequest(name="save_action", metadata=metadata, args=[
                    extension_pb2.ScalarValue(value=json.dumps(v).encode()) for v in values])
                due = time.perf_counter() if rate is None else started + k / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                answer = stub.Execute(request, timeout=10)
                took = time.perf_counter() - due
                with lock:
                    latencies.append((due - started, took))
                    answered[i] = json.loads(answer.outputs[0].value).rsplit("/", 1)[1]

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    return latencies, wall, answered


def figures(samples: Samples, wall: float) -> dict[str, Any]:
    latencies = [took for _, took in samples]
    slow = [due for due, took in samples if took > 0.05]
    return {"p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2),
            "actions_per_s": round(len(latencies) / wall, 1),
            "over_50ms": len(slow),
            "over_50ms_due_s": [round(min(slow), 2), round(max(slow), 2)] if slow else []}


def per_call(cpu_ms: dict[str, float]) -> dict[str, float]:
    return {"shim_cpu_ms_per_call": cpu_ms["shim"], "client_cpu_ms_per_call": cpu_ms["client"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actions", type=int, default=3000, help="save_action calls measured")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--rate", type=float, default=400,
                        help="calls per second of the paced phase (the saturated phase that "
                             "follows sends --actions more as fast as it can)")
    parser.add_argument("--no-prefect", action="store_true",
                        help="no Prefect server; the bench drains the outbox itself")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="the shim's --batch-size (records per upload run submission)")
    parser.add_argument("--no-serve", action="store_true",
                        help="Prefect server, but nothing executes the submitted runs (they "
                             "stay scheduled); the bench drains the outbox itself")
    parser.add_argument("--drain-batch", type=int, default=200,
                        help="items per upload_pending batch when the bench drains itself")
    parser.add_argument("--drain-timeout", type=float, default=300,
                        help="seconds to wait for served upload runs to drain the outbox")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-shim-"))
    env = {**os.environ, "KWIL_SYNC_PROVIDER_KEY": KEY}
    procs: list[subprocess.Popen[bytes]] = []
    provider = EthereumSigner(KEY).address
    local = dbid(provider, NAME)
    metadata = {"local_db_name": NAME, "provider_address": provider, "local_dbid": local,
                "original_dbid": local}  # what Initialize returned; kwild sends it back
    try:
        node, node_url = start_standin("kwil_sync.testing.kwil_node", [
            "--version", "v0.9", "--port", str(free_port())], work, env)
        procs.append(node)
        deployed = httpx.post(f"{node_url}/rpc/v1", json={
            "jsonrpc": "2.0", "id": 1, "method": "standin.deploy", "params": {
                "owner": provider, "name": NAME, "schema": json.loads(SCHEMA.to_json())}})
        assert deployed.json()["result"]["target"] == local, deployed.text
        bundler, bundler_url = start_standin("kwil_sync.testing.bundler", [
            "--port", str(free_port()), "--data-dir", str(work / "bundler"), "--interval",
            "0"], work, env)
        procs.append(bundler)
        if not args.no_prefect:
            log("starting a Prefect server ...")
            procs.append(start_prefect(work, env))
            os.environ.update(PREFECT_API_URL=env["PREFECT_API_URL"],
                              PREFECT_HOME=env["PREFECT_HOME"])
            from kwil_sync.blocks.arweave import Bundler

            Bundler(kind="irys", url=bundler_url).save("bench-bundler", overwrite=True)
            if args.no_serve:  # register only: submitted runs stay scheduled
                from kwil_sync.flows.upload import upload

                cast("RunnerDeployment", upload.to_deployment("upload")).apply()
            else:
                procs.append(serve_upload(work, env))
            wait_until(lambda: httpx.get(f"{env['PREFECT_API_URL']}/deployments/name/"
                                         "kwil-sync-upload/upload").status_code == 200,
                       timeout=180, interval=0.5, what="the served upload deployment",
                       process=procs[-1])
        port = free_port()
        address = f"127.0.0.1:{port}"
        shim_args = [sys.executable, "-m", "kwil_sync.shim", "--port", str(port), "--outbox",
                     str(work / "outbox.sqlite"), "--kwil-url", node_url, "--kwil-version",
                     "v0.9", "--bundler-block", "bench-bundler", "--log-level", "WARNING",
                     "--batch-size", str(args.batch_size)]
        procs.append(spawn(shim_args + (["--no-submit"] if args.no_prefect else []), env,
                           work / "shim.log"))
        with ShimClient(address, timeout=2) as probe:
            wait_until(lambda: probe.status() is not None, timeout=60, what="the shim",
                       process=procs[-1])
        drive(address, metadata, 10**6, 50, args.concurrency)  # warm up: channel, caches
        runs_before = 0 if args.no_prefect else upload_runs(env)
        burst_epoch = time.time()
        log(f"{args.actions} save_action calls, {args.concurrency} threads, paced at "
            f"{args.rate}/s ...")
        shim_pid = procs[-1].pid
        rss_before = rss_mb(shim_pid)
        meter = CpuMeter({"shim": shim_pid, "client": None})
        latencies, wall, answered = drive(address, metadata, 0, args.actions, args.concurrency,
                                          args.rate)
        paced = figures(latencies, wall) | per_call(meter.per(len(latencies)))
        log(f"paced: {paced}; now as fast as answers come back ...")
        meter = CpuMeter({"shim": shim_pid, "client": None})
        latencies, wall, flat_out = drive(address, metadata, args.actions, args.actions,
                                          args.concurrency)
        saturated = figures(latencies, wall) | per_call(meter.per(len(latencies)))
        answered.update(flat_out)
        runs = 0 if args.no_prefect else upload_runs(env) - runs_before
        log(f"saturated: {saturated}; draining ...")
        drain_started = time.perf_counter()
        meter = CpuMeter({"bundler": bundler.pid, "client": None, "shim": shim_pid})
        drained = 0
        with ShimClient(address, timeout=30) as shim:
            if args.no_prefect or args.no_serve:
                from kwil_sync.upload import upload_pending

                # one uploader for the whole drain, as a flow run holds one: its
                # connections to the bundler are reused from batch to batch
                uploader = IrysUploader(bundler_url)
                try:
                    while batch := upload_pending(shim, uploader, holder="bench",
                                                  limit=args.drain_batch).uploaded:
                        drained += batch
                finally:
                    uploader.close()
            wait_until(lambda: shim.status(local)[0].pending == 0, timeout=args.drain_timeout,
                       interval=1.0, what="served upload runs draining the outbox")
        drain_s = time.perf_counter() - drain_started
        drain_cpu = meter.per(drained)
        client_side = drain_cpu["client"] + drain_cpu["shim"]
        starts = [] if args.no_prefect else run_starts(env, burst_epoch)
        found = Counter(r.id for r in GraphQLPager(bundler_url + "/graphql", "irys").records(
            {"Original-DBID": [local]}))
        result: dict[str, Any] = {
            "actions": len(answered), "concurrency": args.concurrency, "rate": args.rate,
            **paced, "saturated": saturated,
            "flow_runs_submitted": runs,
            "flow_runs_per_1000": round(runs * 1000 / len(answered), 2),
            "lost": sum(1 for item_id in answered.values() if item_id not in found),
            "doubled": sum(1 for n in found.values() if n > 1),
            "drain_s": round(drain_s, 1), "prefect": not args.no_prefect,
            "drain_actions_per_s": round((drained or len(answered)) / drain_s, 1),
            "rss_growth_mb": round(rss_mb(shim_pid) - rss_before, 1),
            "bundler_cpu_ms_per_item": drain_cpu["bundler"] if drained else None,
            "drain_client_cpu_ms_per_item": drain_cpu["client"] if drained else None,
            "drain_shim_cpu_ms_per_item": drain_cpu["shim"] if drained else None,
            "drain_client_bound_actions_per_s":
                round(1000 / client_side, 1) if drained and client_side else None,
            "served": not (args.no_prefect or args.no_serve),
            "upload_runs_started_s": starts,
        }
        result["goal_met"] = (paced["p99_ms"] < 25 and paced["actions_per_s"] >= 300
                              and saturated["actions_per_s"] >= 300 and result["lost"] == 0)
        # issue 13's goals (meant for --no-prefect --concurrency 1)
        result["goal_13_met"] = (saturated["actions_per_s"] >= 1500
                                 and saturated["p99_ms"] < 5
                                 and result["drain_actions_per_s"]
                                 >= saturated["actions_per_s"]
                                 and result["rss_growth_mb"] < 50)
    finally:
        for process in reversed(procs):
            stop_process(process)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
