"""Move a ledger between stores: export to JSON lines, import, or migrate in one go.

The usual move is from a worker's SQLite file into the PostgreSQL ledger every worker
shares, before switching runs over. Everything moves, pending intents included (the
next run resolves them as it would have on the old ledger), and nothing is merged: the
import refuses a target the destination already holds, and checks per table and target
that it wrote as many rows as the export counted, or writes nothing.

The file: a header line `{"kwil_sync_ledger": 1, "columns": {...}}`, one line per row
`{"t": table, "r": [values]}`, and a trailer `{"counts": {table: rows}}` that the
import checks, so a truncated file is refused. Reading and writing go in pages, so
memory stays flat however long the ledger is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.ledger import Ledger

__all__ = ["COLUMNS", "LedgerTransferError", "export_ledger", "export_lines", "import_ledger",
           "migrate_ledger"]

FORMAT = 1
PAGE = 2000

# Column order of each table, and its primary key (the export's paging order).
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "actions": (("target", "action_id", "state", "tx_id", "provider", "sequence", "tx_hash",
                 "nonce", "signed_tx", "prior_hashes", "code", "log", "height", "intended_at",
                 "completed_at"), ("target", "action_id")),
    "sequenced": (("target", "provider", "sequence", "action_id"),
                  ("target", "provider", "sequence")),
    "quarantine": (("target", "item_id", "reason", "action_id", "provider", "detail",
                    "first_seen", "last_seen", "times"), ("target", "item_id", "reason")),
    "gaps": (("target", "provider", "first_seen"), ("target", "provider")),
}


class LedgerTransferError(KwilSyncError, ValueError):
    """An export file is malformed or truncated, or an import would merge or lost rows."""


def _pages(ledger: Ledger, table: str) -> Iterator[tuple[Any, ...]]:
    columns, key = COLUMNS[table]
    select = f"SELECT {', '.join(columns)} FROM {table}"
    order = f" ORDER BY {', '.join(key)} LIMIT {PAGE}"
    positions = [columns.index(k) for k in key]
    after: tuple[Any, ...] | None = None
    while True:
        if after is None:
            rows = ledger.store.rows(select + order)
        else:  # keyset paging: row values compare in SQLite and PostgreSQL alike
            marks = ", ".join("?" * len(key))
            rows = ledger.store.rows(f"{select} WHERE ({', '.join(key)}) > ({marks}){order}",
                                     after)
        yield from rows
        if len(rows) < PAGE:
            return
        after = tuple(rows[-1][i] for i in positions)


def export_lines(ledger: Ledger) -> Iterator[str]:
    """The export of `ledger`, line by line (header, rows, counts), read page by page."""
    yield json.dumps({"kwil_sync_ledger": FORMAT,
                      "columns": {t: list(c) for t, (c, _) in COLUMNS.items()}})
    counts: dict[str, int] = {}
    for table in COLUMNS:
        counts[table] = 0
        for row in _pages(ledger, table):
            yield json.dumps({"t": table, "r": list(row)})
            counts[table] += 1
    yield json.dumps({"counts": counts})


def export_ledger(ledger: Ledger, out: IO[str]) -> dict[str, int]:
    """Write every row of `ledger` to `out`; returns the rows per table."""
    last = ""
    for line in export_lines(ledger):
        out.write(line + "\n")
        last = line
    return dict(json.loads(last)["counts"])


def import_ledger(ledger: Ledger, lines: Iterable[str]) -> dict[str, int]:
    """Write an export into `ledger` in one transaction; returns the rows per table.

    Raises:
        LedgerTransferError: The file is not an export, is truncated, names columns this
            version does not know, or holds targets the destination already has rows
            for; or the rows written do not match the counts (nothing is written).
    """
    source = iter(lines)
    header = _line(next(source, ""), "header")
    if header.get("kwil_sync_ledger") != FORMAT:
        raise LedgerTransferError("not a kwil-sync ledger export (no format 1 header)")
    if header.get("columns") != {t: list(c) for t, (c, _) in COLUMNS.items()}:
        raise LedgerTransferError("the export's columns differ from this version's ledger; "
                                  "import it with the kwil-sync version that wrote it")
    written: Counter[tuple[str, str]] = Counter()
    trailer: dict[str, Any] | None = None
    with ledger.store.write() as db:
        present = _targets(ledger)
        batch: dict[str, list[list[Any]]] = {t: [] for t in COLUMNS}
        for text in source:
            line = _line(text, "row")
            if "counts" in line:
                trailer = line
                break
            table, row = line.get("t"), line.get("r")
            if table not in COLUMNS or not isinstance(row, list) \
                    or len(row) != len(COLUMNS[table][0]):
                raise LedgerTransferError(f"malformed row line: {text[:200]!r}")
            if row[0] in present:
                raise LedgerTransferError(
                    f"the destination already holds rows for target {row[0]!r}; import into "
                    "a ledger without them (nothing is merged)")
            batch[table].append(row)
            written[(table, row[0])] += 1
            if len(batch[table]) >= PAGE:
                _flush(ledger, db, table, batch[table])
        for table, rows in batch.items():
            _flush(ledger, db, table, rows)
        if trailer is None:
            raise LedgerTransferError("the export is truncated (no counts line at its end)")
        totals = {t: sum(n for (table, _), n in written.items() if table == t) for t in COLUMNS}
        if totals != trailer["counts"]:
            raise LedgerTransferError(f"the export counted {trailer['counts']} rows but holds "
                                      f"{totals}; it is damaged")
        for (table, target), expected in written.items():
            [(found,)] = db.execute(f"SELECT COUNT(*) FROM {table} WHERE target=?",
                                    (target,)).fetchall()
            if found != expected:
                raise LedgerTransferError(f"{table} of {target}: wrote {expected} rows, the "
                                          f"destination holds {found}; nothing was imported")
    return totals


def migrate_ledger(source: Ledger, destination: Ledger) -> dict[str, int]:
    """Copy `source` into `destination` (see `import_ledger`); returns rows per table."""
    return import_ledger(destination, export_lines(source))


def _flush(ledger: Ledger, db: Any, table: str, rows: list[list[Any]]) -> None:
    if rows:
        columns = COLUMNS[table][0]
        ledger.store.execute_many(db, f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                      f"({', '.join('?' * len(columns))})", rows)
        rows.clear()


def _targets(ledger: Ledger) -> set[str]:
    return {str(t) for table in COLUMNS
            for (t,) in ledger.store.rows(f"SELECT DISTINCT target FROM {table}")}


def _line(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise LedgerTransferError(f"malformed {what} line: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise LedgerTransferError(f"malformed {what} line: {text[:200]!r}")
    return value
