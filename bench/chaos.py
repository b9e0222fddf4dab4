"""Chaos at scale: faults on every hop, outages, payment walls, kills, races, hostile input.

tests/test_chaos.py and tests/test_hostile_corpus.py run these scenarios small; this runs
them with `--records` records each (1,000 by default), everything on 127.0.0.1: arlocal,
a Prefect server (the upload and follow flows), and in-process stand-ins for kwild and
the Irys bundler, with `FaultProxy` in front of a hop where a scenario needs it.

Scenarios (`--only` picks some):
- `faults-every-hop`: upload through the bundler, restore, then follow half as many more,
  with `--fault-rate` of requests failing on every hop (bundler, gateway GraphQL and
  data, kwild): 5xx, 429 + Retry-After, resets, truncated answers; failed runs rerun;
- `kwild-down`: kwild goes down for `--outage` seconds in the middle of a restore batch;
  the run fails and a rerun resolves the signed transactions left in flight;
- `kwild-restart`: kwild restarts mid-restore and forgets its mempool;
- `bundler-402`: the bundler answers 402 (Retry-After 2) for `--payment-window` seconds
  while the upload flow drains a shim's outbox;
- `upload-killed`: the upload flow's process is SIGKILLed mid-batch; new runs upload
  the rest, and the killed batch once its lease ends;
- `two-follows`: two follow polls of one target started at once (separate processes);
- `key-rotation`: a provider's new key is quarantined until trusted, applied after;
- `hostile-corpus`: `kwil_sync.testing.hostile` around `--records` honest records,
  restored through `--fault-rate` faults onto a kwild v0.10 stand-in.

Every scenario counts what its target executed (or the bundler holds) against the records.
Prints progress on stderr, then one JSON object as the last line: `scenarios`,
`faults_injected`, `records_expected`, `records_applied`, `duplicates`, `missing`,
`hostile_applied` (goal: the last three 0) and `per_scenario` figures.
Run: `.venv/bin/python bench/chaos.py [--records 1000] [--outage 30] [--only kwild-down]`.
"""

# ruff: noqa: E402  (the path fix below must run before the project imports)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/shim.py would
# shadow the `shim` package the upload flow imports: the project root takes its place.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.data import GatewayDataClient, GatewayError
from kwil_sync.arweave.gateway import GatewayUnavailable
from kwil_sync.arweave.graphql import GraphQLError, GraphQLPager
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.dbid import dbid
from kwil_sync.kwil.errors import KwilError
from kwil_sync.ledger import Ledger
from kwil_sync.records import MAX_DOCUMENT_BYTES
from kwil_sync.replay import Replayer, ReplayReport
from kwil_sync.replay_recovery import PendingTransactions
from kwil_sync.sources import GraphQLSource, Start, follow_start
from kwil_sync.testing.arlocal import Arlocal, wait_indexed
from kwil_sync.testing.bundler import BundlerStandIn, upload_until_accepted
from kwil_sync.testing.faultproxy import FaultProxy, FaultRates
from kwil_sync.testing.hostile import (
    build_corpus,
    executions,
    expected_rows,
    honest_chain,
    judge,
    post_bundles,
    tally,
)
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.stack import LocalStack
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import TrustPolicy

ADMIN_KEY = "d4" * 32  # owns every target database (a throwaway bench key)
ADMIN = EthereumKey(ADMIN_KEY).address
SHIM_KEY = "b7" * 32
ROWS = "SELECT id, body, author, created_at FROM messages ORDER BY id"
RUN_FAILURES = (GatewayError, GraphQLError, KwilError, PendingTransactions)
LIFETIME_S = 7200.0  # a fault proxy stops by itself after this (its default, 600 s, is short)
Calls = list[tuple[str, list[str]]]
Figures = dict[str, Any]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rates(rate: float) -> FaultRates:
    """`rate` of requests fail, split evenly over the four kinds; 10% more are slowed."""
    return FaultRates(latency=0.1, server_error=rate / 4, rate_limit=rate / 4, reset=rate / 4,
                      truncate=rate / 4, latency_seconds=0.05, retry_after_seconds=1)


