"""Chaos scenarios (see `kwil_sync.testing.chaos`): each writes honest records of its own
database, breaks something on the way, and returns its figures. Sizes are arguments:
tests/test_chaos.py runs them small and asserts, bench/chaos.py runs them large.

The upload and follow scenarios run the real flows (in this process or in processes of
their own) and need a Prefect server: the caller sets `PREFECT_API_URL` here and in
`ChaosWorld.env`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from kwil_sync.arweave.gateway import GatewayUnavailable
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.dbid import dbid
from kwil_sync.replay import Replayer
from kwil_sync.sources import follow_start
from kwil_sync.testing.bundler import BundlerStandIn, upload_until_accepted
from kwil_sync.testing.chaos import (
    ADMIN_KEY,
    CALLS_PER_TX,
    ChaosWorld,
    Figures,
    fault_rates,
    run_until_done,
)
from kwil_sync.testing.faultproxy import FaultProxy, FaultRates
from kwil_sync.testing.hostile_signing import honest_chain
from kwil_sync.testing.workload import MESSAGES_SCHEMA

__all__ = ["bundler_402", "faults_every_hop", "key_rotation", "kwild_outage", "two_follows",
           "upload_killed"]

SHIM_KEY = "b7" * 32  # the provider whose shim holds the outbox
LIFETIME_S = 7200.0  # a fault proxy stops by itself after this (its default, 600 s, is short)


def _flush(world: ChaosWorld, bundler: BundlerStandIn) -> None:
    """Bundle into arlocal; a busy arlocal may time a big round out, the next one ends it."""
    for attempt in range(5):
        try:
            bundler.flush()
            return
        except GatewayUnavailable as exc:
            world.say(f"  bundling round {attempt + 1} failed ({exc}); again")
            time.sleep(5)
    raise RuntimeError("arlocal kept failing the bundler's rounds")


def faults_every_hop(world: ChaosWorld, records: int, rate: float,
                     page_size: int = 100) -> Figures:
    """Upload through the bundler, restore, then follow half as many more, with `rate` of
    requests failing on every hop (bundler, gateway GraphQL and data, kwild)."""
    key = "e5" * 32
    first, first_calls = honest_chain(key, records)
    later, later_calls = honest_chain(key, records // 2, first_id=records + 1,
                                      first_sequence=records + 1,
                                      prev=first[-1].tag("Action-Id") or "")
    original = dbid(EthereumKey(key).address, "messages")
    with world.target("faults") as target, ExitStack() as stack:
        bundler = stack.enter_context(BundlerStandIn.start(
            world.arlocal.url, data_dir=world.root / "faults-bundler", bundle_interval=0,
            max_bundle_items=250))
        proxies = {hop: stack.enter_context(FaultProxy.start(url, fault_rates(rate), seed=seed,
                                                             max_lifetime=LIFETIME_S))
                   for seed, (hop, url) in enumerate({"bundler": bundler.url,
                                                      "gateway": world.arlocal.url,
                                                      "kwil": target.node.url}.items(), 1)}
        uploader = IrysUploader(proxies["bundler"].url, "ethereum", backoff=0.1)
        gateway = proxies["gateway"].url

        def make() -> Replayer:
            return target.replayer(f"{gateway}/graphql", gateway, original,
                                   kwil_url=proxies["kwil"].url, page_size=page_size)

        tries = upload_until_accepted(uploader, first)
        _flush(world, bundler)
        world.wait_indexed(original, records)
        restored = run_until_done(make, say=world.say)
        tries += upload_until_accepted(uploader, later)
        _flush(world, bundler)
        world.wait_indexed(original, records + len(later))
        followed = run_until_done(make, follow_start(
            restored.report.resume if restored.report else None, lookback_blocks=2),
            follow=True, say=world.say)
        uploader.close()
        stats = {hop: p.stats() for hop, p in proxies.items()}
        figures = target.figures(first_calls + later_calls)
        held = _listed(f"{bundler.url}/graphql", original)
    figures.update({f"faults_{hop}": s.injected for hop, s in stats.items()},
                   requests=sum(s.requests for s in stats.values()), upload_tries=tries,
                   bundler_items=len(held), bundler_repeats=len(held) - len(set(held)),
                   restore_completed=restored.report is not None,
                   restore_failed_runs=restored.failed_runs(),
                   follow_completed=followed.report is not None,
                   follow_failed_runs=followed.failed_runs(),
                   quarantined=sum(sum(r.report.quarantined.values())
                                   for r in (restored, followed) if r.report),
                   faults_injected=sum(s.injected for s in stats.values()))
    return figures


def kwild_outage(world: ChaosWorld, records: int, *, outage_s: float = 0.0,
                 restart: bool = False, page_size: int = 100) -> Figures:
    """kwild goes down for `outage_s` (or restarts, forgetting its mempool) half-way
    through a restore, in the middle of a batch; failed runs are rerun each second."""
    key = ("f7" if restart else "f6" if outage_s < 5 else "f8") * 32
    items, calls = honest_chain(key, records)
    original = dbid(EthereumKey(key).address, "messages")
    world.publish(original, items, records)
    with world.target("kwild-restart" if restart else f"kwild-down-{int(outage_s)}s") as target:
        node, struck = target.node, threading.Event()

        def strike() -> None:  # in the middle of a batch, half-way
            while node.method_counts["user.broadcast"] < records // 2 // CALLS_PER_TX:
                time.sleep(0.002)
            if restart:
                node.restart(down_for=2)
            else:
                node.go_down()
                threading.Timer(outage_s, node.come_up).start()
            struck.set()

        threading.Thread(target=strike, daemon=True).start()
        runs = run_until_done(lambda: target.replayer(
            f"{world.arlocal.url}/graphql", world.arlocal.url, original, page_size=page_size),
            target=target, say=world.say)
        figures = target.figures(calls)
    recovery = ({k: len(v) for k, v in vars(runs.report.recovery).items()}
                if runs.report is not None and runs.report.recovery else {})
    figures.update(struck=struck.is_set(), completed=runs.report is not None,
                   failed_runs=runs.failed_runs(), recovery=recovery,
                   done_at_first_failure=runs.done_at_first_failure,
                   pending_at_first_failure=runs.pending_at_first_failure, faults_injected=1)
    if not restart:
        figures["outage_s"] = outage_s
    return figures


def key_rotation(world: ChaosWorld, records: int) -> Figures:
    """A provider's new key: quarantined until trusted, applied once trusted; its later
    records quarantined again when it is taken off the list (`records` per phase)."""
    n, old_key, new_key = records, "a8" * 32, "a9" * 32
    original = dbid(EthereumKey(old_key).address, "messages")
    old, old_calls = honest_chain(old_key, n)
    new, new_calls = honest_chain(new_key, n, first_id=n + 1, original=original)
    later, _ = honest_chain(new_key, max(1, n // 3), first_id=2 * n + 1, first_sequence=n + 1,
                            original=original, prev=new[-1].tag("Action-Id") or "")
    world.publish(original, old + new, 2 * n)
    with world.target("rotation") as target:
        def run(trusted: frozenset[str]) -> dict[str, int]:
            report = target.replayer(f"{world.arlocal.url}/graphql", world.arlocal.url,
                                     original, trusted=trusted).run()
            return {"applied": report.applied, "known": report.known,
                    "already_applied": report.already_applied,
                    "quarantined": report.quarantined.get("untrusted-signer", 0)}

        before = run(frozenset())
        after = run(frozenset({EthereumKey(new_key).address}))
        world.publish(original, later, 2 * n + len(later))
        revoked = run(frozenset())
        figures = target.figures(old_calls + new_calls)
    figures.update({f"{k}_before_trust": v for k, v in before.items()},
                   **{f"{k}_after_trust": v for k, v in after.items()},
                   **{f"{k}_after_revoke": v for k, v in revoked.items()},
                   later_records=len(later), faults_injected=0)
    return figures


@contextmanager
def shim_outbox(world: ChaosWorld, name: str, count: int) -> Iterator[tuple[str, str, list[str]]]:
    """A shim (in process, submitting nothing) with `count` records in its outbox;
    yields (address, original dbid, item ids)."""
    from pydantic import SecretStr

    from kwil_sync.shim.config import ShimConfig
    from kwil_sync.shim.server import start_shim
    from kwil_sync.shim_client import ShimClient

    provider = EthereumKey(SHIM_KEY).address
    with world.target(name) as target:
        target.node.deploy(provider, "messages", MESSAGES_SCHEMA)  # the shim reads its actions
        shim = start_shim(ShimConfig(port=0, outbox_path=world.root / f"{name}-outbox.sqlite",
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


def _listed(graphql_url: str, original: str) -> list[str]:
    """Ids an Irys-style index lists for a database, repeats included."""
    return [r.id for r in GraphQLPager(graphql_url, "irys").records(
        {"Original-DBID": [original]})]


def held(bundler: BundlerStandIn, original: str, ids: list[str]) -> Figures:
    """The outbox's items against what the bundler lists for the database."""
    listed = _listed(f"{bundler.url}/graphql", original)
    return {"records_expected": len(ids), "records_applied": len(set(listed) & set(ids)),
            "duplicates": len(listed) - len(set(listed)), "missing": len(set(ids) - set(listed)),
            "unexpected": len(set(listed) - set(ids))}


