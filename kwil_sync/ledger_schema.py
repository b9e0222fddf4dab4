"""The ledger's tables, one schema for SQLite and PostgreSQL, and the base the ledger's
parts share (`kwil_sync.ledger.Ledger` is built of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kwil_sync.ledger_store import LedgerStore

__all__ = ["INDEXES", "TABLES", "LedgerTables", "db_reader"]

# One schema for both stores: SQLite reads BIGINT and DOUBLE PRECISION as its INTEGER
# and REAL affinities, so files written before keep working unchanged.
TABLES: dict[str, str] = {
    "actions": """CREATE TABLE IF NOT EXISTS actions (
    target TEXT NOT NULL, action_id TEXT NOT NULL, state TEXT NOT NULL,
    tx_id TEXT, provider TEXT, sequence BIGINT,
    tx_hash TEXT, nonce BIGINT, signed_tx TEXT, prior_hashes TEXT NOT NULL DEFAULT '[]',
    code BIGINT, log TEXT, height BIGINT,
    intended_at DOUBLE PRECISION, completed_at DOUBLE PRECISION,
    PRIMARY KEY (target, action_id))""",
    "sequenced": """CREATE TABLE IF NOT EXISTS sequenced (
    target TEXT NOT NULL, provider TEXT NOT NULL, sequence BIGINT NOT NULL,
    action_id TEXT NOT NULL, PRIMARY KEY (target, provider, sequence))""",
    "quarantine": """CREATE TABLE IF NOT EXISTS quarantine (
    target TEXT NOT NULL, item_id TEXT NOT NULL, reason TEXT NOT NULL,
    action_id TEXT, provider TEXT, detail TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
    times BIGINT NOT NULL, PRIMARY KEY (target, item_id, reason))""",
    "gaps": """CREATE TABLE IF NOT EXISTS gaps (
    target TEXT NOT NULL, provider TEXT NOT NULL, first_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (target, provider))""",
}
INDEXES = ("CREATE INDEX IF NOT EXISTS actions_state ON actions (target, state)",
           "CREATE INDEX IF NOT EXISTS sequenced_action ON sequenced (target, action_id)")


class LedgerTables:
    """What every part of the ledger reads and writes through: its store."""

    store: LedgerStore
    path: str

    def _tx(self) -> Any:
        return self.store.write()

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.store.rows(sql, args)

    @staticmethod
    def _in(run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]], sql: str, target: str,
            ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (its `IN ({})` filled) for `ids`, 500 at a time, through `run`."""
        found: list[tuple[Any, ...]] = []
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            found += run(sql.format(",".join("?" * len(chunk))), (target, *chunk))
        return found

    def _present(self, table: str, target: str, action_ids: Sequence[str]) -> set[str]:
        return {a for (a,) in self._in(self._rows, f"SELECT action_id FROM {table} WHERE "
                                       "target=? AND action_id IN ({})", target, action_ids)}


def db_reader(db: Any) -> Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]:
    """A row reader inside the write transaction `db` (for `LedgerTables._in`)."""
    return lambda sql, args: db.execute(sql, args).fetchall()
