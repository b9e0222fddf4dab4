"""Prove a replica equals its source at one log position, or name the rows that differ.

`verify_replica` reads both nodes through `user.query` only. With a `Settle`, it first
waits for the replica to reach the source's last published record, and after the
comparison checks that neither moved; if one did, the tables that differed are
compared again at the new point (see `kwil_sync.replica.point`). Verdicts:

- "verified": every table compared equal at a point that held still;
- "drift": some table differs (keys named, or its schema, or it exists on one side);
- "unverified": something kept it from a verdict (a node refused or did not answer,
  the replica never reached the point, or the source kept publishing): never "equal".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kwil_sync.replica.node import QueryNode, TableSchema
from kwil_sync.replica.point import LogPoint, wait_until_covered
from kwil_sync.replica.tables import DRIFT, TableReport, compare_table

__all__ = ["Settle", "VerifyReport", "verify_replica"]


@dataclass(frozen=True)
class Settle:
    """How to hold a comparison to one log position.

    Attributes:
        published: Reads the source's last published point.
        replica_position: Reads the replica's applied position (its ledger).
        catch_up_s: How long to wait for the replica to reach the point.
        settle_s: Pause before re-reading both, so a write the source just made has
            time to be published (make it longer than the upload interval).
        max_rounds: Comparisons at most, before giving up as "unverified".
    """

    published: Callable[[], LogPoint]
    replica_position: Callable[[], LogPoint]
    catch_up_s: float = 60.0
    settle_s: float = 2.0
    max_rounds: int = 3


@dataclass
class VerifyReport:
    """The verdict, per table and overall, with the point it holds at."""

    status: str
    tables: list[TableReport] = field(default_factory=list)
    point: dict[str, int] | None = None
    replica_position: dict[str, int] | None = None
    rounds: int = 0
    queries: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def drift_keys(self) -> int:
        """Keys that differ in tables that could be compared by key."""
        return sum(t.drift_keys for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "drift_keys": self.drift_keys, "point": self.point,
                "replica_position": self.replica_position, "rounds": self.rounds,
                "queries": self.queries, "seconds": round(self.seconds, 3),
                "notes": self.notes, "tables": [t.to_dict() for t in self.tables]}


def verify_replica(source: QueryNode, replica: QueryNode, *, tables: Sequence[str] = (),
                   settle: Settle | None = None, cap: int = 100,
                   **options: int) -> VerifyReport:
    """Compare the database's tables (all, or `tables`) on `source` and `replica`.

    `options` go to `RangeComparator` (fanout, leaf_rows, first_range_rows). Never
    raises for what the nodes answer: refusals and outages become "unverified".
    """
    began = time.monotonic()
    report = VerifyReport("unverified")
    point = position = None
    if settle is not None:
        point, position = _reach_point(settle, report)
        if point is None:
            return _finish(report, began, source, replica)
    try:
        schemas = (source.tables(), replica.tables())
    except Exception as exc:  # refused, private mode, down: a clear report, no verdict
        report.notes.append(f"cannot read the table list: {type(exc).__name__}: {exc}")
        return _finish(report, began, source, replica)
    names = list(tables) or sorted(set(schemas[0]) | set(schemas[1]))
    results = {n: _compare(source, replica, n, schemas, cap, options) for n in names}
    report.rounds = 1
    while settle is not None and point is not None and position is not None and \
            any(r.status in DRIFT for r in results.values()):
        time.sleep(settle.settle_s)
        moved_point = settle.published()
        moved_position = settle.replica_position()
        if moved_point == point and moved_position == position:
            break  # nothing moved while we compared: the differences are drift
        if report.rounds >= settle.max_rounds:
            report.notes.append(f"the source kept publishing through {report.rounds} "
                                "comparisons: differences may be writes after the point")
            report.tables = list(results.values())
            report.point = moved_point.to_dict()
            return _finish(report, began, source, replica, unsettled=True)
        point, position = _reach_point(settle, report)
        if point is None:
            report.tables = list(results.values())
            return _finish(report, began, source, replica, unsettled=True)
        for name in [n for n, r in results.items() if r.status in DRIFT]:
            results[name] = _compare(source, replica, name, schemas, cap, options)
        report.rounds += 1
    report.tables = list(results.values())
    return _finish(report, began, source, replica)


def _compare(source: QueryNode, replica: QueryNode, name: str,
             schemas: tuple[dict[str, TableSchema], dict[str, TableSchema]], cap: int,
             options: dict[str, int]) -> TableReport:
    return compare_table(source, replica, name, schemas, cap=cap, **options)


def _reach_point(settle: Settle, report: VerifyReport) -> tuple[LogPoint | None,
                                                                LogPoint | None]:
    """Read the source's point and wait for the replica; None when it stays behind."""
    try:
        point = settle.published()
        position = wait_until_covered(settle.replica_position, point,
                                      timeout_s=settle.catch_up_s)
    except Exception as exc:  # the log or the ledger cannot be read: no consistent point
        report.notes.append(f"cannot read the log position: {type(exc).__name__}: {exc}")
        return None, None
    report.point, report.replica_position = point.to_dict(), position.to_dict()
    if not position.covers(point):
        report.notes.append(
            f"the replica is behind the source's last published record (replica at "
            f"{position.to_dict()}, source at {point.to_dict()}) after waiting "
            f"{settle.catch_up_s:g} s: run follow on the replica, then verify again")
        return None, None
    return point, position


def _finish(report: VerifyReport, began: float, source: QueryNode, replica: QueryNode, *,
            unsettled: bool = False) -> VerifyReport:
    report.queries = source.queries + replica.queries
    report.seconds = time.monotonic() - began
    statuses = {t.status for t in report.tables}
    if not report.tables and not report.notes:
        report.notes.append("no tables found on either node: check the dbid or namespace")
    if unsettled or not report.tables:
        report.status = "unverified"
    elif statuses & DRIFT:
        report.status = "drift"
    else:
        report.status = "unverified" if "error" in statuses else "verified"
    return report
