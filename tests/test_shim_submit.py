"""Flow submission: batches, not per action; one upload run at a time; Prefect outages."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kwil_sync.shim.submit import FlowSubmitter
from kwil_sync.testing.procs import wait_until


class ScriptedPrefect:
    """Records submissions; runs stay active until `finish()`; can be switched off."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, dict[str, Any]]] = []
        self.active: set[str] = set()
        self.down = False
        self.lock = threading.Lock()

    def submit(self, deployment: str, parameters: dict[str, Any]) -> str:
        if self.down:
            raise ConnectionError("connection refused")
        with self.lock:
            self.runs.append((deployment, parameters))
            run_id = f"run-{len(self.runs)}"
            self.active.add(run_id)
        return run_id

    def is_active(self, flow_run_id: str) -> bool:
        if self.down:
            raise ConnectionError("connection refused")
        return flow_run_id in self.active

    def close(self) -> None:
        pass

    def finish(self) -> None:
        self.active.clear()

    def uploads(self) -> int:
        return sum(1 for name, _ in self.runs if name == "up/load")


class Outbox:
    def __init__(self) -> None:
        self.pending = 0


@pytest.fixture
def setup():
    prefect, outbox = ScriptedPrefect(), Outbox()
    submitter = FlowSubmitter(prefect, pending_count=lambda: outbox.pending,
                              upload_deployment="up/load",
                              upload_parameters={"shim_address": "127.0.0.1:1"},
                              restore_deployment="re/store", restore_parameters={"node": "n"},
                              batch_size=10, interval_s=3600)
    submitter.start()
    yield prefect, outbox, submitter
    submitter.stop()


def save(outbox: Outbox, submitter: FlowSubmitter, n: int) -> None:
    for _ in range(n):
        outbox.pending += 1
        submitter.notify_saved()


def test_a_full_batch_submits_one_run_and_waits_for_it(setup) -> None:
    prefect, outbox, submitter = setup
    save(outbox, submitter, 9)
    threading.Event().wait(0.6)
    assert prefect.uploads() == 0  # below the batch size and long before the interval
    save(outbox, submitter, 1)
    wait_until(lambda: prefect.uploads() == 1, timeout=5, what="first upload run")
    assert prefect.runs[0] == ("up/load", {"shim_address": "127.0.0.1:1"})
    save(outbox, submitter, 35)  # more batches while the run is still going: no new run
    threading.Event().wait(0.6)
    assert prefect.uploads() == 1
    prefect.finish()
    save(outbox, submitter, 10)
    wait_until(lambda: prefect.uploads() == 2, timeout=5, what="second upload run")


def test_the_interval_submits_leftovers() -> None:
    prefect, outbox = ScriptedPrefect(), Outbox()
    outbox.pending = 3  # e.g. left by a crash before this start
    submitter = FlowSubmitter(prefect, pending_count=lambda: outbox.pending,
                              upload_deployment="up/load", upload_parameters={},
                              restore_deployment="re/store", batch_size=100, interval_s=0.2)
    submitter.start()
    try:
        wait_until(lambda: prefect.uploads() == 1, timeout=5, what="interval run")
        prefect.finish()
        outbox.pending = 0
        threading.Event().wait(0.6)
        assert prefect.uploads() == 1  # nothing pending: nothing submitted
    finally:
        submitter.stop()


def test_restores_are_submitted_once_per_database(setup) -> None:
    prefect, _, submitter = setup
    for _ in range(3):
        submitter.request_sync("xorig", "xlocal")
    submitter.request_sync("xorig", "xother")
    wait_until(lambda: submitter.stats.restore_runs == 2, timeout=5, what="restore runs")
    submitter.request_sync("xorig", "xlocal")
    threading.Event().wait(0.4)
    restores = [p for name, p in prefect.runs if name == "re/store"]
    assert restores == [{"node": "n", "original_dbid": "xorig", "target": "xlocal"},
                        {"node": "n", "original_dbid": "xorig", "target": "xother"}]


def test_prefect_outage_is_survived_and_retried(setup, caplog) -> None:
    prefect, outbox, submitter = setup
    prefect.down = True
    submitter.request_sync("xorig", "xlocal")
    save(outbox, submitter, 10)
    wait_until(lambda: submitter.stats.failures >= 2, timeout=5, what="failed submissions")
    assert prefect.runs == []
    assert "records stay in the outbox" in caplog.text
    prefect.down = False
    save(outbox, submitter, 10)
    wait_until(lambda: prefect.uploads() == 1 and submitter.stats.restore_runs == 1,
               timeout=5, what="submissions after the outage")


def test_the_shim_keeps_answering_when_prefect_is_unreachable(tmp_path, caplog) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.shim.config import ShimConfig
    from kwil_sync.shim.server import start_shim
    from kwil_sync.shim_client import ShimClient
    from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
    from kwil_sync.testing.procs import free_port

    node = KwilNodeStandIn.start(version="v0.10")
    key = "44" * 32
    nowhere = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with temporary_settings({PREFECT_API_URL: nowhere, PREFECT_CLIENT_MAX_RETRIES: 0}):
        shim = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "o.sqlite",
                                     kwil_url=node.url, provider_key=SecretStr(key),
                                     batch_size=2, batch_interval_ms=100))
    try:
        from kwil_sync.arweave.ans104 import EthereumSigner

        node.deploy(EthereumSigner(key).address, "db", Schema(
            tables=[], actions=[ActionDef("note", [("$n", "text")], True, "SELECT $n")]))
        with ShimClient(shim.address, timeout=5) as client:
            for n in range(5):
                assert client.save_action(local_db_name="db", action_name="note",
                                          values=[str(n)]).sequence == n + 1
            submitter = shim.submitter
            assert submitter is not None
            wait_until(lambda: submitter.stats.failures >= 1, timeout=60,
                       what="a failed submission")
            assert client.save_action(local_db_name="db", action_name="note",
                                      values=["after"]).sequence == 6
        assert submitter.stats.upload_runs == 0
        assert "Is PREFECT_API_URL set" in caplog.text
    finally:
        shim.stop(0)
        node.stop()
