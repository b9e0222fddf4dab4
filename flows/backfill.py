"""The backfill flow: restore one database onto several providers as parallel flow runs."""

from __future__ import annotations

import time
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from kwil_sync.defaults import BACKFILL_FLOW, GATEWAY_BLOCK, RESTORE_DEPLOYMENT
from kwil_sync.flows.names import pair_key, pair_run_name

__all__ = ["backfill"]


@flow(name=BACKFILL_FLOW, flow_run_name=pair_run_name("backfill"), log_prints=False)
def backfill(original_dbid: str, targets: list[dict[str, str]],
             gateway: str = GATEWAY_BLOCK, trusted_providers: list[str] | None = None,
             deployment: str = RESTORE_DEPLOYMENT, wait: bool = True,
             timeout_seconds: float = 6 * 3600, ledger: str | None = None,
             new_ledger: bool = False) -> list[dict[str, Any]]:
    """Submit one restore run per target to the restore deployment and report each.

    The runs are separate flow runs of the deployment, so a work pool with several
    workers spreads them over machines; each shows up as a subflow of this run.

    Args:
        original_dbid: The database's dbid on its first provider.
        targets: One `{"node": KwilNode block name, "target": dbid or namespace}` each.
        gateway: Name of the ArweaveGateway block every restore reads from.
        trusted_providers: More provider addresses whose records are applied.
        deployment: The restore deployment, `flow-name/deployment-name`.
        wait: Wait for every run to finish and report its final state.
        timeout_seconds: How long to wait for all of them.
        ledger: Name of the LedgerDatabase block every restore records in; the runs
            land on any worker of the pool, so it should be a shared (PostgreSQL) one.
        new_ledger: Passed to each restore (see the restore flow).

    Returns:
        One row per target: node, target, flow run id and name, state.
    """
    logger = get_run_logger()
    for spec in targets:
        if not spec.get("node") or not spec.get("target"):
            raise ValueError(f"each target needs 'node' and 'target', got {spec!r}")
    runs = [cast(FlowRun, run_deployment(deployment, timeout=0, parameters={
        "original_dbid": original_dbid, "target": spec["target"], "node": spec["node"],
        "gateway": gateway, "trusted_providers": trusted_providers or [],
        **({"ledger": ledger} if ledger else {}), **({"new_ledger": True} if new_ledger else {})}))
        for spec in targets]
    logger.info("submitted %d restore run(s) of %s", len(runs), original_dbid)
    states: dict[Any, Any] = {run.id: run for run in runs}
    deadline = time.monotonic() + timeout_seconds
    with get_client(sync_client=True) as client:
        while wait and time.monotonic() < deadline:
            states = {run.id: client.read_flow_run(run.id) for run in runs}
            if all(r.state is not None and r.state.is_final() for r in states.values()):
                break
            time.sleep(2)
    rows = [{"node": spec["node"], "target": spec["target"], "flow_run_id": str(run.id),
             "flow_run": states[run.id].name,
             "state": states[run.id].state.name if states[run.id].state else "unknown"}
            for spec, run in zip(targets, runs, strict=True)]
    create_table_artifact(rows, key=pair_key("backfill", original_dbid),
                          description=f"Backfill of {original_dbid} onto {len(rows)} target(s)")
    failed = [r for r in rows if wait and r["state"] != "Completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} restore run(s) did not complete: "
                           + ", ".join(f"{r['target']} ({r['state']})" for r in failed))
    return rows
