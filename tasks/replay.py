"""Prefect tasks around the core replay pipeline: one task run per step of a chunk.

The pipeline (`kwil_sync.replay.Replayer`) runs each step through a step runner
(`kwil_sync.step_runner`); `prefect_steps()` returns one that makes every step a task
run named after its `StepName`, so the Prefect UI shows pages read, documents fetched
and verified, and batches applied, each with its own state, timing and logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from kwil_sync.step_runner import StepName, StepRunner, UnknownStep

__all__ = ["STEP_TASKS", "prefect_steps"]

P = ParamSpec("P")
R = TypeVar("R")


def _call(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return step(*args, **kwargs)


def _step_task(name: StepName, description: str) -> Task[..., Any]:
    # No cache: inputs are live clients and the ledger; no retries here because a
    # step's own clients already retry, and applying again blindly could double a
    # transaction (a rerun resolves pending intents through the ledger instead).
    return task(name=name.value, description=description, cache_policy=NO_CACHE,
                persist_result=False)(_call)


STEP_TASKS: dict[StepName, Task[..., Any]] = {
    StepName.READ: _step_task(StepName.READ, "Read the next chunk of GraphQL pages of records."),
    StepName.CHECK: _step_task(
        StepName.CHECK, "Fetch a chunk's documents and verify signer, signatures, hash."),
    StepName.APPLY: _step_task(
        StepName.APPLY, "Sign and broadcast a batch with consecutive nonces, then confirm."),
    StepName.RECOVER: _step_task(
        StepName.RECOVER, "Resolve intents an earlier run left pending, through tx_query."),
}


def prefect_steps() -> StepRunner:
    """A step runner that runs each named step as a Prefect task run.

    Raises (from the runner):
        UnknownStep: The name has no task here: a step would otherwise run unseen.
    """

    def run_step(name: StepName, step: Callable[P, R], /,
                 *args: P.args, **kwargs: P.kwargs) -> R:
        prefect_task = STEP_TASKS.get(name)
        if prefect_task is None:
            raise UnknownStep(f"no Prefect task for replay step {name!r}; the steps are "
                              f"{', '.join(STEP_TASKS)}")
        # quote: the arguments are live objects and chunks of up to thousands of
        # records; Prefect would otherwise walk every one looking for futures, which
        # cost more CPU than the step itself.
        result = prefect_task(step, *(quote(a) for a in args),
                              **{k: quote(v) for k, v in kwargs.items()})
        return cast(R, result)  # a sync task run answers what its step returned

    return run_step
