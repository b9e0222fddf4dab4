"""`kwil-sync status`: per database and target, where following stands and what is queued.

Reads four places, each optional: the ledger (applied, failed, pending, quarantined,
each provider's last sequence), the follow cursors kept as Prefect Variables (how far
behind the log each target is, in seconds), the newest `kwil-sync.follow.polled` event
of each pair (when it last polled and what it left behind), and the shim's outbox
(records not yet uploaded, untied records, tied calls waiting, unconfirmed or voided), asked
over gRPC.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from kwil_sync.defaults import FOLLOW_CURSOR_PREFIX
from kwil_sync.flows.ledger import ledger_location
from kwil_sync.ledger import open_ledger
from kwil_sync.ledger_store import LedgerUnavailable, redact_url

__all__ = ["collect_status", "print_status"]

CURSOR_PREFIX = FOLLOW_CURSOR_PREFIX + "-"


def _cursors() -> tuple[list[dict[str, Any]], str | None]:
    """Follow cursors from Prefect Variables, or an error text when Prefect is unreachable."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        return [], "PREFECT_API_URL is not set: follow cursors live on the Prefect server"
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            found = [v for v in client.read_variables() if v.name.startswith(CURSOR_PREFIX)]
    except Exception as exc:  # status must still show the rest
        return [], f"Prefect API not reachable: {exc}"
    now_ms = time.time() * 1000
    rows = []
    for variable in found:
        value = variable.value if isinstance(variable.value, dict) else {}
        stamp = value.get("timestamp_ms")
        rows.append({"database": value.get("original_dbid"), "target": value.get("target"),
                     "cursor_ms": stamp, "height": value.get("height"),
                     "lag_seconds": round((now_ms - stamp) / 1000, 1) if stamp else None,
                     "lag_records": _records_behind(value)})
    return rows, None


def _polls() -> tuple[list[dict[str, Any]], str | None]:
    """The newest follow poll of each pair, from the server's `kwil-sync.follow.polled`
    events: how far behind it left the target, and when."""
    from kwil_sync.flows.events import read_events

    try:
        events = read_events("kwil-sync.follow.polled")
    except Exception as exc:  # status must still show the rest
        return [], f"Prefect events not readable: {exc}"
    newest: dict[str, dict[str, Any]] = {}
    for event in events:  # newest first
        resource = event.get("resource", {})
        pair = resource.get("prefect.resource.id", "")
        if pair and pair not in newest:
            payload = event.get("payload", {})
            newest[pair] = {"database": resource.get("kwil-sync.database"),
                            "target": resource.get("kwil-sync.target"),
                            "polled_at": event.get("occurred"),
                            "lag_seconds": payload.get("lag_seconds"),
                            "records_behind": payload.get("records_behind"),
                            "applied": payload.get("applied")}
    return list(newest.values()), None


def _records_behind(cursor: dict[str, Any], limit: int = 10_000) -> int | str | None:
    """Records in the log after the cursor (counted up to `limit`), or None if unknown."""
    if not cursor.get("gateway") or not cursor.get("original_dbid"):
        return None
    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.sources import Start

    try:
        gateway = cast(ArweaveGateway, ArweaveGateway.load(cursor["gateway"]))
        stamp, height = cursor.get("timestamp_ms"), cursor.get("height")
        irys = gateway.dialect == "irys"
        start = Start(since_ms=stamp) if irys else Start(min_block=height)
        behind = 0
        for page in gateway.get_source(cursor["original_dbid"]).pages(start):
            behind += sum(1 for r in page.records if (
                (r.timestamp_ms or 0) > (stamp or 0) if irys
                else r.height is None or r.height > (height or 0)))
            if behind >= limit:
                return f"{limit}+"
        return behind
    except Exception:  # status reports what it can
        return None


