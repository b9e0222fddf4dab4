"""The upload flow with a real Prefect server (prefect_test_harness): the shim submits
batched runs of `kwil-sync-upload/upload`, a run drains the outbox in one task run per
batch, and a run with default parameters (as the schedule starts it) drains leftovers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_engine import run_flow
from prefect.testing.utilities import prefect_test_harness
from pydantic import SecretStr

from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.proto import extension_pb2, extension_pb2_grpc
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.testing.procs import wait_until

pytestmark = pytest.mark.prefect

KEY = "0f9c2c7d2b4b1f3e6a5d8c7b9a0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7980"
NAME = "board"
SCHEMA = Schema(tables=["CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)"],
                actions=[ActionDef("add_post_sync", [("$id", "int"), ("$body", "text")], False,
                                   "INSERT INTO posts VALUES ($id, $body)")])


@flow(name="kwil-sync-restore")
def restore_standin(original_dbid: str, target: str) -> None:
    """Registers the restore deployment's name; the shim only submits runs of it here."""


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def runs_of(deployment: str) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment])))


def execute(address: str, metadata: dict[str, str], first: int, count: int) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = extension_pb2_grpc.ExtensionServiceStub(channel)
        for i in range(first, first + count):
            stub.Execute(extension_pb2.ExecuteRequest(
                name="save_action", metadata=metadata,
                args=[extension_pb2.ScalarValue(value=json.dumps(v).encode())
                      for v in ("add_post_sync", i, f"post {i}")]), timeout=5)


def test_shim_submits_batches_and_the_flow_drains_them(harness: None, tmp_path: Path) -> None:
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.blocks.shim import SyncShim
    from kwil_sync.flows.upload import upload

    for deployment in (restore_standin.to_deployment("restore"), upload.to_deployment("upload")):
        cast(RunnerDeployment, deployment).apply()
    node = KwilNodeStandIn.start(version="v0.9")
    bundler = BundlerStandIn.start(data_dir=tmp_path / "bundler")  # Irys side only
    config = ShimConfig(port=0, outbox_path=tmp_path / "outbox.sqlite", kwil_url=node.url,
                        kwil_version="v0.9", provider_key=SecretStr(KEY), batch_size=100,
                        batch_interval_ms=300, bundler_block="test-bundler")
    shim = start_shim(config)
    try:
        Bundler(kind="irys", url=bundler.url).save("test-bundler", overwrite=True)
        SyncShim(address=shim.address).save("kwil-sync-shim", overwrite=True)
        with grpc.insecure_channel(shim.address) as channel:
            metadata = dict(extension_pb2_grpc.ExtensionServiceStub(channel).Initialize(
                extension_pb2.InitializeRequest(metadata={"local_db_name": NAME}),
                timeout=5).metadata)
        node.deploy(metadata["provider_address"], NAME, SCHEMA)
        original = metadata["original_dbid"]
        wait_until(lambda: len(runs_of("restore")) == 1, timeout=30, what="the restore run")
        assert runs_of("restore")[0].parameters == {"original_dbid": original,
                                                    "target": original}

        execute(shim.address, metadata, 0, 250)
        wait_until(lambda: len(runs_of("upload")) >= 1, timeout=30, what="an upload run")
        time.sleep(1.5)  # several intervals pass while that run is still scheduled
        [scheduled] = runs_of("upload")  # batches, not actions; one run in flight
        assert scheduled.parameters == {"shim_address": shim.address,
                                        "bundler_block": "test-bundler"}

        summary = cast(dict[str, Any], run_flow(upload, flow_run=scheduled,
                                                parameters=scheduled.parameters))
        assert summary == {"uploaded": 250, "already_there": 0, "batches": 3, "remaining": 0,
                           "confirmed": 0, "voided": 0, "waiting": 0, "unconfirmed": 0}
        with get_client(sync_client=True) as client:
            finished = client.read_flow_run(scheduled.id)

            def task_names() -> list[str]:
                return sorted(t.name for t in client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[scheduled.id]))))

            # task runs reach the server through its event pipeline, a moment later
            wait_until(lambda: len(task_names()) >= 3, timeout=30, what="the task runs")
            names = task_names()
        assert finished.state is not None and finished.state.is_completed()
        assert names == [f"upload-batch-{n}" for n in (1, 2, 3)]
        found = list(GraphQLPager(bundler.url + "/graphql", "irys").records(
            {"Original-DBID": [original]}))
        assert len({r.id for r in found}) == 250
        with ShimClient(shim.address) as client:
            assert client.status(original)[0].pending == 0
    finally:
        shim.stop(0)

    # A scheduled run (default parameters: the SyncShim block) drains what was left.
    leftover = start_shim(config.model_copy(update={"submit": False}))
    try:
        SyncShim(address=leftover.address).save("kwil-sync-shim", overwrite=True)
        execute(leftover.address, metadata, 1000, 7)
        assert upload(bundler_block="test-bundler")["uploaded"] == 7
        assert leftover.outbox.pending_count() == 0
        assert leftover.outbox.status(original)[0].uploaded == 257
    finally:
        leftover.stop(0)
        bundler.stop()
        node.stop()


def test_shim_config_from_a_kwil_node_block(harness: None) -> None:
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.cli.shim import shim_config

    KwilNode(rpc_url="http://127.0.0.1:9", version="v0.10",
             private_key=SecretStr(KEY)).save("shim-test-node", overwrite=True)
    config, _ = shim_config(["--kwil-node-block", "shim-test-node"])
    assert (config.kwil_url, config.kwil_version) == ("http://127.0.0.1:9", "v0.10")
    assert config.provider_key.get_secret_value() == KEY
    flags_win, _ = shim_config([
        "--kwil-node-block", "shim-test-node", "--kwil-url", "http://127.0.0.1:8"])
    assert flags_win.kwil_url == "http://127.0.0.1:8"


def test_a_missing_block_is_named(harness: None) -> None:
    from kwil_sync.flows.upload import upload

    with pytest.raises(ValueError, match="block named 'nope'"):
        upload(shim_address="127.0.0.1:1", bundler_block="nope")
