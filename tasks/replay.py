"""Prefect tasks around the core replay pipeline: one task run per step of a chunk.

The pipeline (`kwil_sync.replay.Replayer`) runs each step through a step runner;
`prefect_steps()` returns one that makes every step a task run, so the Prefect UI
shows pages read, documents fetched and verified, and batches applied, each with its
own state, timing and logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

__all__ = ["STEP_TASKS", "prefect_steps"]


def _call(step: Callable[..., Any], *args: Any) -> Any:
    return step(*args)


def _step_task(name: str, description: str) -> Task[..., Any]:
    # No cache: inputs are live clients and the ledger; no retries here because a
    # step's own clients already retry, and applying again blindly could double a
    # transaction (a rerun resolves pending intents through the ledger instead).
    return task(name=name, description=description, cache_policy=NO_CACHE,
                persist_result=False)(_call)


STEP_TASKS: dict[str, Task[..., Any]] = {
    "read-pages": _step_task("read-pages", "Read the next chunk of GraphQL pages of records."),
    "fetch-and-verify": _step_task(
        "fetch-and-verify", "Fetch a chunk's documents and verify signer, signatures, hash."),
    "apply-batch": _step_task(
        "apply-batch", "Sign and broadcast a batch with consecutive nonces, then confirm."),
    "recover": _step_task(
        "recover", "Resolve intents an earlier run left pending, through tx_query."),
}


def prefect_steps() -> Callable[..., Any]:
    """A step runner that runs each named step as a Prefect task run."""

    def run_step(name: str, step: Callable[..., Any], *args: Any) -> Any:
        prefect_task = STEP_TASKS.get(name)
        if prefect_task is None:
            return step(*args)
        # quote: the arguments are live objects and chunks of up to thousands of
        # records; Prefect would otherwise walk every one looking for futures, which
        # cost more CPU than the step itself.
        return prefect_task(step, *(quote(a) for a in args))

    return run_step
