"""One table's verdict: schemas first, then keys by ranges, or one digest without a key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kwil_sync.replica.compare import RangeComparator
from kwil_sync.replica.digest import KeyRange, UnsupportedTable, checked, digest_sql
from kwil_sync.replica.node import QueryNode, TableSchema

__all__ = ["DRIFT", "TableReport", "compare_table", "schema_problems"]

# Statuses that mean the copies differ (the others: "equal", and "error": not verified).
DRIFT = frozenset({"differs", "schema_differs", "only_on_source", "only_on_replica"})


@dataclass
class TableReport:
    """What verification found in one table (keys capped; totals exact, -1 when the
    table has no key to name rows by)."""

    table: str
    status: str
    rows_source: int | None = None
    rows_replica: int | None = None
    missing: list[list[Any]] = field(default_factory=list)
    extra: list[list[Any]] = field(default_factory=list)
    different: list[list[Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: {"missing": 0, "extra": 0,
                                                             "different": 0})
    note: str = ""

    @property
    def drift_keys(self) -> int:
        return sum(max(0, n) for n in self.totals.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def schema_problems(source: TableSchema, replica: TableSchema) -> list[str]:
    """How two copies of a table's schema differ (empty when they match)."""
    problems = []
    a = {c.name: c.type for c in source.columns}
    b = {c.name: c.type for c in replica.columns}
    if only := sorted(set(a) - set(b)):
        problems.append(f"columns only on the source: {', '.join(only)}")
    if only := sorted(set(b) - set(a)):
        problems.append(f"columns only on the replica: {', '.join(only)}")
    problems += [f"column {name} is {a[name]} on the source, {b[name]} on the replica"
                 for name in sorted(set(a) & set(b)) if a[name] != b[name]]
    if not problems and list(a) != list(b):
        problems.append("the columns are in a different order")
    if source.key != replica.key:
        problems.append(f"primary key ({', '.join(source.key) or 'none'}) on the source, "
                        f"({', '.join(replica.key) or 'none'}) on the replica")
    return problems


def compare_table(source: QueryNode, replica: QueryNode, name: str,
                  schemas: tuple[dict[str, TableSchema], dict[str, TableSchema]], *,
                  cap: int = 100, **options: int) -> TableReport:
    """Compare one table; never raises: node errors become an "error" report."""
    on_source, on_replica = (s.get(name) for s in schemas)
    if on_source is None or on_replica is None:
        status = "only_on_replica" if on_source is None else "only_on_source"
        where = "replica" if on_source is None else "source"
        if on_source is None and on_replica is None:
            return TableReport(name, "error", note=f"no table {name} on either node")
        return TableReport(name, status, note=f"table {name} exists on the {where} only")
    if problems := schema_problems(on_source, on_replica):
        return TableReport(name, "schema_differs", note="; ".join(problems))
    try:
        checked(on_source)
        comparator = RangeComparator(source, replica, on_source, cap=cap, **options)
    except UnsupportedTable as exc:
        return _whole_table(source, replica, on_source, str(exc))
    try:
        diff = comparator.run()
    except Exception as exc:  # a node's refusal or a malformed answer: report, never crash
        return TableReport(name, "error", note=f"{type(exc).__name__}: {exc}")
    return TableReport(name, "differs" if diff.count else "equal", *comparator.rows,
                       diff.missing, diff.extra, diff.different, dict(diff.totals))


def _whole_table(source: QueryNode, replica: QueryNode, schema: TableSchema,
                 why: str) -> TableReport:
    """Without usable key ranges, one digest of all rows per node says equal or not."""
    note = f"{why}: compared as one digest of all rows; differing rows cannot be named"
    try:
        keyless = checked(TableSchema(schema.name, schema.columns, ()))
        found = [n.select(digest_sql(n.table_ref(schema.name), keyless, KeyRange()))[0]
                 for n in (source, replica)]
    except Exception as exc:  # reported, never raised
        return TableReport(schema.name, "error", note=f"{why}; and the digest failed: "
                                                      f"{type(exc).__name__}: {exc}")
    rows = (int(found[0].get("n") or 0), int(found[1].get("n") or 0))
    same = (rows[0], found[0].get("d")) == (rows[1], found[1].get("d"))
    totals = {"missing": 0, "extra": 0, "different": 0} if same else \
        {"missing": -1, "extra": -1, "different": -1}
    return TableReport(schema.name, "equal" if same else "differs", *rows, totals=totals,
                       note=note)
