"""The flow-running commands of `kwil-sync` (restore, follow, backfill)."""

from __future__ import annotations

import argparse
from typing import Any, cast

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from kwil_sync.defaults import BACKFILL_DEPLOYMENT, FOLLOW_DEPLOYMENT, RESTORE_DEPLOYMENT

__all__ = ["run_flow_command"]

DEPLOYMENTS = {"restore": RESTORE_DEPLOYMENT, "follow": FOLLOW_DEPLOYMENT,
               "backfill": BACKFILL_DEPLOYMENT}


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "backfill":
        targets = []
        for spec in args.targets:
            node, sep, target = spec.partition(":")
            if not sep or not node or not target:
                raise SystemExit(f"--target takes NODE_BLOCK:TARGET, got {spec!r}")
            targets.append({"node": node, "target": target})
        return {"original_dbid": args.original_dbid, "targets": targets,
                "gateway": args.gateway, "trusted_providers": args.trust,
                "ledger": args.ledger_block, "new_ledger": args.new_ledger}
    params: dict[str, Any] = {
        "original_dbid": args.original_dbid, "target": args.target, "node": args.node,
        "gateway": args.gateway, "trusted_providers": args.trust,
        "allow_unverified_legacy": args.allow_unverified_legacy,
        "ledger": args.ledger_block, "ledger_path": args.ledger, "new_ledger": args.new_ledger}
    if args.command == "restore":
        params.update(until=args.until, dry_run=args.dry_run)
    return params


def run_flow_command(args: argparse.Namespace) -> Any:
    """Run the command's flow here, or as a run of its deployment with `--deployment`."""
    params = _parameters(args)
    if getattr(args, "deployment", False) or args.command == "backfill":
        run = cast(FlowRun, run_deployment(DEPLOYMENTS[args.command], parameters=params))
        state = run.state
        return {"flow_run": run.name, "flow_run_id": str(run.id),
                "state": state.name if state else "unknown"}
    if args.command == "restore":
        from kwil_sync.flows.restore import restore

        return restore(**params)
    from kwil_sync.flows.follow import follow

    return follow(**params)
