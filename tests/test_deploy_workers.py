"""`prefect deploy --all` registers the four deployments on the `kwil-sync` process pool, and
two workers of that pool run the restore runs a backfill fans out onto two providers.

The real CLI deploys from the project root against a Prefect server of its own
process; the workers are `prefect worker start --pool kwil-sync --limit 1` processes, so
the two restore runs must be picked up by different workers. The backfill flow runs in
the test process; its restore runs go through the pool.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from helpers_records import (
    ROWS_SQL,
    Provider,
    expected_rows,
    messages_calls,
    messages_schema,
    mine,
    post_bundle,
    prefect_cli,
    session_stack,
    sign_chain,
    wait_indexed,
    worker_polls,
)

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.procs import stop_process
from kwil_sync.testing.stack import LocalStack, standin_call

RECORDS = 40
POOL = "kwil-sync"
ORIGINAL = Provider("74" * 32)
AUTHOR = EthereumKey("73" * 32).address
PROVIDERS = {"h8-pool-node-1": ("75" * 32, "h8-pool-chain-1"),
             "h8-pool-node-2": ("76" * 32, "h8-pool-chain-2")}
DEPLOYMENTS = {"kwil-sync-restore/restore": "kwil_sync.flows.restore:restore",
               "kwil-sync-follow/follow": "kwil_sync.flows.follow:follow",
               "kwil-sync-upload/upload": "kwil_sync.flows.upload:upload",
               "kwil-sync-backfill/backfill": "kwil_sync.flows.backfill:backfill"}


@dataclass
class World:
    stack: LocalStack
    nodes: dict[str, str]  # block name -> node URL
    targets: dict[str, str]  # block name -> target dbid
    deploy_output: str


def _prefect(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "prefect"), *args]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, arlocal: Arlocal) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    post_bundle(arlocal, sign_chain(ORIGINAL, messages_calls(RECORDS, AUTHOR, seed=5)))
    with ThreadPoolExecutor(1) as pool:
        mining = pool.submit(mine, arlocal.url)
        stack = session_stack(request)
        assert stack.prefect_api_url is not None
        nodes, targets = {}, {}
        for name, (key, chain_id) in PROVIDERS.items():
            nodes[name] = stack.start_kwil_node(name, chain_id=chain_id)
            targets[name] = str(standin_call(nodes[name], "deploy",
                                             owner=EthereumKey(key).address, name="messages",
                                             schema=messages_schema())["target"])
        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            for name, (key, _) in PROVIDERS.items():
                KwilNode(rpc_url=nodes[name], version="v0.9",
                         private_key=SecretStr(key)).save(name, overwrite=True)
            ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                           data_url=arlocal.url).save("h8-pool-arlocal", overwrite=True)
        prefect_cli(stack, "work-pool", "create", POOL, "--type", "process", "--overwrite")
        output = prefect_cli(stack, "--no-prompt", "deploy", "--all")
        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            _pause_upload_schedule()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")  # poll often: a short test
            for n in (1, 2):
                name = f"h8-worker-{n}"
                stack.spawn(name, _prefect("worker", "start", "--pool", POOL, "--name", name,
                                           "--limit", "1"),
                            ready=partial(worker_polls, stack, POOL, name), timeout=120)
        mining.result()
    wait_indexed(arlocal.url, ORIGINAL.dbid, RECORDS)
    try:
        yield World(stack, nodes, targets, output)
    finally:  # the rest of the session needs no workers polling
        for n in (1, 2):
            stop_process(stack.processes.pop(f"h8-worker-{n}"), timeout=10)


def _pause_upload_schedule() -> None:
    """The upload deployment's schedule would occupy a worker here (there is no shim)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        upload = client.read_deployment_by_name("kwil-sync-upload/upload")
        client.pause_deployment(upload.id)
        for run in client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[upload.id]))):
            client.delete_flow_run(run.id)


def _worker_log(stack: LocalStack, n: int) -> str:
    return (stack.root / "logs" / f"h8-worker-{n}.log").read_text(errors="replace")


def test_prefect_deploy_all_registers_the_four_deployments(world: World) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    assert world.stack.prefect_api_url is not None
    for name in DEPLOYMENTS:
        assert name in world.deploy_output
    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}), \
            get_client(sync_client=True) as client:
        for name, entrypoint in DEPLOYMENTS.items():
            deployment = client.read_deployment_by_name(name)
            assert deployment.work_pool_name == POOL, name
            assert deployment.entrypoint == entrypoint
            assert "kwil-sync" in deployment.tags
            assert not deployment.pull_steps  # imported from the installed package
            assert deployment.parameter_openapi_schema is not None
        restore = client.read_deployment_by_name("kwil-sync-restore/restore")
        params = restore.parameter_openapi_schema or {}
        assert {"original_dbid", "target", "node", "gateway"} <= set(params["properties"])


@pytest.mark.arlocal
@pytest.mark.timeout(400)
def test_backfill_fans_out_to_two_workers_and_both_targets_match(world: World) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kwil_sync.flows.backfill import backfill

    assert world.stack.prefect_api_url is not None
    targets = [{"node": name, "target": world.targets[name]} for name in PROVIDERS]
    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}):
        rows: list[dict[str, Any]] = backfill(ORIGINAL.dbid, targets,
                                              gateway="h8-pool-arlocal", timeout_seconds=300)
        assert [r["state"] for r in rows] == ["Completed", "Completed"]
        with get_client(sync_client=True) as client:
            restore = client.read_deployment_by_name("kwil-sync-restore/restore")
            runs = [client.read_flow_run(UUID(r["flow_run_id"])) for r in rows]
    for run in runs:
        assert run.deployment_id == restore.id and run.work_pool_name == POOL
        assert run.state is not None and run.state.is_completed()
        assert run.parent_task_run_id is not None  # a subflow of the backfill run
        assert run.infrastructure_pid  # started as a process by a worker
    # --limit 1 each: the two runs executed under the two different workers (a run's
    # own log lines, "View at .../flow-run/<id>", go to its worker's output)
    ran_on = {str(run.id): [n for n in (1, 2) if f"/flow-run/{run.id}"
                            in _worker_log(world.stack, n)] for run in runs}
    assert sorted(sum(ran_on.values(), [])) == [1, 2], ran_on

    expected = expected_rows(messages_calls(RECORDS, AUTHOR, seed=5))
    assert [_rows(world, name) for name in PROVIDERS] == [expected, expected]


def _rows(world: World, name: str) -> list[dict[str, Any]]:
    return list(standin_call(world.nodes[name], "rows", target=world.targets[name],
                             sql=ROWS_SQL)["rows"])
