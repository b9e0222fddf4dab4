"""The replay step seam: named steps, typed runners, and unknown names refused loudly."""

from __future__ import annotations

import pytest

from kwil_sync.step_runner import StepName, UnknownStep, run_directly
from kwil_sync.tasks.replay import STEP_TASKS, prefect_steps


def add(a: int, b: int = 0) -> int:
    return a + b


def test_the_direct_runner_calls_the_step_with_its_arguments():
    assert run_directly(StepName.APPLY, add, 2, b=3) == 5


@pytest.mark.parametrize("runner", [run_directly, prefect_steps()])
def test_an_unknown_step_name_is_refused_not_run_unseen(runner):
    calls = []
    with pytest.raises(UnknownStep, match="apply-batches"):
        runner("apply-batches", calls.append, 1)
    assert calls == []


def test_every_step_is_a_prefect_task_named_as_flows_and_docs_expect():
    assert {name: t.name for name, t in STEP_TASKS.items()} == {
        StepName.READ: "read-pages", StepName.CHECK: "fetch-and-verify",
        StepName.APPLY: "apply-batch", StepName.RECOVER: "recover"}
