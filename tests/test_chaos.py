"""Chaos: kwil-sync keeps working and loses nothing when the services around it fail.

Each scenario writes honest records of its own database, breaks something on the way
(seeded faults on every HTTP hop, kwild down, the bundler asking for payment, the upload
process killed, two follow polls at once, a provider key rotated), then checks the
target against the records: every action executed exactly once (`duplicates`,
`missing` and `unexpected` empty), the rows equal. Each test prints its figures as one
JSON line (`pytest -s`) and records them as properties; bench/chaos.py runs the same
kinds of scenario at a larger scale.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.data import GatewayDataClient, GatewayError
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
    executions,
    expected_rows,
    honest_chain,
    post_bundles,
    tally,
)
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import TrustPolicy

ADMIN_KEY = "d4" * 32  # owns every target database
ADMIN = EthereumKey(ADMIN_KEY).address
ROWS = "SELECT id, body, author, created_at FROM messages ORDER BY id"
# 20% of requests on every hop meet a fault (5% each kind), 10% are slowed
TWENTY_PERCENT = FaultRates(latency=0.1, server_error=0.05, rate_limit=0.05, reset=0.05,
                            truncate=0.05, latency_seconds=0.05, retry_after_seconds=1)
RUN_FAILURES = (GatewayError, GraphQLError, KwilError, PendingTransactions)


@dataclass
class Target:
    """A target database on an in-process kwild stand-in that keeps its chain on disk."""

    node: KwilNodeStandIn
    name: str
    ledger: Ledger

    @property
    def id(self) -> str:
        return dbid(ADMIN, self.name)

    def check(self, calls: list[tuple[str, list[str]]]) -> dict[str, Any]:
        """Exactly-once figures for `calls`; asserts the rows are the expected ones."""
        assert self.node.chain.data_dir is not None
        counts = tally(calls, executions(self.node.chain.data_dir, self.id, "v0.9"))
        assert self.node.rows(self.id, ROWS) == expected_rows(calls)
        return {"records_expected": counts.expected, "records_applied": counts.applied,
                "duplicates": len(counts.duplicates), "missing": len(counts.missing),
                "unexpected": len(counts.unexpected)}


@pytest.fixture
def target(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Target]:
    (tmp_path / "chain").mkdir()
    node = KwilNodeStandIn.start(version="v0.9", block_interval=0.02,
                                 data_dir=tmp_path / "chain")
    name = request.node.name.split("[")[0].removeprefix("test_")[:40]
    node.deploy(ADMIN, name, MESSAGES_SCHEMA)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        yield Target(node, name, ledger)
    finally:
        ledger.close()
        node.stop()


def report_figures(record_property: Callable[[str, object], None], scenario: str,
                   figures: dict[str, Any]) -> None:
    """Print one JSON line of figures and keep them as test properties."""
    print(json.dumps({"scenario": scenario, **figures}, sort_keys=True))
    for name, value in figures.items():
        record_property(name, value)
    assert figures.get("duplicates") == 0 and figures.get("missing") == 0
    assert figures.get("unexpected") == 0


def replayer(target: Target, graphql_url: str, data_url: str, kwil_url: str,
             original_dbid: str, *, page_size: int = 100, trusted: frozenset[str] = frozenset(),
             on_progress: Callable[[ReplayReport], None] | None = None) -> Replayer:
    return Replayer(GraphQLSource(GraphQLPager(graphql_url, "gateway", page_size=page_size),
                                  original_dbid),
                    GatewayDataClient(data_url, max_bytes=MAX_DOCUMENT_BYTES),
                    KwilApplier(KwilClient(kwil_url, version="v0.9"), ADMIN_KEY, target.id),
                    target.ledger, TrustPolicy(original_dbid, trusted), target_id=target.id,
                    on_progress=on_progress)


def run_until_done(make: Callable[[], Replayer], start: Start | None = None, *,
                   follow: bool = False, attempts: int = 12) -> tuple[ReplayReport, list[str]]:
    """Run, and rerun after each failure the pipeline reports; (last report, failures)."""
    failures: list[str] = []
    for _ in range(attempts):
        try:
            return make().run(start, follow=follow, skip_provider=ADMIN), failures
        except RUN_FAILURES as exc:
            failures.append(type(exc).__name__)
    raise AssertionError(f"no run completed in {attempts} attempts: {failures}")




# -- faults on every hop ---------------------------------------------------------------


@pytest.mark.arlocal
@pytest.mark.timeout(240)
def test_upload_restore_and_follow_through_twenty_percent_faults_on_every_hop(
        arlocal: Arlocal, target: Target, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    owner_key = "e5" * 32
    first, first_calls = honest_chain(owner_key, 60)
    later, later_calls = honest_chain(owner_key, 30, first_id=61, first_sequence=61,
                                      prev=first[-1].tag("Action-Id") or "")
    original = dbid(EthereumKey(owner_key).address, "messages")
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path / "bundler",
                              bundle_interval=0) as bundler, \
            FaultProxy.start(bundler.url, TWENTY_PERCENT, seed=1) as to_bundler, \
            FaultProxy.start(arlocal.url, TWENTY_PERCENT, seed=2) as to_gateway, \
            FaultProxy.start(target.node.url, TWENTY_PERCENT, seed=3) as to_kwil:
        uploader = IrysUploader(to_bundler.url, "ethereum", backoff=0.1)

        def make() -> Replayer:
            return replayer(target, f"{to_gateway.url}/graphql", to_gateway.url, to_kwil.url,
                            original, page_size=50)

        upload_tries = upload_until_accepted(uploader, first, attempts=10)
        bundler.flush()
        wait_indexed(arlocal.url, original, len(first))
        restored, restore_failures = run_until_done(make)
        upload_tries += upload_until_accepted(uploader, later, attempts=10)
        bundler.flush()
        wait_indexed(arlocal.url, original, len(first) + len(later))
        followed, follow_failures = run_until_done(
            make, follow_start(restored.resume, lookback_blocks=2), follow=True)
        uploader.close()
        proxies = {"bundler": to_bundler, "gateway": to_gateway, "kwil": to_kwil}
        figures: dict[str, Any] = {f"faults_{hop}": p.stats().injected
                                   for hop, p in proxies.items()}
        figures["requests"] = sum(p.stats().requests for p in proxies.values())
    figures.update(target.check(first_calls + later_calls))
    figures.update(upload_tries=upload_tries, restore_runs=len(restore_failures) + 1,
                   follow_runs=len(follow_failures) + 1,
                   run_failures=sorted(set(restore_failures + follow_failures)),
                   bundler_items=bundler_count(tmp_path / "bundler"))
    report_figures(record_property, "faults-every-hop", figures)
    assert figures["records_applied"] == len(first) + len(later)
    assert figures["bundler_items"] == len(first) + len(later)  # each id stored once
    assert all(figures[f"faults_{hop}"] > 0 for hop in ("bundler", "gateway", "kwil"))
    assert followed.quarantined == {} and restored.quarantined == {}


def bundler_count(data_dir: Path) -> int:
    """Items the bundler stand-in stored (read after it stopped)."""
    import sqlite3

    with sqlite3.connect(data_dir / "bundler.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])


# -- kwild down in the middle of a restore ---------------------------------------------


@pytest.mark.arlocal
@pytest.mark.parametrize("outage_s", [2.0, 12.0], ids=["short", "long"])
def test_kwild_down_mid_restore_then_a_rerun_completes(
        arlocal: Arlocal, target: Target, outage_s: float,
        record_property: Callable[[str, object], None]) -> None:
    owner_key = "f6" * 32 if outage_s < 5 else "f7" * 32
    items, calls = honest_chain(owner_key, 120)
    original = dbid(EthereumKey(owner_key).address, "messages")
    post_bundles(arlocal, [items])
    wait_indexed(arlocal.url, original, len(items))
    node = target.node
    went_down = threading.Event()

    def outage() -> None:  # in the middle of the second batch of 40
        while node.method_counts["user.broadcast"] < 60:
            time.sleep(0.002)
        node.go_down()
        went_down.set()
        threading.Timer(outage_s, node.come_up).start()

    threading.Thread(target=outage, daemon=True).start()

    def make() -> Replayer:
        return replayer(target, f"{arlocal.url}/graphql", arlocal.url, node.url, original,
                        page_size=40)

    errors = []
    try:
        first = make().run()
    except KwilError as exc:  # kwild stayed down longer than the pipeline's retries
        errors.append(type(exc).__name__)
        done_before_rerun = target.ledger.counts(target.id).done
        pending = len(target.ledger.pending(target.id))
        wait_up(node.url)
        first = make().run()
        assert first.recovery is not None
        recovery = {k: len(v) for k, v in vars(first.recovery).items()}
    else:
        done_before_rerun, pending, recovery = len(calls), 0, {}
    figures = target.check(calls)
    figures.update(outage_s=outage_s, runs=len(errors) + 1, errors=errors,
                   done_before_rerun=done_before_rerun, pending_at_failure=pending,
                   recovery=recovery)
    report_figures(record_property, f"kwild-down-{outage_s:g}s", figures)
    assert went_down.is_set() and figures["records_applied"] == len(calls)
    assert (errors == []) == (outage_s < 5)  # a short outage is waited out
    if errors:  # the long one stopped mid-batch with signed transactions in flight
        assert 40 <= done_before_rerun < len(calls) and pending > 0
        # each pending intent is completed (re-sent ones included) or released
        assert recovery["completed"] + recovery["failed"] + recovery["released"] == pending


def wait_up(url: str, timeout: float = 60) -> None:
    client = KwilClient(url, version="v0.9")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.chain_info()
            return
        except KwilError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come back")


# -- a rotated provider key ------------------------------------------------------------


@pytest.mark.arlocal
def test_a_rotated_provider_key_applies_only_once_trusted(
        arlocal: Arlocal, target: Target, record_property: Callable[[str, object], None]) -> None:
    old_key, new_key = "a8" * 32, "a9" * 32
    new_address = EthereumKey(new_key).address
    original = dbid(EthereumKey(old_key).address, "messages")
    old, old_calls = honest_chain(old_key, 30)
    # the provider's shim now signs with the new key: same log, the new key's own sequence
    new, new_calls = honest_chain(new_key, 30, first_id=31, original=original)
    later, later_calls = honest_chain(new_key, 10, first_id=61, first_sequence=31,
                                      original=original, prev=new[-1].tag("Action-Id") or "")
    post_bundles(arlocal, [old, new])
    wait_indexed(arlocal.url, original, len(old) + len(new))

    def run(trusted: frozenset[str]) -> ReplayReport:
        return replayer(target, f"{arlocal.url}/graphql", arlocal.url, target.node.url,
                        original, trusted=trusted).run()

    before = run(frozenset())
    assert (before.applied, before.quarantined) == (30, {"untrusted-signer": 30})
    after = run(frozenset({new_address}))
    assert (after.applied, after.already_applied, after.known) == (30, 0, 30)
    post_bundles(arlocal, [later])
    wait_indexed(arlocal.url, original, len(old) + len(new) + len(later))
    revoked = run(frozenset())  # the new key taken off the trusted list again
    # its 10 new records are refused; the 30 applied while it was trusted are resolved
    # in the ledger and not read again
    assert revoked.applied == 0 and revoked.quarantined == {"untrusted-signer": 10}
    assert revoked.known == 60
    figures = target.check(old_calls + new_calls)
    figures.update(quarantined_before_trust=before.quarantined["untrusted-signer"],
                   applied_after_trust=after.applied,
                   quarantined_after_revoke=revoked.quarantined["untrusted-signer"])
    report_figures(record_property, "key-rotation", figures)


# -- uploads: the bundler asks for payment, the upload process is killed ---------------

SHIM_KEY = "b7" * 32  # the provider whose shim holds the outbox


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    """A real Prefect server for the module; yields its API URL for subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


