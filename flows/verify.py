"""The verify flow and `kwil-sync verify`: is a replica equal to its source at one log
position? A table artifact names the keys that differ, an event says the verdict.

The comparison is `kwil_sync.replica` (user.query only, range digests computed by the
nodes); the point is the source provider's last published record (read from the
gateway's index) and the replica's ledger position (see docs/VERIFY.md).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from kwil_sync.blocks.arweave import ArweaveGateway
from kwil_sync.blocks.kwil import KwilNode
from kwil_sync.blocks.settings import KwilSyncSettings
from kwil_sync.defaults import GATEWAY_BLOCK, VERIFY_FLOW
from kwil_sync.flows.follow import load_cursor
from kwil_sync.flows.ledger import open_run_ledger
from kwil_sync.flows.names import pair_key, short
from kwil_sync.replica import (
    LogPoint,
    QueryNode,
    Settle,
    VerifyReport,
    published_point,
    verify_replica,
)
from kwil_sync.replica.arguments import add_verify_arguments
from kwil_sync.sources import follow_start

__all__ = ["EXIT_CODES", "add_verify_arguments", "run_verify_command", "verify"]

EXIT_CODES = {"verified": 0, "drift": 1, "unverified": 2}
_KEYS_SHOWN = 20  # keys per kind written into the artifact (the report keeps `cap`)


def _split(spec: str, what: str) -> tuple[str, str]:
    node, sep, target = spec.partition(":")
    if not sep or not node or not target:
        raise ValueError(f"{what} takes NODE_BLOCK:TARGET (a KwilNode block name and the dbid "
                         f"or namespace on it), got {spec!r}")
    return node, target


def _settle(database: str, blocks: tuple[KwilNode, KwilNode], replica_target: str,
            gateway: str, ledger: str | None, ledger_path: str | None, catch_up_seconds: float,
            settle_seconds: float) -> tuple[Settle, Any]:
    """The source's published point from the index, the replica's from its ledger."""
    provider = blocks[0].get_signer().address.lower()
    key = f"{blocks[1].resolve_chain_id()}/{replica_target}"  # the key replay writes under
    arweave = cast(ArweaveGateway, ArweaveGateway.load(gateway))
    lookback_ms = KwilSyncSettings().follow_lookback_seconds * 1000
    store = open_run_ledger(ledger, ledger_path)  # last: nothing left open if above fails

    def replica_position() -> LogPoint:
        return LogPoint(store.sequence_start(key)).only({provider})

    def published() -> LogPoint:
        start = follow_start(load_cursor(database, replica_target), lookback_ms=lookback_ms)
        return published_point(arweave.get_source(database),
                               providers={provider}, start=start, known=replica_position())

    return Settle(published, replica_position, catch_up_s=catch_up_seconds,
                  settle_s=settle_seconds), store


def _run_name() -> str:
    """`verify 52197631 on node-b`: dbids are too long to read in the UI's run list."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    database = short(str(params.get("database", "")))
    return f"verify {database} on {str(params.get('replica', '')).partition(':')[0]}"