def _shim_status(address: str, original: str) -> tuple[int, int]:
    from kwil_sync.shim_client import ShimClient

    with ShimClient(address) as client:
        [status] = client.status(original)
    return status.pending, status.uploaded


def bundler_402(world: ChaosWorld, records: int, window_s: float,
                batch_size: int = 100) -> Figures:
    """The bundler answers 402 (Retry-After 2) for `window_s` while the upload flow drains
    a shim's outbox of `records`."""
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    with shim_outbox(world, "payment", records) as (address, original, ids):
        bundler = BundlerStandIn.start(data_dir=world.root / "payment-bundler",
                                       bundle_interval=0)
        assert isinstance(bundler, BundlerStandIn)
        with bundler:
            Bundler(kind="irys", url=bundler.url).save("chaos-bundler-402", overwrite=True)
            bundler.set_fault(402, retry_after=2, count=10**9)
            threading.Timer(window_s, lambda: bundler.set_fault(402, count=0)).start()
            summary = upload(shim_address=address, bundler_block="chaos-bundler-402",
                             batch_size=batch_size)
            figures = held(bundler, original, ids)
        pending, uploaded = _shim_status(address, original)
    figures.update(payment_window_s=window_s, payment_required_answers=bundler.faults_answered,
                   remaining=summary["remaining"], outbox_pending=pending,
                   outbox_uploaded=uploaded, faults_injected=bundler.faults_answered)
    return figures