class Target:
    """A target database on an in-process kwild stand-in keeping its chain on disk."""

    def __init__(self, root: Path, name: str, version: str = "v0.9") -> None:
        (root / name).mkdir(parents=True)
        self.node = KwilNodeStandIn.start(version=version, block_interval=0.02,
                                          data_dir=root / name)
        self.version, self.chain_dir = version, root / name
        self.id = self.node.deploy(ADMIN, name, MESSAGES_SCHEMA)
        self.ledger = Ledger(root / name / "ledger.sqlite")

    def replayer(self, graphql_url: str, data_url: str, original: str, *,
                 kwil_url: str | None = None, trusted: frozenset[str] = frozenset()) -> Replayer:
        pager = GraphQLPager(graphql_url, "gateway", page_size=100)
        applier = KwilApplier(KwilClient(kwil_url or self.node.url, version=self.version),
                              ADMIN_KEY, self.id)
        return Replayer(GraphQLSource(pager, original),
                        GatewayDataClient(data_url, max_bytes=MAX_DOCUMENT_BYTES), applier,
                        self.ledger, TrustPolicy(original, trusted), target_id=self.id)

    def figures(self, calls: Calls) -> Figures:
        counts = tally(calls, executions(self.chain_dir, self.id, self.version))
        rows_ok = self.node.rows(self.id, ROWS) == expected_rows(calls)
        return {"records_expected": counts.expected, "records_applied": counts.applied,
                "duplicates": len(counts.duplicates), "missing": len(counts.missing),
                "hostile_applied": len(counts.unexpected), "rows_match": rows_ok}

    def close(self) -> None:
        self.ledger.close()
        self.node.stop()


def run_until_done(make: Callable[[], Replayer], start: Start | None = None, *,
                   follow: bool = False, attempts: int = 60,
                   pause_s: float = 1.0) -> tuple[ReplayReport | None, list[str]]:
    """Run, rerunning `pause_s` after each failure the pipeline reports (as a schedule
    would); returns the completed run's report (None if none completed) and the failures."""
    failures: list[str] = []
    for _ in range(attempts):
        try:
            return make().run(start, follow=follow, skip_provider=ADMIN), failures
        except RUN_FAILURES as exc:
            failures.append(type(exc).__name__)
            say(f"  run failed ({type(exc).__name__}: {str(exc)[:120]}); running again")
            time.sleep(pause_s)
    say(f"  no run completed in {attempts} attempts")
    return None, failures


def failure_kinds(failures: list[str]) -> dict[str, int]:
    return {kind: failures.count(kind) for kind in sorted(set(failures))}


class Bench:
    """The shared services and settings of one bench run."""

    def __init__(self, root: Path, arlocal: Arlocal, stack: LocalStack,
                 args: argparse.Namespace) -> None:
        self.root, self.arlocal, self.stack, self.args = root, arlocal, stack, args
        self.records: int = args.records

    @contextmanager
    def target(self, name: str, version: str = "v0.9") -> Iterator[Target]:
        target = Target(self.root, name, version)
        try:
            yield target
        finally:
            target.close()

    def publish(self, original: str, items: list[DataItem], total: int) -> None:
        """Post items straight to arlocal and wait until `total` are indexed."""
        post_bundles(self.arlocal, [items[i:i + 250] for i in range(0, len(items), 250)])
        self.wait_indexed(original, total)

    def wait_indexed(self, original: str, total: int, timeout: float = 300) -> None:
        wait_indexed(self.arlocal.url, original, total, timeout=timeout, interval=1)


def flush(bundler: BundlerStandIn) -> None:
    """Bundle into arlocal; arlocal can take long to index a big bundle on a busy
    machine, and a round that timed out is finished by the next one."""
    for attempt in range(5):
        try:
            bundler.flush()
            return
        except GatewayUnavailable as exc:
            say(f"  bundling round {attempt + 1} failed ({exc}); again")
            time.sleep(5)
    raise RuntimeError("arlocal kept failing the bundler's rounds")