def _outbox(address: str | None) -> tuple[list[dict[str, Any]], str | None]:
    if not address:
        return [], None
    from kwil_sync.shim_client import ShimClient

    try:
        with ShimClient(address, timeout=5) as shim:
            chains = shim.status()
    except Exception as exc:
        return [], f"shim at {address} not reachable: {exc}"
    return [{"database": c.original_dbid, "provider": c.provider, "pending": c.pending,
             "uploaded": c.uploaded, "sequence": c.sequence,
             "last_uploaded": c.last_uploaded_id, "untied": c.untied, "waiting": c.waiting,
             "unconfirmed": c.unconfirmed, "voided": c.voided} for c in chains], None


def _outbox_warnings(outbox: list[dict[str, Any]]) -> list[str]:
    """Untied records (published even if rolled back) and unconfirmed calls, per database."""
    warnings = []
    for row in outbox:
        if row["untied"]:
            warnings.append(
                f"{row['untied']} record(s) of {row['database']} are untied (the 2023 "
                "save_action form): they are published even when their transaction rolls "
                "back; call db_sync.save_action_tx(@txid, @height, ...) instead "
                "(docs/SHIM.md, Commit-tied capture)")
        if row["unconfirmed"]:
            warnings.append(
                f"{row['unconfirmed']} tied call(s) of {row['database']} are unconfirmed: the "
                "node does not know their transaction; they are not uploaded unless it "
                "reports code 0 (check that the shim's --kwil-url is the node kwild runs)")
    return warnings


def collect_status(*, ledger: str | None = None, ledger_block: str | None = None,
                   shim: str | None = None) -> dict[str, Any]:
    """Everything `kwil-sync status` shows, as plain data.

    Args:
        ledger: The ledger's path or URL (default: as a run would pick it).
        ledger_block: Name of a LedgerDatabase block, when `ledger` is not given.
        shim: The shim's host:port, to ask for its outbox.
    """
    location = ledger_location(ledger_block, ledger)
    targets: list[dict[str, Any]] = []
    ledger_error = None
    if "://" not in location and not Path(location).exists():
        ledger_error = f"no ledger at {location} yet"
    else:
        try:
            with open_ledger(location) as store:
                for target in store.targets():
                    counts = store.counts(target)
                    targets.append({"target": target, "applied": counts.done,
                                    "failed": counts.failed, "pending": counts.pending,
                                    "quarantined": counts.quarantined,
                                    "providers": counts.providers})
        except LedgerUnavailable as exc:
            ledger_error = str(exc)
    cursors, cursor_error = _cursors()
    polls, polls_error = _polls() if cursor_error is None else ([], None)
    outbox, outbox_error = _outbox(shim)
    warnings = _outbox_warnings(outbox)
    errors = [e for e in (ledger_error, cursor_error, polls_error, outbox_error) if e]
    errors += warnings
    return {"ledger": redact_url(location), "targets": targets, "follow": cursors,
            "polls": polls, "outbox": outbox, "errors": errors}


def print_status(*, ledger: str | None = None, ledger_block: str | None = None,
                 shim: str | None = None, as_json: bool = False) -> int:
    """Print the status as tables (or JSON); returns the process exit code."""
    status = collect_status(ledger=ledger, ledger_block=ledger_block, shim=shim)
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    console = Console()
    sections = [("Applied per target (ledger " + status["ledger"] + ")", status["targets"]),
                ("Follow cursors (Prefect Variables)", status["follow"]),
                ("Last follow poll per pair (Prefect events)", status["polls"]),
                ("Shim outbox", status["outbox"])]
    for title, rows in sections:
        if not rows:
            continue
        table = Table(title=title)
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*(json.dumps(v) if isinstance(v, dict) else str(v)
                            for v in row.values()))
        console.print(table)
    for error in status["errors"]:
        console.print(f"[yellow]{error}[/yellow]")
    if not any(rows for _, rows in sections):
        console.print("nothing to show yet: no ledger entries, cursors or outbox")
    return 0
