"""The verify flow on a real Prefect server: blocks for two stand-in providers, the
source's records on the bundler stand-in's index, the replica's ledger; a verified run,
then one row changed on the replica behind kwil-sync's back: drift naming that key, in
the table artifact and a `kwil-sync.replica.drift` event; and the CLI's exit codes."""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers_records import Provider, messages_calls, session_stack, sign_chain

from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.ledger import Ledger, SequenceSlot
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.kwil_node import KwilNodeStandIn, Schema

KEY_A, KEY_B = "a7" * 32, "b8" * 32
TABLE = "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT, author TEXT)"
_NAMES = itertools.count(1)


@pytest.fixture(scope="module")
def prefect_api(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's Prefect server (shared with the other flow tests)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = session_stack(request).prefect_api_url
    assert url is not None
    with temporary_settings({PREFECT_API_URL: url}):
        yield url


@pytest.fixture(scope="module")
def env(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two provider stand-ins, the bundler stand-in's index and their blocks, once."""
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    root = tmp_path_factory.mktemp("verify-flow")
    dirs = [root / "node-a", root / "node-b"]
    for folder in dirs:
        folder.mkdir()
    nodes = [KwilNodeStandIn.start(version="v0.9", block_interval=0, data_dir=d) for d in dirs]
    try:
        with BundlerStandIn.start(data_dir=root / "bundler", bundle_interval=0) as bundler:
            for name, node, key in (("verify-a", nodes[0], KEY_A), ("verify-b", nodes[1], KEY_B)):
                KwilNode(rpc_url=node.url, version="v0.9",
                         private_key=SecretStr(key)).save(name, overwrite=True)
            ArweaveGateway(graphql_url=f"{bundler.url}/graphql", dialect="irys",
                           data_url=bundler.url).save("verify-gateway", overwrite=True)
            yield {"api": prefect_api, "nodes": nodes, "node_dirs": dirs,
                   "bundler": bundler.url}
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def world(env: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A fresh database on both nodes, level, with 4 of A's records on the index and the
    replica's ledger holding them applied."""
    name = f"notes{next(_NAMES)}"
    a, b = Provider(KEY_A, name), Provider(KEY_B, name)
    nodes = env["nodes"]
    targets = [nodes[0].deploy(a.address, name, Schema([TABLE])),
               nodes[1].deploy(b.address, name, Schema([TABLE]))]
    for node, target in zip(nodes, targets, strict=True):
        node.chain.databases[target].conn.executemany(
            "INSERT INTO messages VALUES (?, ?, ?)",
            [(i, f"note {i}", a.address) for i in range(1, 401)])
    IrysUploader(env["bundler"]).upload(sign_chain(a, messages_calls(4, a.address)))
    ledger = tmp_path / "ledger.sqlite"
    with Ledger(ledger) as store:  # the replica applied A's records 1..4
        store.mark_sequenced(f"kwil-standin/{targets[1]}",
                             [SequenceSlot(a.address, n, f"action-{n}") for n in range(1, 5)])
    return {**env, "a": a, "targets": targets,
            "params": {"database": targets[0], "source": f"verify-a:{targets[0]}",
                       "replica": f"verify-b:{targets[1]}", "gateway": "verify-gateway",
                       "ledger_path": str(ledger), "settle_seconds": 0.1,
                       "catch_up_seconds": 1.0}}


def _events(api: str, name: str, count: int) -> list[dict[str, Any]]:
    """Events called `name`, once `count` of them reached the server (sent asynchronously)."""
    deadline = time.monotonic() + 30
    while True:
        found = httpx.post(f"{api}/events/filter", json={
            "filter": {"event": {"name": [name]}}, "limit": 50}).json()["events"]
        if len(found) >= count or time.monotonic() > deadline:
            return list(found)
        time.sleep(0.5)


def test_verified_then_one_changed_row_is_drift_with_artifact_and_event(
        world: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from kwil_sync.flows.verify import verify

    first = verify(**world["params"])
    assert first["status"] == "verified", first
    assert first["point"] == first["replica_position"] == {world["a"].address.lower(): 4}

    node_b, target_b = world["nodes"][1], world["targets"][1]
    node_b.chain.databases[target_b].conn.execute(
        "UPDATE messages SET body = 'changed behind our back' WHERE id = 123")
    second = verify(**world["params"])
    assert second["status"] == "drift" and second["drift_keys"] == 1
    assert second["tables"][0]["different"] == [[123]]

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[second["artifact_key"]])), limit=1,
            sort=ArtifactSort.CREATED_DESC)
    rows = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    assert rows[0]["table"] == "messages" and rows[0]["different"] == "123"
    assert rows[0]["different_total"] == 1

    resource = f"kwil-sync.replica.{world['targets'][0]}.{target_b}"
    [drift] = _events(world["api"], "kwil-sync.replica.drift", 1)
    assert drift["resource"]["prefect.resource.id"] == resource
    assert drift["payload"]["drift_keys"] == 1
    assert _events(world["api"], "kwil-sync.replica.verified", 1)[0]["resource"][
        "kwil-sync.replica"] == world["params"]["replica"]


def test_the_cli_exits_1_on_drift_and_2_when_it_cannot_verify(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from kwil_sync.flows.verify import add_verify_arguments, run_verify_command

    parser = argparse.ArgumentParser(prog="kwil-sync verify")
    add_verify_arguments(parser)
    params = world["params"]
    base = [params["database"], "--source", params["source"], "--replica", params["replica"],
            "--ledger", params["ledger_path"], "--gateway", params["gateway"],
            "--settle-seconds", "0.1", "--catch-up-seconds", "0.5"]
    assert run_verify_command(parser.parse_args(base)) == 0
    node_b, target_b = world["nodes"][1], world["targets"][1]
    node_b.chain.databases[target_b].conn.execute("DELETE FROM messages WHERE id = 9")
    assert run_verify_command(parser.parse_args([*base, "--table", "messages"])) == 1
    assert "drift: 1 key(s) differ" in capsys.readouterr().out

    # A fifth record the replica has not applied: it is behind, and nothing is claimed.
    fifth = sign_chain(world["a"], messages_calls(5, world["a"].address))[4]
    IrysUploader(world["bundler"]).upload([fifth])
    assert run_verify_command(parser.parse_args([*base, "--json"])) == 2
    assert "the replica is behind" in capsys.readouterr().out
    assert run_verify_command(parser.parse_args([*base[:1], "--source", "no-colon",
                                                 "--replica", params["replica"]])) == 2


def test_the_demo_step_finds_exactly_the_row_changed_behind_kwil_syncs_back(
        world: dict[str, Any]) -> None:
    from kwil_sync.deployments.demo_verify import run_verify_demo

    params = world["params"]
    result = run_verify_demo(db_a=world["targets"][0], db_b=world["targets"][1],
                             node_b_dir=world["node_dirs"][1], ledger_path=params["ledger_path"],
                             source_block="verify-a", replica_block="verify-b",
                             gateway="verify-gateway", settle_seconds=0.1)
    assert result["verified_equal_before"] is True and result["drift_keys"] == 1
    assert result["drift_named"] == [[result["changed_key"]]] == [[1]]