@dataclass
class Outbox:
    """A shim (in process, submitting nothing) with `count` records saved in its outbox."""

    address: str
    original_dbid: str
    item_ids: list[str]


@pytest.fixture
def outbox(target: Target, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Outbox]:
    from pydantic import SecretStr

    from kwil_sync.shim.config import ShimConfig
    from kwil_sync.shim.server import start_shim
    from kwil_sync.shim_client import ShimClient

    count = int(request.param)
    provider = EthereumKey(SHIM_KEY).address
    target.node.deploy(provider, "messages", MESSAGES_SCHEMA)  # the shim reads its actions
    shim = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "outbox.sqlite",
                                 kwil_url=target.node.url, kwil_version="v0.9",
                                 provider_key=SecretStr(SHIM_KEY), submit=False))
    try:
        _, calls = honest_chain(SHIM_KEY, count)
        with ShimClient(shim.address) as client:
            ids = [client.save_action(local_db_name="messages", action_name=action,
                                      values=values).item_id for action, values in calls]
        yield Outbox(shim.address, dbid(provider, "messages"), ids)
    finally:
        shim.stop(0)




def on_bundler(bundler: BundlerStandIn, original_dbid: str) -> list[str]:
    """Ids of the records the bundler holds for a database, as its GraphQL lists them."""
    pager = GraphQLPager(f"{bundler.url}/graphql", "irys")
    return [r.id for r in pager.records({"Original-DBID": [original_dbid]})]


