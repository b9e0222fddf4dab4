"""End to end with every real component that runs here: a Prefect server, served
deployments, arlocal, the bundler stand-in, two Kwil node stand-ins and the shim.

200 actions are written on provider A through the shim (as kwild's db_sync extension
calls), uploaded by upload flow runs, bundled into arlocal, restored onto provider B by
a run of the restore deployment; then 50 more, and one follow run brings B level.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import dbid
from kwil_sync.kwil.client import KwilClient
from kwil_sync.testing.arlocal import wait_indexed
from kwil_sync.testing.stack import LocalStack, standin_call
from kwil_sync.testing.workload import MESSAGES_SCHEMA, MessagesWorkload

KEY_A = "11" * 32  # provider A (the original provider)
KEY_B = "22" * 32  # provider B (restored onto)
KEY_USER = "33" * 32  # the user who posts on A
ROWS = "SELECT id, body, author, created_at FROM messages ORDER BY id"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    try:
        api = stack.start_prefect()
        arlocal = stack.start_arlocal()
        bundler = stack.start_bundler(arlocal, interval=0.5)
        node_a = stack.start_kwil_node("node-a")
        node_b = stack.start_kwil_node("node-b")
        with temporary_settings({PREFECT_API_URL: api}):
            yield _configure(stack, arlocal, bundler, node_a, node_b)
    finally:
        stack.stop()


def _configure(stack: LocalStack, arlocal: str, bundler: str, node_a: str,
               node_b: str) -> dict[str, Any]:
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway, Bundler
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.blocks.shim import SyncShim

    a, b = EthereumKey(KEY_A).address, EthereumKey(KEY_B).address
    db_a = standin_call(node_a, "deploy", owner=a, name="messages",
                        schema=_schema_json())["target"]
    db_b = standin_call(node_b, "deploy", owner=b, name="messages",
                        schema=_schema_json())["target"]
    assert db_a == dbid(a, "messages") and db_b == dbid(b, "messages")
    KwilNode(rpc_url=node_a, version="v0.9", private_key=SecretStr(KEY_A)).save("node-a")
    KwilNode(rpc_url=node_b, version="v0.9", private_key=SecretStr(KEY_B)).save("node-b")
    ArweaveGateway(graphql_url=f"{arlocal}/graphql", dialect="gateway",
                   data_url=arlocal).save("arlocal")
    Bundler(kind="irys", url=bundler).save("kwil-sync-bundler")
    shim = stack.start_shim(kwil_url=node_a, key_file=stack.write_key("a", KEY_A), extra=[
        "--restore-parameter", "node=node-a", "--restore-parameter", "gateway=arlocal",
        "--restore-parameter", "skip_own=true", "--batch-interval-ms", "500"])
    SyncShim(address=shim).save("kwil-sync-shim")
    stack.start_serve("--upload-interval", "5")
    metadata = MessagesWorkload.initialize(shim, "messages")
    assert metadata["original_dbid"] == db_a == metadata["local_dbid"]
    workload = MessagesWorkload(KwilClient(node_a, version="v0.9"), str(db_a), KEY_USER, shim,
                                metadata)
    return {"stack": stack, "arlocal": arlocal, "node_a": node_a, "node_b": node_b,
            "db_a": db_a, "db_b": db_b, "workload": workload}


def _schema_json() -> dict[str, Any]:
    import json

    return dict(json.loads(MESSAGES_SCHEMA.to_json()))




def _run(name: str, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    run = run_deployment(name, parameters=parameters, timeout=300)
    assert run.state is not None and run.state.is_completed(), run.state
    return run


@pytest.mark.timeout(900)
def test_restore_then_follow_brings_b_level(world: dict[str, Any]) -> None:
    workload: MessagesWorkload = world["workload"]
    urls = workload.run(workload.plan(200))
    assert len(set(urls)) == 200 and all(u.startswith("https://arweave.net/") for u in urls)
    wait_indexed(world["arlocal"], world["db_a"], 200, timeout=180, interval=1)

    params = {"original_dbid": world["db_a"], "target": world["db_b"], "node": "node-b",
              "gateway": "arlocal"}
    _run("kwil-sync-restore/restore", params)
    rows_a = standin_call(world["node_a"], "rows", target=world["db_a"], sql=ROWS)["rows"]
    rows_b = standin_call(world["node_b"], "rows", target=world["db_b"], sql=ROWS)["rows"]
    assert len(rows_a) > 120 and rows_a == rows_b

    workload.run(workload.plan(50))
    wait_indexed(world["arlocal"], world["db_a"], 250, timeout=180, interval=1)
    _run("kwil-sync-follow/follow", params)
    rows_a = standin_call(world["node_a"], "rows", target=world["db_a"], sql=ROWS)["rows"]
    rows_b = standin_call(world["node_b"], "rows", target=world["db_b"], sql=ROWS)["rows"]
    assert rows_a == rows_b

    # a rerun of the restore applies nothing twice
    again = _run("kwil-sync-restore/restore", params)
    assert again.state.is_completed()
    assert standin_call(world["node_b"], "rows", target=world["db_b"], sql=ROWS)["rows"] == rows_a
