"""The seam between the replay pipeline and whatever runs its steps.

`kwil_sync.replay.Replayer` calls each of its four steps through a `StepRunner`:
`runner(StepName.APPLY, apply_batch, applier, ledger, ...)`. The runner's type ties the
arguments to the step's own parameters and its answer to the step's return type
(`ParamSpec`), so a step called with the wrong arguments fails type checking, not a
run. The default runner calls the step; the Prefect layer (`kwil_sync.tasks.replay`)
makes each call a task run named after its `StepName`, without the core importing
Prefect. A runner given a name it has no task for raises `UnknownStep` rather than run
the step unseen.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import ParamSpec, Protocol, TypeVar

from kwil_sync.errors import KwilSyncError

__all__ = ["StepName", "StepRunner", "UnknownStep", "run_directly"]

P = ParamSpec("P")
R = TypeVar("R")


class StepName(StrEnum):
    """The pipeline's steps; each value is the Prefect task name flows and docs show."""

    RECOVER = "recover"
    READ = "read-pages"
    CHECK = "fetch-and-verify"
    APPLY = "apply-batch"


class UnknownStep(KwilSyncError, LookupError):
    """A step runner was asked to run a step it does not know."""


class StepRunner(Protocol):
    """Runs one step: `runner(name, step, *args, **kwargs)` returns `step(*args, **kwargs)`."""

    def __call__(self, name: StepName, step: Callable[P, R], /,
                 *args: P.args, **kwargs: P.kwargs) -> R: ...


def run_directly(name: StepName, step: Callable[P, R], /,
                 *args: P.args, **kwargs: P.kwargs) -> R:
    """The default step runner: call the step (after checking its name is a step's).

    Raises:
        UnknownStep: `name` is not a `StepName`.
    """
    if not isinstance(name, StepName):
        raise UnknownStep(f"{name!r} is not a replay step (one of "
                          f"{', '.join(StepName)}); pass a StepName")
    return step(*args, **kwargs)
