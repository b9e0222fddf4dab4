"""Short, readable names for what a run shows in the Prefect UI: flow run names and
artifact keys. A dbid is 57 characters; its first 8 after the `x` tell databases apart
for people, and a 4-character hash of the whole pair keeps keys unique."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

__all__ = ["pair_key", "pair_run_name", "short"]


def short(dbid_or_namespace: str) -> str:
    """`x52197631a5de...` -> `52197631`; a v0.10 namespace (a name) stays as it is."""
    text = dbid_or_namespace
    if len(text) > 9 and text.startswith("x") and re.fullmatch(r"x[0-9a-f]+", text):
        return text[1:9]
    return text


def pair_key(kind: str, original_dbid: str, target: str | None = None) -> str:
    """An artifact key such as `restore-52197631-8f3e1a2b-c0de` (Prefect's key rules:
    lowercase letters, digits and dashes)."""
    whole = f"{original_dbid}/{target or ''}"
    parts = [kind, short(original_dbid), *([short(target)] if target else []),
             hashlib.sha256(whole.encode()).hexdigest()[:4]]
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)[:120]


def pair_run_name(kind: str) -> Callable[[], str]:
    """A `flow_run_name` for flows with `original_dbid` and `target` parameters:
    `restore 52197631 -> 8f3e1a2b`."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = flow_run.parameters
        target = params.get("target")
        return f"{kind} {short(str(params.get('original_dbid', '?')))}" + (
            f" -> {short(str(target))}" if target else "")

    return name
