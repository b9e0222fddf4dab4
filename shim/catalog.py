"""Parameter names of a database's actions, read from the local provider and cached.

save_action receives only values; the document names each one after the action's
parameter (`$id`, `$body`, ...), as the 2023 extension did with `getSchema`. A database's
actions rarely change, so each target is read once; an action missing from the cache
triggers one re-read (the schema may have been redeployed) before it counts as unknown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from kwil_sync.errors import KwilSyncError

__all__ = ["ActionCatalog", "CatalogUnavailable", "UnknownActionError"]


class UnknownActionError(KwilSyncError, LookupError):
    """The database has no action of that name."""


class CatalogUnavailable(KwilSyncError, RuntimeError):
    """The local provider could not be asked for the database's actions."""


class ActionCatalog:
    """Cached `action name -> parameter names` per database.

    Args:
        list_actions: Returns the actions of a target (dbid or namespace), e.g.
            `KwilClient(url).actions`; each has `.name` and `.parameters` as
            `(name, type)` pairs.
    """

    def __init__(self, list_actions: Callable[[str], Sequence[Any]]) -> None:
        self._list_actions = list_actions
        self._cache: dict[str, dict[str, list[str]]] = {}
        self._lock = threading.Lock()

    def _load(self, target: str) -> dict[str, list[str]]:
        try:
            actions = self._list_actions(target)
        except Exception as exc:  # any client failure: the caller answers UNAVAILABLE
            raise CatalogUnavailable(
                f"could not read the actions of {target} from the local provider: {exc}"
            ) from exc
        table = {info.name.lower(): [name for name, _ in info.parameters] for info in actions}
        with self._lock:
            self._cache[target] = table
        return table

    def parameters(self, target: str, action_name: str) -> list[str]:
        """The parameter names of `action_name` on `target`, in order.

        Raises:
            UnknownActionError: If the database has no such action (after one re-read).
            CatalogUnavailable: If the provider could not be read.
        """
        key = action_name.lower()
        with self._lock:
            table = self._cache.get(target)
        if table is None or key not in table:
            table = self._load(target)
        if key not in table:
            known = ", ".join(sorted(table)) or "none"
            raise UnknownActionError(
                f"database {target} has no action {action_name!r} (its actions: {known})")
        return list(table[key])

    def forget(self, target: str) -> None:
        """Drop a target's cached actions (the next lookup reads them again)."""
        with self._lock:
            self._cache.pop(target, None)
