"""Restore and follow flows on a real Prefect server, reading a gateway block that names
two indexes of the log: arlocal, and a proxy in front of it that loses every tenth item.
Both runs apply everything; the report, a table artifact and a `kwil-sync.index.gaps`
event name exactly the items the lying index lacks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers_records import (
    ROWS_SQL,
    Provider,
    expected_rows,
    messages_calls,
    put_on_arlocal,
    session_stack,
    sign_chain,
)

from kwil_sync.arweave.ans104 import EthereumSigner
from kwil_sync.testing.arlocal import Arlocal, wait_indexed
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.lying_index import LyingIndex, drop_ids
from kwil_sync.testing.workload import MESSAGES_SCHEMA

pytestmark = [pytest.mark.arlocal, pytest.mark.prefect, pytest.mark.timeout(300)]

WRITER = Provider("c1" * 32)
TARGET_KEY = "c2" * 32
FIRST, MORE = 20, 10


@pytest.fixture(scope="module")
def prefect_api(request: pytest.FixtureRequest) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = session_stack(request).prefect_api_url
    assert url is not None
    with temporary_settings({PREFECT_API_URL: url}):
        yield url


def _events(api: str, name: str, resource: str, count: int) -> list[dict[str, Any]]:
    """Events `name` of `resource`, once `count` reached the server (sent asynchronously)."""
    deadline = time.monotonic() + 30
    while True:
        found = [e for e in httpx.post(f"{api}/events/filter", json={
            "filter": {"event": {"name": [name]}}, "limit": 50}).json()["events"]
            if e["resource"]["prefect.resource.id"] == resource]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_restore_and_follow_read_two_indexes_and_report_what_one_lacks(
        prefect_api: str, arlocal: Arlocal, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        ArtifactFilterType,
    )
    from prefect.client.schemas.sorting import ArtifactSort
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.flows.follow import follow
    from kwil_sync.flows.names import pair_key
    from kwil_sync.flows.restore import restore

    calls = messages_calls(FIRST + MORE, WRITER.address, seed=21)
    items = sign_chain(WRITER, calls)
    lost = [item.id for item in items[9::10]]
    node = KwilNodeStandIn.start(version="v0.9", block_interval=0.02)
    try:
        target = node.deploy(EthereumSigner(TARGET_KEY).address, "messages", MESSAGES_SCHEMA)
        put_on_arlocal(arlocal, items[:FIRST])
        wait_indexed(arlocal.url, WRITER.dbid, FIRST)
        with LyingIndex.start(arlocal.url, rewrite_edges=drop_ids(lost)) as liar:
            liar_index = f"{liar.url}/graphql"
            KwilNode(rpc_url=node.url, version="v0.9",
                     private_key=SecretStr(TARGET_KEY)).save("multi-node", overwrite=True)
            ArweaveGateway(graphql_url=liar_index, dialect="gateway", data_url=arlocal.url,
                           extra_indexes=[f"gateway {arlocal.url}/graphql"]).save(
                "multi-gateway", overwrite=True)
            ledger = str(tmp_path / "ledger.sqlite")
            restored = restore(WRITER.dbid, target, node="multi-node", gateway="multi-gateway",
                               ledger_path=ledger)
            assert (restored["applied"], restored["quarantined"]) == (FIRST, {})
            assert restored["index_gaps"] == [{"item_id": x, "source": liar_index}
                                              for x in lost[:2]]
            assert node.rows(target, ROWS_SQL) == expected_rows(calls[:FIRST])

            put_on_arlocal(arlocal, items[FIRST:])
            wait_indexed(arlocal.url, WRITER.dbid, FIRST + MORE)
            followed = follow(WRITER.dbid, target, node="multi-node", gateway="multi-gateway",
                              ledger_path=ledger)
            assert followed["applied"] == MORE and followed["quarantined"] == {}
            assert {g["item_id"] for g in followed["index_gaps"]} >= {lost[2]}
            assert {g["source"] for g in followed["index_gaps"]} == {liar_index}
            assert node.rows(target, ROWS_SQL) == expected_rows(calls)
    finally:
        node.stop()

    key = pair_key("restore", WRITER.dbid, target)
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"{key}-index-gaps"])), limit=1)
        [summary] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), type=ArtifactFilterType(any_=["table"])),
            limit=1, sort=ArtifactSort.CREATED_DESC)
    rows = table.data if isinstance(table.data, list) else json.loads(str(table.data))
    assert rows == [{"item_id": x, "source": liar_index} for x in lost[:2]]
    assert f"items missing from index {liar_index}" in str(summary.data)

    resource = f"kwil-sync.pair.{WRITER.dbid}.{target}"
    events = _events(prefect_api, "kwil-sync.index.gaps", resource, 2)
    assert len(events) == 2  # the restore and the follow poll
    payloads = sorted((e["payload"] for e in events), key=lambda p: p["gap_count"])
    assert payloads[0]["gaps"] == [{"item_id": x, "source": liar_index} for x in lost[:2]]
    assert payloads[0]["by_source"] == {liar_index: 2} and payloads[0]["down"] == []
