"""The demo's verification step: prove B equal to A, then change one row on B behind
kwil-sync's back and show verify naming it.

Called by the demo once B is level (after its follow run), with the Prefect API set:
the first verify run must say "verified"; then one row of B's messages table is
edited straight in B's database file (as an operator with shell access could, no
transaction, nothing in the log), and the second run must find exactly that key.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from kwil_sync.defaults import GATEWAY_BLOCK

__all__ = ["change_one_row_behind_kwil_sync", "run_verify_demo"]


def change_one_row_behind_kwil_sync(database_file: Path, table: str = "messages",
                                    key: str = "id") -> Any:
    """Edit the row with the lowest key in the stand-in's SQLite file; returns its key."""
    with sqlite3.connect(database_file, timeout=30) as db:
        row = db.execute(f"SELECT min({key}) FROM {table}").fetchone()
        if row is None or row[0] is None:
            raise RuntimeError(f"{table} in {database_file} is empty: nothing to change")
        db.execute(f"UPDATE {table} SET body = body || ' (edited behind kwil-sync''s back)' "
                   f"WHERE {key} = ?", (row[0],))
    return row[0]


def run_verify_demo(*, db_a: str, db_b: str, node_b_dir: Path, ledger_path: str,
                    source_block: str = "node-a", replica_block: str = "node-b",
                    gateway: str = GATEWAY_BLOCK,
                    settle_seconds: float = 3.0) -> dict[str, Any]:
    """Verify B against A, change one row on B, verify again.

    Args:
        db_a: The database's dbid on A (its Original-DBID).
        db_b: Its dbid on B.
        node_b_dir: B's stand-in data folder (holds `db-<dbid>.sqlite`).
        ledger_path: The ledger the demo's restore and follow runs wrote.
        source_block: KwilNode block name of A.
        replica_block: KwilNode block name of B.
        gateway: ArweaveGateway block the log is read from.
        settle_seconds: Pause before checking the point held still.

    Returns:
        `drift_keys` (exactly 1 expected), `verified_equal_before` (True expected),
        the two verdicts, the changed key and the keys verify named.
    """
    from kwil_sync.flows.verify import verify

    params: dict[str, Any] = {"database": db_a, "source": f"{source_block}:{db_a}",
                              "replica": f"{replica_block}:{db_b}", "gateway": gateway,
                              "ledger_path": ledger_path, "settle_seconds": settle_seconds}
    before = verify(**params)
    changed = change_one_row_behind_kwil_sync(node_b_dir / f"db-{db_b}.sqlite")
    after = verify(**params)
    named = [k for t in after["tables"] for k in t["different"] + t["missing"] + t["extra"]]
    return {"drift_keys": after["drift_keys"],
            "verified_equal_before": before["status"] == "verified",
            "verify_before": before["status"], "verify_after": after["status"],
            "changed_key": changed, "drift_named": named,
            "verify_queries": before["queries"] + after["queries"]}