def faults_every_hop(bench: Bench) -> Figures:
    n, rate, key = bench.records, bench.args.fault_rate, "e5" * 32
    first, first_calls = honest_chain(key, n)
    later, later_calls = honest_chain(key, n // 2, first_id=n + 1, first_sequence=n + 1,
                                      prev=first[-1].tag("Action-Id") or "")
    original = dbid(EthereumKey(key).address, "messages")
    with bench.target("faults") as target, ExitStack() as stack:
        bundler = stack.enter_context(BundlerStandIn.start(
            bench.arlocal.url, data_dir=bench.root / "faults-bundler", bundle_interval=0,
            max_bundle_items=250))
        proxies = {hop: stack.enter_context(FaultProxy.start(url, rates(rate), seed=seed,
                                                             max_lifetime=LIFETIME_S))
                   for seed, (hop, url) in enumerate({"bundler": bundler.url,
                                                      "gateway": bench.arlocal.url,
                                                      "kwil": target.node.url}.items())}
        uploader = IrysUploader(proxies["bundler"].url, "ethereum", backoff=0.1)
        gateway = proxies["gateway"].url

        def make() -> Replayer:
            return target.replayer(f"{gateway}/graphql", gateway, original,
                                   kwil_url=proxies["kwil"].url)

        tries = upload_until_accepted(uploader, first)
        flush(bundler)
        bench.wait_indexed(original, n)
        say(f"  {n} uploaded through faults ({tries} tries); restoring through faults")
        restored, restore_failures = run_until_done(make)
        tries += upload_until_accepted(uploader, later)
        flush(bundler)
        bench.wait_indexed(original, n + len(later))
        say(f"  {len(later)} more uploaded; following through faults")
        followed, follow_failures = run_until_done(
            make, follow_start(restored.resume if restored else None, lookback_blocks=2),
            follow=True)
        uploader.close()
        stats = {hop: p.stats() for hop, p in proxies.items()}
        figures = target.figures(first_calls + later_calls)
    figures.update({f"faults_{hop}": s.injected for hop, s in stats.items()},
                   requests=sum(s.requests for s in stats.values()), upload_tries=tries,
                   restore_completed=restored is not None,
                   restore_failed_runs=failure_kinds(restore_failures),
                   follow_completed=followed is not None,
                   follow_failed_runs=failure_kinds(follow_failures),
                   faults_injected=sum(s.injected for s in stats.values()))
    return figures


def kwild_outage(bench: Bench, *, restart: bool) -> Figures:
    n, key = bench.records, ("f7" if restart else "f6") * 32
    items, calls = honest_chain(key, n)
    original = dbid(EthereumKey(key).address, "messages")
    bench.publish(original, items, n)
    with bench.target("restart" if restart else "outage") as target:
        node, struck = target.node, threading.Event()

        def strike() -> None:  # in the middle of a batch, a third of the way in
            while node.method_counts["user.broadcast"] < n // 3 + 50:
                time.sleep(0.002)
            if restart:
                node.restart(down_for=2)
            else:
                node.go_down()
                threading.Timer(bench.args.outage, node.come_up).start()
            struck.set()

        threading.Thread(target=strike, daemon=True).start()
        report, failures = run_until_done(lambda: target.replayer(
            f"{bench.arlocal.url}/graphql", bench.arlocal.url, original))
        figures = target.figures(calls)
    # what the completing run found left pending by the failed ones, and how it ended
    recovery = {k: len(v) for k, v in vars(report.recovery).items()} \
        if report is not None and report.recovery else {}
    figures.update(struck=struck.is_set(), completed=report is not None,
                   failed_runs=failure_kinds(failures), recovery=recovery, faults_injected=1)
    if not restart:
        figures["outage_s"] = bench.args.outage
    return figures




@contextmanager
def shim_outbox(bench: Bench, name: str, count: int) -> Iterator[tuple[str, str, list[str]]]:
    """A shim (in process, submitting nothing) with `count` records in its outbox;
    yields (address, original dbid, item ids)."""
    from pydantic import SecretStr

    from kwil_sync.shim.config import ShimConfig
    from kwil_sync.shim.server import start_shim
    from kwil_sync.shim_client import ShimClient

    provider = EthereumKey(SHIM_KEY).address
    with bench.target(name) as target:
        target.node.deploy(provider, "messages", MESSAGES_SCHEMA)
        shim = start_shim(ShimConfig(port=0, outbox_path=bench.root / f"{name}-outbox.sqlite",
                                     kwil_url=target.node.url, kwil_version="v0.9",
                                     provider_key=SecretStr(SHIM_KEY), submit=False))
        try:
            _, calls = honest_chain(SHIM_KEY, count)
            with ShimClient(shim.address) as client:
                ids = [client.save_action(local_db_name="messages", action_name=action,
                                          values=values).item_id for action, values in calls]
            yield shim.address, dbid(provider, "messages"), ids
        finally:
            shim.stop(0)


def held(bundler: BundlerStandIn, original: str, ids: list[str]) -> Figures:
    """The outbox's items against what the bundler lists for the database."""
    listed = [r.id for r in GraphQLPager(f"{bundler.url}/graphql", "irys").records(
        {"Original-DBID": [original]})]
    return {"records_expected": len(ids), "records_applied": len(set(listed) & set(ids)),
            "duplicates": len(listed) - len(set(listed)), "missing": len(set(ids) - set(listed)),
            "hostile_applied": len(set(listed) - set(ids))}


