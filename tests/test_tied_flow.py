"""The upload flow on a real Prefect server (prefect_test_harness) with tied calls: the
run uploads only committed actions and its summary and artifact count the voided call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.testing.utilities import prefect_test_harness
from test_tied_capture import start_world

from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.flows.events import read_events
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.procs import wait_until

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_the_upload_flow_publishes_committed_actions_and_counts_the_voided(
        harness: None, tmp_path: Path) -> None:
    from kwil_sync.blocks.arweave import Bundler
    from kwil_sync.flows.upload import upload

    world = start_world(tmp_path)
    bundler = BundlerStandIn.start(data_dir=tmp_path / "bundler")  # Irys side only
    try:
        committed = world.workload.run(world.workload.plan(7))
        failed = world.workload.run_rolled_back()
        Bundler(kind="irys", url=bundler.url).save("tied-bundler", overwrite=True)
        summary = upload(shim_address=world.shim.address, bundler_block="tied-bundler",
                         batch_size=3)
        assert (summary["uploaded"], summary["confirmed"], summary["voided"]) == (7, 7, 1)
        assert (summary["waiting"], summary["unconfirmed"], summary["remaining"]) == (0, 0, 0)
        published = [dict(r.tags) for r in GraphQLPager(f"{bundler.url}/graphql", "irys")
                     .records({"Original-DBID": [world.target]})]
        assert sorted(t["Kwil-Tx-Hash"] for t in published) == sorted(committed)
        assert failed.tx_hash not in {t["Kwil-Tx-Hash"] for t in published}
        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["kwil-sync-upload"])), limit=1)
        assert '"voided": 1' in str(artifact.data) or "'voided': 1" in str(artifact.data)
        batches: list[dict[str, object]] = []

        def all_batches_seen() -> bool:  # one kwil-sync.records.uploaded event a batch
            batches[:] = [e["payload"] for e in read_events("kwil-sync.records.uploaded")
                          if e["resource"]["prefect.resource.id"]
                          == f"kwil-sync.shim.{world.shim.address}"]
            return sum(int(str(b["uploaded"])) for b in batches) == 7

        wait_until(all_batches_seen, timeout=60, what="the upload events", interval=0.5)
        assert sum(int(str(b["voided"])) for b in batches) == 1
    finally:
        bundler.stop()
        world.client.close()
        world.workload.close()
        world.node.stop()
        world.shim.stop()
