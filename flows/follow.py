"""The follow flow: one poll of the log onto a target; schedule it to keep the target level."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.variables import Variable

from kwil_sync.blocks.settings import KwilSyncSettings
from kwil_sync.defaults import (
    FOLLOW_CURSOR_PREFIX,
    FOLLOW_DEPLOYMENT,
    FOLLOW_FLOW,
    GATEWAY_BLOCK,
    NODE_BLOCK,
)
from kwil_sync.flows.common import publish_report, replay, slug
from kwil_sync.flows.events import emit_follow_polled
from kwil_sync.flows.names import pair_key, pair_run_name
from kwil_sync.ledger import LedgerBusy
from kwil_sync.sources import Position, follow_start

__all__ = ["follow", "follow_lock_name", "load_cursor", "save_cursor", "schedule_follow"]


def follow_lock_name(original_dbid: str, target: str) -> str:
    """The global concurrency limit (and cursor variable) name of one (database, target)."""
    return slug(FOLLOW_CURSOR_PREFIX, original_dbid, target)


def save_cursor(original_dbid: str, target: str, gateway: str, position: Position) -> None:
    """Store where following stands (with what `kwil-sync status` needs to measure lag)."""
    Variable.set(follow_lock_name(original_dbid, target),
                 {"original_dbid": original_dbid, "target": target, "gateway": gateway,
                  **asdict(position)}, overwrite=True)


def load_cursor(original_dbid: str, target: str) -> Position | None:
    """Where the last poll (or the restore that handed over) stopped, if anywhere."""
    value = Variable.get(follow_lock_name(original_dbid, target), default=None)
    if not isinstance(value, dict):
        return None
    return Position(value.get("cursor"), value.get("timestamp_ms"), value.get("height"))


def _ensure_limit(name: str) -> None:
    # A limit that does not exist is skipped with a warning (no locking at all), so
    # create it before the first use. The upsert is not atomic: when first polls start
    # together, one creates the limit and the others' creates are refused (409).
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)


@flow(name=FOLLOW_FLOW, flow_run_name=pair_run_name("follow"),
      log_prints=False)
def follow(original_dbid: str, target: str, node: str = NODE_BLOCK,
           gateway: str = GATEWAY_BLOCK, trusted_providers: list[str] | None = None,
           lookback_seconds: int | None = None, batch_size: int = 1000,
           db_sync_history: bool = False,
           allow_unverified_legacy: bool = False, ledger_path: str | None = None,
           ledger: str | None = None, new_ledger: bool = False,
           lock_timeout_seconds: float = 120) -> dict[str, Any]:
    """Apply what is new in the log since the last poll, then move the cursor.

    Each poll re-reads a look-back window behind its cursor, so records that reached
    the index late are not missed; the ledger skips what was applied. The target's own
    provider's records are skipped (they are already there). The cursor is a Prefect
    Variable named after the database and target, moved only after the apply; one run
    per (database, target) holds the global concurrency limit of the same name.

    Args:
        original_dbid: The database's dbid on its first provider.
        target: The dbid or namespace to keep level.
        node: Name of the KwilNode block of the target provider.
        gateway: Name of the ArweaveGateway block the log is read from.
        trusted_providers: More provider addresses whose records are applied.
        lookback_seconds: How far behind the cursor to re-read (default from settings).
        batch_size: Most records per chunk (read, fetched and applied as one task run
            each).
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
            its follow cursor exists (the run refuses otherwise: it would apply the
            log a second time).
        lock_timeout_seconds: How long to wait for a running poll (or restore) of the
            same target, here or on another worker, before skipping this poll.

    Returns:
        The poll's report, or `{"skipped": reason}` when another poll held the lock.
    """
    logger = get_run_logger()
    name = follow_lock_name(original_dbid, target)
    lookback = lookback_seconds or KwilSyncSettings().follow_lookback_seconds
    _ensure_limit(name)
    try:
        with concurrency(name, occupy=1, strict=True, timeout_seconds=lock_timeout_seconds):
            start = follow_start(load_cursor(original_dbid, target), lookback_ms=lookback * 1000)
            report = replay(original_dbid, target, key=pair_key("follow", original_dbid, target),
                            title=f"Follow of {original_dbid} onto {target}", node=node,
                            gateway=gateway, trusted_providers=trusted_providers,
                            batch_size=batch_size, db_sync_history=db_sync_history,
                            ledger_path=ledger_path, ledger=ledger, new_ledger=new_ledger,
                            lock_timeout_seconds=lock_timeout_seconds,
                            allow_unverified_legacy=allow_unverified_legacy, skip_own=True,
                            start=start, follow=True)
            if report.resume is not None:
                save_cursor(original_dbid, target, gateway, report.resume)
            emit_follow_polled(original_dbid, target, report)
    except TimeoutError:
        logger.warning("another follow run of %s onto %s holds %s; skipping this poll",
                       original_dbid, target, name)
        return {"skipped": f"another follow run holds {name}"}
    except LedgerBusy as busy:
        logger.warning("skipping this poll: %s", busy)
        return {"skipped": str(busy)}
    logger.info("follow %s onto %s: %d read, %d applied, %d quarantined, %d held", original_dbid,
                target, report.records, report.applied, sum(report.quarantined.values()),
                report.held)
    return publish_report(report, key=pair_key("follow", original_dbid, target),
                          title=f"Follow of {original_dbid} onto {target}")


def schedule_follow(original_dbid: str, target: str, parameters: dict[str, Any], *,
                    every_seconds: float,
                    deployment: str = FOLLOW_DEPLOYMENT) -> bool:
    """Add an interval schedule for this (database, target) to the follow deployment.

    The schedule carries the run's parameters, so one follow deployment keeps many
    databases level. Returns False when the schedule exists already.

    Raises:
        ObjectNotFound: If the follow deployment is not deployed or served.
    """
    schedule_slug = follow_lock_name(original_dbid, target)
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        if any(s.slug == schedule_slug for s in client.read_deployment_schedules(found.id)):
            return False
        client.create_deployment_schedules(found.id, [DeploymentScheduleCreate(
            schedule=IntervalSchedule(interval=timedelta(seconds=every_seconds)), active=True,
            parameters={**parameters, "original_dbid": original_dbid, "target": target},
            slug=schedule_slug)])
    return True