@flow(name=VERIFY_FLOW, flow_run_name=_run_name, log_prints=False)
def verify(database: str, source: str, replica: str, tables: list[str] | None = None,
           gateway: str | None = GATEWAY_BLOCK, ledger: str | None = None,
           ledger_path: str | None = None, catch_up_seconds: float = 60.0,
           settle_seconds: float = 5.0, cap: int = 100) -> dict[str, Any]:
    """Compare a database's tables on two providers at one log position.

    Args:
        database: The database's Original-DBID (the log's key), or its namespace.
        source: `NODE_BLOCK:TARGET` of the copy of record (a KwilNode block name, and the
            dbid or namespace on that node).
        replica: `NODE_BLOCK:TARGET` of the restored or followed copy.
        tables: Only these tables (default: every table on either side).
        gateway: ArweaveGateway block the log is read from to find the source's last
            published record; None compares the nodes as they stand, without a point.
        ledger: LedgerDatabase block of the replica's ledger (as restore and follow use).
        ledger_path: The replica's ledger path or URL (overrides `ledger`).
        catch_up_seconds: How long to wait for the replica to reach the point.
        settle_seconds: Pause before checking the point held still (longer than the
            upload interval, so the source's last writes are published).
        cap: Keys kept per kind of difference and table (totals are exact).

    Returns:
        The report: status (verified, drift, unverified), drift_keys, point, per table
        the missing, extra and different keys, and the event emitted.
    """
    logger = get_run_logger()
    (source_block, source_target), (replica_block, replica_target) = (
        _split(source, "source"), _split(replica, "replica"))
    blocks = (cast(KwilNode, KwilNode.load(source_block)),
              cast(KwilNode, KwilNode.load(replica_block)))
    nodes = [QueryNode(b.rpc_url, t, version=b.version) for b, t in
             zip(blocks, (source_target, replica_target), strict=True)]
    try:
        settle, store = (_settle(database, blocks, replica_target, gateway, ledger, ledger_path,
                                 catch_up_seconds, settle_seconds) if gateway else (None, None))
    except Exception as exc:  # the replica, the gateway or the ledger cannot be reached
        report = VerifyReport("unverified", notes=[
            f"cannot read the log position: {type(exc).__name__}: {exc}"])
    else:
        try:
            report = verify_replica(nodes[0], nodes[1], tables=tables or (), settle=settle,
                                    cap=cap)
        finally:
            if store is not None:
                store.close()
        if settle is None:
            report.notes.append("no gateway: compared the nodes as they stand, at no log "
                                "point")
    key = pair_key("verify", database, replica_target)
    create_table_artifact(artifact_rows(report), key=key,
                          description=f"Verify of {database}: {source} vs {replica}: "
                                      f"{report.status}")
    event = f"kwil-sync.replica.{report.status}"
    emit_event(event, resource={"prefect.resource.id": f"kwil-sync.replica.{database}."
                                                       f"{replica_target}",
                                "prefect.resource.name": f"{database} on {replica}",
                                "kwil-sync.database": database, "kwil-sync.source": source,
                                "kwil-sync.replica": replica},
               payload={k: v for k, v in report.to_dict().items() if k != "tables"})
    logger.info("verify %s (%s vs %s): %s, %d key(s) differ, %d queries; %s", database, source,
                replica, report.status, report.drift_keys, report.queries,
                "; ".join(report.notes) or "no notes")
    return {**report.to_dict(), "event": event, "artifact_key": key}


def artifact_rows(report: VerifyReport) -> list[dict[str, Any]]:
    """One row per table: status, row counts, totals and the first keys of each kind."""
    rows = []
    for table in report.tables:
        shown = {kind: _keys(getattr(table, kind), table.totals[kind])
                 for kind in ("missing", "extra", "different")}
        rows.append({"table": table.table, "status": table.status,
                     "rows_source": table.rows_source, "rows_replica": table.rows_replica,
                     **{f"{k}_total": v for k, v in table.totals.items()}, **shown,
                     "note": table.note})
    if not rows or report.status == "unverified":
        rows.append({"table": "(all)", "status": report.status, "note": "; ".join(report.notes)})
    return rows


def _keys(keys: list[list[Any]], total: int) -> str:
    text = ", ".join(json.dumps(k[0] if len(k) == 1 else k) for k in keys[:_KEYS_SHOWN])
    more = total - min(len(keys), _KEYS_SHOWN)
    return text + (f" (+{more} more)" if more > 0 else "")


def run_verify_command(args: argparse.Namespace) -> int:
    """Run the verify flow here; prints the verdict; exit 0 equal, 1 drift, 2 unverified."""
    try:
        _split(args.source, "--source")
        _split(args.replica, "--replica")
    except ValueError as exc:
        print(f"kwil-sync verify: {exc}")
        return 2
    result = verify(args.database, args.source, args.replica, tables=args.tables or None,
                    gateway=None if args.no_log_point else args.gateway, ledger=args.ledger_block,
                    ledger_path=args.ledger, catch_up_seconds=args.catch_up_seconds,
                    settle_seconds=args.settle_seconds, cap=args.cap)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"{result['status']}: {result['drift_keys']} key(s) differ at point "
              f"{result['point']}; {result['queries']} queries")
        for table in result["tables"]:
            print(f"  {table['table']}: {table['status']} {table['totals']} {table['note']}")
        for note in result["notes"]:
            print(f"  note: {note}")
    return EXIT_CODES.get(str(result["status"]), 2)
