"""The restore flow: replay a database's whole log (or up to a point) onto a provider."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from kwil_sync.defaults import GATEWAY_BLOCK, NODE_BLOCK, RESTORE_FLOW
from kwil_sync.flows.common import parse_until, publish_report, replay
from kwil_sync.flows.follow import save_cursor, schedule_follow
from kwil_sync.flows.names import pair_key, pair_run_name
from kwil_sync.replay import ReplayReport

__all__ = ["restore"]


@flow(name=RESTORE_FLOW, flow_run_name=pair_run_name("restore"),
      log_prints=False)
def restore(original_dbid: str, target: str, node: str = NODE_BLOCK,
            gateway: str = GATEWAY_BLOCK, trusted_providers: list[str] | None = None,
            until: str | None = None, dry_run: bool = False, batch_size: int = 1000,
            skip_own: bool = False, db_sync_history: bool = False,
            allow_unverified_legacy: bool = False,
            ledger_path: str | None = None, ledger: str | None = None,
            new_ledger: bool = False, lock_timeout_seconds: float = 600,
            follow_every_seconds: float | None = None) -> dict[str, Any]:
    """Replay the log of `original_dbid` onto `target`, exactly once and in order.

    Only records signed by the original provider (the key whose dbid for the record's
    database name is `original_dbid`) or by `trusted_providers` are applied; the rest
    are quarantined with their reason. Rerunning is safe: what the ledger holds is
    skipped and transactions a killed run left pending are resolved first.

    Args:
        original_dbid: The database's dbid on its first provider (the log's key).
        target: The dbid (kwild v0.9) or namespace (v0.10) to apply to on the node.
        node: Name of the KwilNode block of the target provider.
        gateway: Name of the ArweaveGateway block the log is read from.
        trusted_providers: More provider addresses whose records are applied.
        until: Stop at this time (ms since the epoch or ISO 8601), after the records
            committed at or below a kwild block height (`height:N`), or at an action id.
        dry_run: Plan only: count records, bytes, signers and missing actions.
        batch_size: Most records per chunk (read, fetched and applied as one task run
            each); a chunk holds at most this many documents in memory.
        skip_own: Skip records the target's own key wrote (they are already there).
        db_sync_history: Also follow the 2023 `db_sync_history` convention (v0.9).
        allow_unverified_legacy: Last resort: apply 2023 records whose data item
            signature neither the index (Irys and arlocal report no anchors) nor their own
            bytes (docs/INDEXES.md) can prove; they are then trusted on the index's word
            and counted in the report (`unverified_legacy`). Off by default.
        ledger_path: The ledger's path or URL (overrides `ledger`); see `ledger`.
        ledger: Name of a LedgerDatabase block (a database shared by every worker).
            Unset: PREFECT_INTEGRATIONS_KWIL_SYNC_LEDGER_URL, else
            `<state_dir>/ledger.sqlite` on the worker's disk.
        new_ledger: Apply even though the ledger holds nothing for this target while
            the Prefect server shows it was restored or followed before (the run
            refuses otherwise: it would apply the log a second time).
        lock_timeout_seconds: How long to wait for another run of the same target (on
            any worker sharing the ledger) to end before failing.
        follow_every_seconds: Then keep the target level: set the follow cursor where
            this restore ended and schedule the follow deployment for this database.

    Returns:
        The run's report: counts applied, skipped, quarantined (by reason) and more.
    """
    logger = get_run_logger()
    key = pair_key("restore", original_dbid, target)
    report = replay(original_dbid, target, key=key,
                    title=f"Restore of {original_dbid} onto {target}", node=node,
                    gateway=gateway, trusted_providers=trusted_providers, batch_size=batch_size,
                    db_sync_history=db_sync_history, ledger_path=ledger_path, ledger=ledger,
                    new_ledger=new_ledger, lock_timeout_seconds=lock_timeout_seconds,
                    allow_unverified_legacy=allow_unverified_legacy, skip_own=skip_own,
                    until=parse_until(until), dry_run=dry_run)
    if follow_every_seconds and not dry_run:
        _hand_over_to_follow(original_dbid, target, report, every=follow_every_seconds,
                             parameters={"node": node, "gateway": gateway,
                                         "trusted_providers": trusted_providers or [],
                                         "db_sync_history": db_sync_history,
                                         "ledger": ledger, "ledger_path": ledger_path})
    logger.info("%s %s onto %s: %d record(s) read, %d applied, %d already applied, "
                "%d quarantined", "planned" if dry_run else "restored", original_dbid, target,
                report.records, report.applied, report.already_applied + report.known,
                sum(report.quarantined.values()))
    return publish_report(report, key=key,
                          title=f"{'Plan' if dry_run else 'Restore'} of {original_dbid} "
                                f"onto {target}")


def _hand_over_to_follow(original_dbid: str, target: str, report: ReplayReport, *,
                         every: float, parameters: dict[str, Any]) -> None:
    if report.resume is not None:
        save_cursor(original_dbid, target, str(parameters["gateway"]), report.resume)
    if schedule_follow(original_dbid, target, parameters, every_seconds=every):
        get_run_logger().info("following %s onto %s every %s s", original_dbid, target, every)
