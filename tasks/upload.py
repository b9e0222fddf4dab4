"""The upload task: one Prefect task run per batch of the shim's outbox.

The upload itself (lease, upload, acknowledge) is `kwil_sync.upload.upload_pending`;
this task adds Prefect's retries (none once a 402 leaves no window to wait for) and
makes each batch a task run.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from kwil_sync.arweave.uploaders import PaymentRequired, Uploader
from kwil_sync.shim_client import ShimClient
from kwil_sync.upload import BatchResult, upload_pending

__all__ = ["upload_batch"]


def _retry_unless_unpaid(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry anything except a 402 without a window to wait for (funding needed first)."""
    error = state.data
    return not (isinstance(error, PaymentRequired) and error.retry_after is None)


@task(name="upload-batch", task_run_name="upload-batch-{batch_number}", retries=5,
      retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_jitter_factor=0.5,
      retry_condition_fn=_retry_unless_unpaid, cache_policy=NO_CACHE)
def upload_batch(shim_address: str, uploader: Uploader, *, holder: str, limit: int,
                 batch_number: int, timeout_seconds: float = 30.0) -> BatchResult:
    """One task run per batch: `upload_pending` against the shim at `shim_address`."""
    with ShimClient(shim_address, timeout=timeout_seconds) as shim:
        return upload_pending(shim, uploader, holder=holder, limit=limit)