def assert_uploaded_once(bundler: BundlerStandIn, outbox: Outbox) -> dict[str, Any]:
    from kwil_sync.shim_client import ShimClient

    held = on_bundler(bundler, outbox.original_dbid)
    with ShimClient(outbox.address) as client:
        [status] = client.status(outbox.original_dbid)
    # the very bytes of the outbox, once each: a re-signed record would add another id
    assert sorted(held) == sorted(outbox.item_ids)
    assert (status.pending, status.uploaded) == (0, len(outbox.item_ids))
    return {"records_expected": len(outbox.item_ids), "records_applied": len(set(held)),
            "duplicates": len(held) - len(set(held)),
            "missing": len(set(outbox.item_ids) - set(held)), "unexpected": 0}


@pytest.mark.prefect
@pytest.mark.parametrize("outbox", [120], indirect=True)
def test_the_bundler_asks_for_payment_for_a_while_and_uploads_wait(
        prefect_api: str, outbox: Outbox, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    window_s = 10.0  # longer than one upload attempt waits (4 tries, Retry-After 2 s)
    bundler = cast(BundlerStandIn, BundlerStandIn.start(data_dir=tmp_path / "bundler",
                                                          bundle_interval=0))
    with bundler:
        Bundler(kind="irys", url=bundler.url).save("chaos-bundler-402", overwrite=True)
        bundler.set_fault(402, retry_after=2, count=10**6)
        threading.Timer(window_s, lambda: bundler.set_fault(402, count=0)).start()
        summary = upload(shim_address=outbox.address, bundler_block="chaos-bundler-402",
                         batch_size=50)
        figures = assert_uploaded_once(bundler, outbox)
    figures.update(payment_required_answers=bundler.faults_answered, window_s=window_s,
                   flow_summary=summary)
    report_figures(record_property, "bundler-402", figures)
    # The summary counts only what the last attempt of each batch uploaded: items a
    # failed attempt got accepted were acknowledged then, and are not counted again.
    assert bundler.faults_answered > 0 and summary["remaining"] == 0


KILLABLE_UPLOAD = """
import sys
import kwil_sync.tasks.upload
kwil_sync.tasks.upload.LEASE_SECONDS = int(sys.argv[3])  # short, so the test need not wait 600 s
from kwil_sync.flows.upload import upload
upload(shim_address=sys.argv[1], bundler_block=sys.argv[2], batch_size=40)
"""


@pytest.mark.prefect
@pytest.mark.parametrize("outbox", [200], indirect=True)
def test_the_upload_process_killed_mid_batch_then_reruns_upload_the_rest_once(
        prefect_api: str, outbox: Outbox, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    lease_s = 6
    slow = FaultRates(latency=1.0, latency_seconds=0.15)  # every upload takes a while
    with BundlerStandIn.start(data_dir=tmp_path / "bundler", bundle_interval=0) as bundler, \
            FaultProxy.start(bundler.url, slow, seed=4) as proxy:
        Bundler(kind="irys", url=proxy.url).save("chaos-bundler-kill", overwrite=True)
        env = {**os.environ, "PREFECT_API_URL": prefect_api}
        log = tmp_path / "upload.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", KILLABLE_UPLOAD, outbox.address, "chaos-bundler-kill",
                 str(lease_s)], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:  # kill it in the middle of its second batch of 40
            deadline = time.monotonic() + 120
            while len(on_bundler(bundler, outbox.original_dbid)) < 55:
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the upload made no progress"
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
        held_at_kill = len(on_bundler(bundler, outbox.original_dbid))
        proxy.set_rates(latency=0.0)
        # A new run at once: the killed run's batch stays leased to it until the lease ends.
        early = upload(shim_address=outbox.address, bundler_block="chaos-bundler-kill",
                       batch_size=40)
        time.sleep(lease_s)
        late = upload(shim_address=outbox.address, bundler_block="chaos-bundler-kill",
                      batch_size=40)
        figures = assert_uploaded_once(bundler, outbox)
    figures.update(held_at_kill=held_at_kill, lease_s=lease_s,
                   rerun_uploaded=early["uploaded"], rerun_remaining=early["remaining"],
                   after_lease_uploaded=late["uploaded"],
                   after_lease_already_there=late["already_there"])
    report_figures(record_property, "upload-killed", figures)
    assert 40 < held_at_kill < len(outbox.item_ids)
    assert 0 < early["remaining"] <= 40  # the killed batch, waiting for its lease
    assert late["remaining"] == 0 and late["already_there"] > 0  # re-posted, same ids


# -- two follow polls of the same target at once ---------------------------------------

FOLLOW = """
import json, sys
from kwil_sync.flows.follow import follow
result = follow(sys.argv[1], sys.argv[2], node="chaos-node", gateway="chaos-gateway",
                ledger_path=sys.argv[3], lock_timeout_seconds=float(sys.argv[4]))
print("RESULT " + json.dumps({k: result.get(k) for k in ("skipped", "applied",
                                                         "already_applied", "duplicates")}))
"""


@pytest.mark.arlocal
@pytest.mark.prefect
def test_two_follow_polls_at_once_apply_everything_once(
        prefect_api: str, arlocal: Arlocal, target: Target, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    owner_key = "c8" * 32
    items, calls = honest_chain(owner_key, 100)
    original = dbid(EthereumKey(owner_key).address, "messages")
    post_bundles(arlocal, [items])
    wait_indexed(arlocal.url, original, len(items))
    KwilNode(rpc_url=target.node.url, version="v0.9", private_key=SecretStr(ADMIN_KEY)).save(
        "chaos-node", overwrite=True)
    ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                   data_url=arlocal.url).save("chaos-gateway", overwrite=True)
    target.node.set_delay(0.02)  # a poll lasts long enough for the other to meet its lock
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    ledger = str(tmp_path / "follow-ledger.sqlite")
    polls = [subprocess.Popen([sys.executable, "-c", FOLLOW, original, target.id, ledger, "3"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0].decode() for p in polls]
    results = []
    for poll, output in zip(polls, outputs, strict=True):
        assert poll.returncode == 0, output[-3000:]
        [line] = [x for x in output.splitlines() if x.startswith("RESULT ")]
        results.append(json.loads(line.removeprefix("RESULT ")))
    target.node.set_delay(0)
    figures = target.check(calls)
    applied = sorted(r["applied"] or 0 for r in results)
    figures.update(polls=results, skipped=sum(1 for r in results if r["skipped"]))
    report_figures(record_property, "two-follows", figures)
    assert applied[-1] == len(calls)  # one poll applied everything
    # the other met the lock and skipped, or ran after it and found nothing new
    other = min(results, key=lambda r: r["applied"] or 0)
    assert other["skipped"] or (other["applied"], other["already_applied"]) == (0, 0)


@pytest.mark.prefect
def test_first_polls_creating_the_follow_limit_together_do_not_fail(prefect_api: str) -> None:
    """The limit's upsert is read-then-create: first polls started together race on it."""
    from prefect.client.orchestration import get_client

    from kwil_sync.flows.follow import _ensure_limit

    name = f"kwil-sync-follow-race-{time.time_ns()}"
    start, errors = threading.Barrier(8), []

    def first_poll() -> None:
        start.wait()
        try:
            _ensure_limit(name)
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=first_poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1
