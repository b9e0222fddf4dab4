"""Which ledger a run uses, and the guard against a ledger that forgot what was applied.

A run's ledger is, in this order: the `ledger_path` parameter (a path or URL), the
`LedgerDatabase` block named by the `ledger` parameter, the setting
`PREFECT_INTEGRATIONS_KWIL_SYNC_LEDGER_URL`, or `<state_dir>/ledger.sqlite`.

The last one is a file on the worker's disk. On a container work pool every run starts
with an empty one, and on a pool of several machines each worker has its own: a run
there would apply the whole log again. So before a run applies to a target its ledger
has never seen, it asks the Prefect server whether the pair was applied to before (its
follow cursor exists, or an earlier restore run of it completed) and refuses if so.
"""

from __future__ import annotations

from typing import Any, cast

from kwil_sync.blocks.ledger import LedgerDatabase
from kwil_sync.blocks.settings import KwilSyncSettings
from kwil_sync.defaults import NODE_BLOCK, RESTORE_FLOW
from kwil_sync.errors import KwilSyncError
from kwil_sync.ledger import Ledger, open_ledger
from kwil_sync.ledger_store import redact_url

__all__ = ["UnsharedLedger", "check_fresh_ledger", "ledger_location", "open_run_ledger",
           "prior_application"]



class UnsharedLedger(KwilSyncError, RuntimeError):
    """The ledger holds nothing for a target the Prefect server shows was applied to."""


def ledger_location(ledger: str | None = None, ledger_path: str | None = None) -> str:
    """The URL or path of the ledger a run uses (see the module docstring)."""
    if ledger_path:
        return ledger_path
    if ledger:
        block = cast(LedgerDatabase, LedgerDatabase.load(ledger))
        return block.url.get_secret_value()
    return KwilSyncSettings().ledger_location


def open_run_ledger(ledger: str | None = None, ledger_path: str | None = None) -> Ledger:
    """Open the ledger a run uses."""
    return open_ledger(ledger_location(ledger, ledger_path))


def prior_application(original_dbid: str, target: str, node: str) -> str | None:
    """What on the Prefect server shows `original_dbid` was applied to `target` on the
    provider of KwilNode block `node` before, or None.

    Looks at the follow cursor Variable of (database, target) and at completed restore
    runs with the same database, target and node (a dbid names the owner and the
    database, so the same dbid on another provider's chain is another target).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.runtime import flow_run

    from kwil_sync.flows.follow import follow_lock_name

    cursor = follow_lock_name(original_dbid, target)
    this_run = str(flow_run.id or "")
    with get_client(sync_client=True) as client:
        if client.read_variable_by_name(cursor) is not None:
            return f"its follow cursor (Prefect Variable {cursor!r}) exists"
        for offset in range(0, 2000, 200):  # newest first, a bounded look back
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[RESTORE_FLOW])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))),
                sort=FlowRunSort.START_TIME_DESC, limit=200, offset=offset)
            for run in runs:
                params: dict[str, Any] = run.parameters or {}
                if (str(run.id) != this_run and params.get("original_dbid") == original_dbid
                        and params.get("target") == target
                        and params.get("node", NODE_BLOCK) == node
                        and not params.get("dry_run")):
                    return f"restore run {run.name!r} ({run.id}) completed onto it"
            if len(runs) < 200:
                break
    return None


def check_fresh_ledger(ledger: Ledger, key: str, original_dbid: str, target: str, node: str,
                       *, new_ledger: bool) -> None:
    """Refuse to apply to a pair the server knows but this ledger does not.

    Raises:
        UnsharedLedger: The ledger has no history for `key` while the Prefect server
            shows the pair was applied to (unless `new_ledger`).
    """
    if new_ledger or ledger.has_history(key):
        return
    evidence = prior_application(original_dbid, target, node)
    if evidence is None:
        return
    raise UnsharedLedger(
        f"the ledger {redact_url(ledger.path)} holds nothing for {target}, but {original_dbid} "
        f"was applied to it before: {evidence}. This run would apply the log again. Use the "
        "ledger that run used: a shared one (a LedgerDatabase block named by the `ledger` "
        "parameter, or PREFECT_INTEGRATIONS_KWIL_SYNC_LEDGER_URL=postgresql://...) for "
        "container or multi-machine work pools, or move it there with `kwil-sync ledger "
        "migrate`. If the target really is new (for instance re-created empty), pass "
        "new_ledger=True (--new-ledger).")
