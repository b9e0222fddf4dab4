"""Prefect events a run emits, so automations can page someone: what was applied (per
batch), each quarantined record with its reason, sequence gaps held or timed out, each
follow poll's lag, and records uploaded.

Every replay event's resource is the (database, target) pair,
`kwil-sync.pair.<dbid>.<target>` (uploads: the shim drained); emitted inside a flow or
task run, Prefect relates it to that run. Events (payload in brackets):

- `kwil-sync.records.applied`: after each apply batch (applied, failed, total_applied);
- `kwil-sync.record.quarantined`: each refused record, up to 100 a run, then one
  summary (item_id, reason, detail);
- `kwil-sync.gap.timed-out`: a provider's gap outlived the timeout, its held records
  quarantined (provider, expected, held_from, held);
- `kwil-sync.gap.held`: a gap still holds records when the run ends (the same);
- `kwil-sync.follow.polled`: each follow poll (lag_seconds, records_behind, applied);
- `kwil-sync.index.gaps`: a run found items some index lacks or an index down (gaps,
  gap_count, by_source, down, proven_from_bytes, unverified_legacy;
  `flows/index_health.py`);
- `kwil-sync.records.uploaded`: each upload batch, on resource `kwil-sync.shim.<address>`
  (uploaded, already_there, confirmed, voided, waiting, unconfirmed).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from prefect.events import emit_event

from kwil_sync.flows.names import short
from kwil_sync.replay import ReplayReport

__all__ = ["EVENT_PREFIX", "QUARANTINE_EVENTS_PER_RUN", "ReplayEvents", "emit_follow_polled",
           "emit_uploaded", "pair_resource"]

EVENT_PREFIX = "kwil-sync"
QUARANTINE_EVENTS_PER_RUN = 100  # a flood of forgeries must not flood the event stream


def pair_resource(original_dbid: str, target: str) -> dict[str, str]:
    """The event resource of one (database, target) pair."""
    return {"prefect.resource.id": f"{EVENT_PREFIX}.pair.{original_dbid}.{target}",
            "prefect.resource.name": f"{short(original_dbid)} -> {short(target)}",
            "kwil-sync.database": original_dbid, "kwil-sync.target": target}


class ReplayEvents:
    """Follows a run's report (after each chunk, then at the end) and emits what is new."""

    def __init__(self, original_dbid: str, target: str) -> None:
        self.resource = pair_resource(original_dbid, target)
        self.applied = self.failed = self.refusals = self.gaps = 0
        self.emitted: list[str] = []  # event names, for tests and the demo's count

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        emit_event(event=f"{EVENT_PREFIX}.{event}", resource=self.resource, payload=payload)
        self.emitted.append(event)

    def __call__(self, report: ReplayReport) -> None:
        applied, failed = report.applied - self.applied, report.failed - self.failed
        if applied or failed:
            self._emit("records.applied", {"applied": applied, "failed": failed,
                                           "total_applied": report.applied})
            self.applied, self.failed = report.applied, report.failed
        for refused in report.refusals[self.refusals:]:
            if self.refusals < QUARANTINE_EVENTS_PER_RUN:
                self._emit("record.quarantined", {
                    "item_id": refused.item_id, "reason": refused.reason,
                    "detail": refused.detail[:500], "action_id": refused.action_id,
                    "provider": refused.provider})
            self.refusals += 1
        for gap in report.gaps[self.gaps:]:
            self._emit("gap.timed-out", asdict(gap))
        self.gaps = len(report.gaps)

    def finish(self, report: ReplayReport) -> None:
        """Emit what the last chunk left, the summary of a quarantine flood, open gaps."""
        self(report)
        if self.refusals > QUARANTINE_EVENTS_PER_RUN:
            self._emit("record.quarantined", {
                "reason": "many", "count": self.refusals,
                "detail": f"{self.refusals} records quarantined in this run; the first "
                          f"{QUARANTINE_EVENTS_PER_RUN} have events of their own"})
        for gap in report.open_gaps:
            self._emit("gap.held", asdict(gap))


def emit_follow_polled(original_dbid: str, target: str, report: ReplayReport) -> None:
    """One event per follow poll: how far the target is behind the log afterwards.

    A poll reads to the end of the log, so what it did not apply is what a sequence gap
    holds: `records_behind` counts it and `lag_seconds` is the age of the oldest.
    """
    oldest_ms = report.resume.timestamp_ms if report.held and report.resume else None
    emit_event(event=f"{EVENT_PREFIX}.follow.polled",
               resource=pair_resource(original_dbid, target),
               payload={"applied": report.applied, "records_read": report.records,
                        "records_behind": report.held,
                        "lag_seconds": (round(max(0.0, time.time() - oldest_ms / 1000), 1)
                                        if oldest_ms is not None else 0.0)})


def emit_uploaded(shim_address: str, batch: int, counts: dict[str, int]) -> None:
    """One event per upload batch, on the shim it drained: uploaded, already there, and
    the tied calls confirmed, voided, waiting and unconfirmed."""
    emit_event(event=f"{EVENT_PREFIX}.records.uploaded",
               resource={"prefect.resource.id": f"{EVENT_PREFIX}.shim.{shim_address}",
                         "prefect.resource.name": f"shim {shim_address}"},
               payload={"batch": batch, **counts})


def read_events(prefix: str = f"{EVENT_PREFIX}.", *, limit: int = 50,
                resource_prefix: str | None = None) -> list[dict[str, Any]]:
    """Events the Prefect server holds whose name starts with `prefix`, newest first
    (one page of at most `limit`, the server's cap being 50); for `kwil-sync status`,
    the demo and tests."""
    import httpx
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    if not api.url:
        raise RuntimeError("PREFECT_API_URL is not set: events live on the Prefect server")
    headers = {"Authorization": f"Bearer {api.key.get_secret_value()}"} if api.key else {}
    filter_: dict[str, Any] = {"event": {"prefix": [prefix]}, "order": "DESC"}
    if resource_prefix:
        filter_["resource"] = {"id_prefix": [resource_prefix]}
    answer = httpx.post(f"{api.url}/events/filter", json={"filter": filter_, "limit": limit},
                        headers=headers, timeout=15)
    answer.raise_for_status()
    return list(answer.json().get("events", []))
