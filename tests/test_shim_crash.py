"""Crash safety: SIGKILL the shim in the middle of a 1,000-action burst, restart it, upload.

Every save_action that was answered must end up on arlocal (through the bundler
stand-in) and be found there by tag: none lost, none doubled, sequences gap-free.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest

from kwil_sync.arweave.gateway import GatewayUnavailable
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.kwil import dbid
from kwil_sync.proto import extension_pb2, extension_pb2_grpc
from kwil_sync.shim.config import KEY_ENV
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.testing.procs import free_port, stop_process, wait_until
from kwil_sync.upload import upload_pending

KEY = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63"
ACTIONS = 1000
THREADS = 8
SCHEMA = Schema(tables=["CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"],
                actions=[ActionDef("add_note_sync", [("$id", "int"), ("$body", "text")], False,
                                   "INSERT INTO notes VALUES ($id, $body)")])


class Shim:
    """The shim as its own process (`python -m kwil_sync.shim`), so it can be SIGKILLed."""

    def __init__(self, port: int, outbox: Path, kwil_url: str) -> None:
        self.port, self.outbox, self.kwil_url = port, outbox, kwil_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, KEY_ENV: KEY}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kwil_sync.shim", "--port", str(self.port), "--outbox",
             str(self.outbox), "--kwil-url", self.kwil_url, "--kwil-version", "v0.9",
             "--no-submit", "--log-level", "WARNING"],
            env=env, cwd=Path(__file__).parents[1], start_new_session=True)
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = extension_pb2_grpc.ExtensionServiceStub(channel)
            wait_until(lambda: stub.Name(extension_pb2.NameRequest(), timeout=1).name == "db_sync",
                       timeout=60, what="the shim", process=self.process)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def burst(address: str, metadata: dict[str, str], indexes: list[int],
          answered: dict[int, str], stop_after: int | None = None,
          on_threshold: threading.Event | None = None) -> list[int]:
    """Call save_action for each index from THREADS threads; returns indexes not answered."""
    todo: queue.Queue[int] = queue.Queue()
    for i in indexes:
        todo.put(i)
    failed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = extension_pb2_grpc.ExtensionServiceStub(channel)
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                args = [json.dumps(v).encode() for v in ("add_note_sync", i, f"note {i}")]
                try:
                    answer = stub.Execute(extension_pb2.ExecuteRequest(
                        name="save_action", metadata=metadata,
                        args=[extension_pb2.ScalarValue(value=a) for a in args]), timeout=10)
                except grpc.RpcError:
                    with lock:
                        failed.append(i)
                    continue
                with lock:
                    answered[i] = json.loads(answer.outputs[0].value)
                    if stop_after is not None and len(answered) >= stop_after and on_threshold:
                        on_threshold.set()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(failed)


def flush(bundler: BundlerStandIn) -> None:
    """Bundle into arlocal; arlocal verifies every item when it mines, which can outlast
    one HTTP timeout on a busy machine, so a timed-out round is finished by the next."""
    for _ in range(10):
        try:
            bundler.flush()
            return
        except GatewayUnavailable:
            continue
    bundler.flush()


@pytest.mark.arlocal
@pytest.mark.timeout(900)  # arlocal indexes 1,000 items in ~30 s idle, minutes when busy
def test_sigkill_mid_burst_loses_and_doubles_nothing(arlocal: Arlocal, tmp_path: Path) -> None:
    name = f"crash{uuid.uuid4().hex[:8]}"
    node = KwilNodeStandIn.start(version="v0.9")
    bundler = BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path / "bundler",
                                   bundle_interval=0)
    shim = Shim(free_port(), tmp_path / "outbox.sqlite", node.url)
    address = f"127.0.0.1:{shim.port}"
    try:
        shim.start()
        with grpc.insecure_channel(address) as channel:
            stub = extension_pb2_grpc.ExtensionServiceStub(channel)
            metadata = dict(stub.Initialize(extension_pb2.InitializeRequest(
                metadata={"local_db_name": name}), timeout=5).metadata)
        original = metadata["original_dbid"]
        node.deploy(metadata["provider_address"], name, SCHEMA)
        assert original == dbid(metadata["provider_address"], name)

        answered: dict[int, str] = {}
        threshold = threading.Event()

        def kill_at_threshold() -> None:
            threshold.wait(60)
            shim.kill()

        killer = threading.Thread(target=kill_at_threshold)
        killer.start()
        left = burst(address, metadata, list(range(ACTIONS)), answered, stop_after=ACTIONS // 3,
                     on_threshold=threshold)
        killer.join()
        assert left, "the kill should have interrupted the burst"
        before_kill = dict(answered)

        shim.start()  # same outbox: kwild would re-send what failed, and re-execute some
        again: dict[int, str] = {}
        assert burst(address, metadata, sorted(before_kill)[:50], again) == []
        assert again == {i: before_kill[i] for i in again}  # same action, same answer
        assert burst(address, metadata, left, answered) == []
        assert sorted(answered) == list(range(ACTIONS))

        with ShimClient(address, timeout=30) as client:
            [status] = client.status(original)
            assert (status.pending, status.sequence) == (ACTIONS, ACTIONS)
            uploaded = 0
            while True:
                result = upload_pending(client, IrysUploader(bundler.url), holder="crash-test",
                                        limit=250)
                if result.uploaded == 0:
                    break
                uploaded += result.uploaded
            assert uploaded == ACTIONS
            assert client.status(original)[0].pending == 0
        flush(bundler)

        found = list(GraphQLPager(arlocal.url + "/graphql", "gateway").records(
            {"Original-DBID": [original], "Type": ["Action-Sync"]}))
        ids = Counter(r.id for r in found)
        tags = [dict(r.tags) for r in found]
        assert {url.rsplit("/", 1)[1] for url in answered.values()} <= set(ids)  # none lost
        assert max(ids.values()) == 1 and len(ids) == ACTIONS  # none doubled
        assert len({t["Action-Id"] for t in tags}) == ACTIONS
        assert sorted(int(t["Sequence"]) for t in tags) == list(range(1, ACTIONS + 1))
    finally:
        shim.stop()
        bundler.stop()
        node.stop()