def bundler_402(bench: Bench) -> Figures:
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    window = bench.args.payment_window
    with shim_outbox(bench, "payment", bench.records) as (address, original, ids):
        bundler = BundlerStandIn.start(data_dir=bench.root / "payment-bundler",
                                        bundle_interval=0)
        assert isinstance(bundler, BundlerStandIn)
        with bundler:
            Bundler(kind="irys", url=bundler.url).save("chaos-bundler-402", overwrite=True)
            bundler.set_fault(402, retry_after=2, count=10**9)
            threading.Timer(window, lambda: bundler.set_fault(402, count=0)).start()
            summary = upload(shim_address=address, bundler_block="chaos-bundler-402")
            figures = held(bundler, original, ids)
    figures.update(payment_window_s=window, payment_required_answers=bundler.faults_answered,
                   remaining=summary["remaining"], faults_injected=bundler.faults_answered)
    return figures


KILLABLE_UPLOAD = """
import sys
import kwil_sync.tasks.upload
kwil_sync.tasks.upload.LEASE_SECONDS = int(sys.argv[3])  # short, so the bench need not wait 600 s
from kwil_sync.flows.upload import upload
upload(shim_address=sys.argv[1], bundler_block=sys.argv[2], batch_size=100)
"""


def upload_killed(bench: Bench) -> Figures:
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    lease = 10
    with shim_outbox(bench, "killed", bench.records) as (address, original, ids), \
            BundlerStandIn.start(data_dir=bench.root / "killed-bundler",
                                 bundle_interval=0) as bundler, \
            FaultProxy.start(bundler.url, FaultRates(latency=1.0, latency_seconds=0.1),
                             seed=9, max_lifetime=LIFETIME_S) as proxy:
        Bundler(kind="irys", url=proxy.url).save("chaos-bundler-kill", overwrite=True)
        log = (bench.root / "killed-upload.log").open("wb")
        process = subprocess.Popen([sys.executable, "-c", KILLABLE_UPLOAD, address,
                                    "chaos-bundler-kill", str(lease)], env=bench.stack.env(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        count = lambda: held(bundler, original, ids)["records_applied"]  # noqa: E731
        try:
            deadline = time.monotonic() + 300
            while count() < len(ids) // 2 + 30 and time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError("the upload process ended early: see killed-upload.log")
                time.sleep(0.2)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
        at_kill = count()
        say(f"  killed with {at_kill} of {len(ids)} on the bundler")
        proxy.set_rates(latency=0.0)
        early = upload(shim_address=address, bundler_block="chaos-bundler-kill")
        time.sleep(lease)
        late = upload(shim_address=address, bundler_block="chaos-bundler-kill")
        figures = held(bundler, original, ids)
    figures.update(held_at_kill=at_kill, rerun_uploaded=early["uploaded"],
                   left_for_the_lease=early["remaining"], after_lease_uploaded=late["uploaded"],
                   after_lease_already_there=late["already_there"], faults_injected=1)
    return figures


FOLLOW = """
import json, sys
from kwil_sync.flows.follow import follow
result = follow(sys.argv[1], sys.argv[2], node="chaos-node", gateway="chaos-gateway",
                ledger_path=sys.argv[3], lock_timeout_seconds=5)
print("RESULT " + json.dumps({k: result.get(k) for k in ("skipped", "applied",
                                                         "already_applied")}))
"""


def two_follows(bench: Bench) -> Figures:
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    n, key = bench.records, "c8" * 32
    items, calls = honest_chain(key, n)
    original = dbid(EthereumKey(key).address, "messages")
    bench.publish(original, items, n)
    with bench.target("follows") as target:
        KwilNode(rpc_url=target.node.url, version="v0.9",
                 private_key=SecretStr(ADMIN_KEY)).save("chaos-node", overwrite=True)
        ArweaveGateway(graphql_url=f"{bench.arlocal.url}/graphql", dialect="gateway",
                       data_url=bench.arlocal.url).save("chaos-gateway", overwrite=True)
        ledger = str(bench.root / "follows-ledger.sqlite")
        polls = [subprocess.Popen([sys.executable, "-c", FOLLOW, original, target.id, ledger],
                                  env=bench.stack.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
                 for _ in range(2)]
        results = []
        for poll in polls:
            output = poll.communicate(timeout=900)[0].decode()
            lines = [x for x in output.splitlines() if x.startswith("RESULT ")]
            results.append(json.loads(lines[0].removeprefix("RESULT ")) if lines
                           else {"failed": poll.returncode})
        figures = target.figures(calls)
    figures.update(polls=results, faults_injected=1)
    return figures


def key_rotation(bench: Bench) -> Figures:
    n, old_key, new_key = bench.records // 2, "a8" * 32, "a9" * 32
    original = dbid(EthereumKey(old_key).address, "messages")
    old, old_calls = honest_chain(old_key, n)
    new, new_calls = honest_chain(new_key, n, first_id=n + 1, original=original)
    bench.publish(original, old + new, 2 * n)
    with bench.target("rotation") as target:
        def run(trusted: frozenset[str]) -> ReplayReport:
            return target.replayer(f"{bench.arlocal.url}/graphql", bench.arlocal.url, original,
                                   trusted=trusted).run()

        before = run(frozenset())
        after = run(frozenset({EthereumKey(new_key).address}))
        figures = target.figures(old_calls + new_calls)
    figures.update(applied_before_trust=before.applied,
                   quarantined_before_trust=before.quarantined.get("untrusted-signer", 0),
                   applied_after_trust=after.applied, faults_injected=0)
    return figures


def hostile_corpus(bench: Bench) -> Figures:
    corpus = build_corpus("a1" * 32, "b2" * 32, good=bench.records)
    first, second = corpus.gateway_items()
    post_bundles(bench.arlocal, [first[i:i + 250] for i in range(0, len(first), 250)] + [second])
    listed = [h for h in corpus.hostile if h.reach == "listed" and h.item.id not in
              {i.id for i in first}]
    bench.wait_indexed(corpus.original_dbid, len(first) + len(listed))
    with bench.target("hostile", "v0.10") as target, \
            FaultProxy.start(bench.arlocal.url, rates(bench.args.fault_rate), seed=11,
                             max_lifetime=LIFETIME_S) as gw, \
            FaultProxy.start(target.node.url, rates(bench.args.fault_rate), seed=12,
                             max_lifetime=LIFETIME_S) as kwil:
        report, failures = run_until_done(lambda: target.replayer(
            f"{gw.url}/graphql", gw.url, corpus.original_dbid, kwil_url=kwil.url))
        quarantined = sum(report.quarantined.values()) if report else None
        verdict = judge(corpus, executions(target.chain_dir, target.id, "v0.10"),
                        target.ledger.quarantined(target.id))
        figures = target.figures(corpus.good)
        injected = gw.stats().injected + kwil.stats().injected
    figures.update(hostile_kinds=len(corpus.hostile), hostile_on_gateway=len(listed),
                   quarantined=quarantined, wrong_reason=verdict.wrong_reason,
                   completed=report is not None, failed_runs=failure_kinds(failures),
                   faults_injected=injected)
    return figures


SCENARIOS: dict[str, Callable[[Bench], Figures]] = {
    "faults-every-hop": faults_every_hop,
    "kwild-down": lambda bench: kwild_outage(bench, restart=False),
    "kwild-restart": lambda bench: kwild_outage(bench, restart=True),
    "bundler-402": bundler_402,
    "upload-killed": upload_killed,
    "two-follows": two_follows,
    "key-rotation": key_rotation,
    "hostile-corpus": hostile_corpus,
}
TOTALS = ("faults_injected", "records_expected", "records_applied", "duplicates", "missing",
          "hostile_applied")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="records per scenario")
    parser.add_argument("--fault-rate", type=float, default=0.2,
                        help="share of requests that fail on each faulty hop")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds kwild is down")
    parser.add_argument("--payment-window", type=float, default=20.0,
                        help="seconds the bundler answers 402")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    results: dict[str, Figures] = {}
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with LocalStack(root / "stack") as stack:
        api = stack.start_prefect()
        arlocal = Arlocal.start()
        try:
            with temporary_settings({PREFECT_API_URL: api}):
                bench = Bench(root, arlocal, stack, args)
                for name in args.only or list(SCENARIOS):
                    say(f"== {name}")
                    began = time.monotonic()
                    results[name] = SCENARIOS[name](bench)
                    results[name]["seconds"] = round(time.monotonic() - began, 1)
                    say(f"   {json.dumps(results[name], default=str)}")
        finally:
            arlocal.stop()
    summary: Figures = {"scenarios": len(results)}
    summary.update({k: sum(int(r.get(k, 0)) for r in results.values()) for k in TOTALS})
    summary.update(records_per_scenario=args.records, fault_rate=args.fault_rate,
                   per_scenario=results)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