KILLABLE_UPLOAD = """
import sys
import kwil_sync.upload
kwil_sync.upload.LEASE_SECONDS = int(sys.argv[3])  # short: no 600 s wait
from kwil_sync.flows.upload import upload
upload(shim_address=sys.argv[1], bundler_block=sys.argv[2], batch_size=int(sys.argv[4]))
"""


def upload_killed(world: ChaosWorld, records: int, batch_size: int, lease_s: int) -> Figures:
    """The upload flow's process is SIGKILLed in the middle of its second batch; a new run
    uploads the rest at once but the killed batch, which waits for its lease."""
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    slow = FaultRates(latency=1.0, latency_seconds=0.15)  # every upload takes a while
    with shim_outbox(world, "killed", records) as (address, original, ids), \
            BundlerStandIn.start(data_dir=world.root / "killed-bundler",
                                 bundle_interval=0) as bundler, \
            FaultProxy.start(bundler.url, slow, seed=9, max_lifetime=LIFETIME_S) as proxy:
        Bundler(kind="irys", url=proxy.url).save("chaos-bundler-kill", overwrite=True)
        log = world.root / "killed-upload.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", KILLABLE_UPLOAD, address, "chaos-bundler-kill",
                 str(lease_s), str(batch_size)], env=world.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        count = lambda: held(bundler, original, ids)["records_applied"]  # noqa: E731
        try:  # kill it in the middle of its second batch
            deadline = time.monotonic() + 300
            while count() < batch_size + batch_size // 3:
                if process.poll() is not None:
                    raise RuntimeError(f"the upload process ended early:\n"
                                       f"{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError("the upload made no progress")
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
        at_kill = count()
        world.say(f"  killed with {at_kill} of {len(ids)} on the bundler")
        proxy.set_rates(latency=0.0)
        early = upload(shim_address=address, bundler_block="chaos-bundler-kill",
                       batch_size=batch_size)
        time.sleep(lease_s)
        late = upload(shim_address=address, bundler_block="chaos-bundler-kill",
                      batch_size=batch_size)
        figures = held(bundler, original, ids)
        pending, uploaded = _shim_status(address, original)
    figures.update(held_at_kill=at_kill, lease_s=lease_s, rerun_uploaded=early["uploaded"],
                   left_for_the_lease=early["remaining"], after_lease_uploaded=late["uploaded"],
                   after_lease_already_there=late["already_there"],
                   after_lease_remaining=late["remaining"], outbox_pending=pending,
                   outbox_uploaded=uploaded, faults_injected=1)
    return figures


FOLLOW = """
import json, sys
from kwil_sync.flows.follow import follow
result = follow(sys.argv[1], sys.argv[2], node="chaos-node", gateway="chaos-gateway",
                ledger_path=sys.argv[3], lock_timeout_seconds=float(sys.argv[4]))
print("RESULT " + json.dumps({k: result.get(k) for k in ("skipped", "applied",
                                                         "already_applied", "duplicates")}))
"""


def two_follows(world: ChaosWorld, records: int, lock_timeout_s: float = 5.0) -> Figures:
    """Two follow polls of one (database, target) started at once, as separate processes
    sharing one ledger: one applies, the other skips or finds nothing new."""
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    key = "c8" * 32
    items, calls = honest_chain(key, records)
    original = dbid(EthereumKey(key).address, "messages")
    world.publish(original, items, records)
    with world.target("follows") as target:
        KwilNode(rpc_url=target.node.url, version="v0.9",
                 private_key=SecretStr(ADMIN_KEY)).save("chaos-node", overwrite=True)
        ArweaveGateway(graphql_url=f"{world.arlocal.url}/graphql", dialect="gateway",
                       data_url=world.arlocal.url).save("chaos-gateway", overwrite=True)
        target.node.set_delay(0.02)  # a poll lasts long enough for the other to meet it
        ledger = str(world.root / "follows-ledger.sqlite")
        polls = [subprocess.Popen([sys.executable, "-c", FOLLOW, original, target.id, ledger,
                                   str(lock_timeout_s)], env=world.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True) for _ in range(2)]
        results = []
        for poll in polls:
            output = poll.communicate(timeout=900)[0].decode()
            lines = [x for x in output.splitlines() if x.startswith("RESULT ")]
            results.append(json.loads(lines[0].removeprefix("RESULT ")) if lines
                           else {"failed": poll.returncode, "output": output[-2000:]})
        target.node.set_delay(0)
        figures = target.figures(calls)
    figures.update(polls=results, skipped=sum(1 for r in results if r.get("skipped")),
                   faults_injected=1)
    return figures
