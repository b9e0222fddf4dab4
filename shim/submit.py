"""Submit Prefect flow runs for the shim, off the gRPC threads, in batches.

Upload runs: one when the outbox holds `batch_size` new records or every `interval`
while anything is pending, and never while the previous run is still scheduled or
running (that run drains the outbox in a loop). Restore runs: one per database and
shim process, when kwild initializes it or the 2023 Sync asks. If Prefect cannot be
reached the shim keeps serving (records are safe in the outbox) and logs a warning.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kwil_sync.shim.prefect_runner import DeploymentRunner

__all__ = ["FlowSubmitter", "SubmitStats"]

log = logging.getLogger("kwil_sync.shim")
_WARN_EVERY_S = 60.0


@dataclass
class SubmitStats:
    upload_runs: int = 0
    restore_runs: int = 0
    failures: int = 0


class FlowSubmitter:
    """A background thread that turns outbox activity into flow runs.

    Args:
        runner: Creates the runs (Prefect in production).
        pending_count: How many records wait for upload.
        upload_deployment: `flow/deployment` of the upload flow.
        upload_parameters: Parameters of each upload run (e.g. the shim address).
        restore_deployment: `flow/deployment` of the restore flow.
        restore_parameters: Extra parameters of each restore run.
        batch_size: Submit once this many new records are stored.
        interval_s: Otherwise submit this long after the last check if any are pending.
        min_check_s: At least this long between two checks (each may ask Prefect whether
            the previous run is still going).
    """

    def __init__(self, runner: DeploymentRunner, *, pending_count: Callable[[], int],
                 upload_deployment: str, upload_parameters: dict[str, Any],
                 restore_deployment: str, restore_parameters: dict[str, Any] | None = None,
                 batch_size: int = 100, interval_s: float = 2.0,
                 min_check_s: float = 0.5) -> None:
        self.runner = runner
        self.pending_count = pending_count
        self.upload_deployment = upload_deployment
        self.upload_parameters = upload_parameters
        self.restore_deployment = restore_deployment
        self.restore_parameters = restore_parameters or {}
        self.batch_size = max(batch_size, 1)
        self.interval_s = interval_s
        self.min_check_s = min_check_s
        self.stats = SubmitStats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._saved = 0
        self._restores: list[tuple[str, str]] = []
        self._restored: set[tuple[str, str]] = set()
        self._active_run: str | None = None
        self._last_check = 0.0
        self._last_warning = -_WARN_EVERY_S
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread, in a copy of the caller's context (so Prefect settings
        entered with `temporary_settings` or a test harness apply to it too)."""
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), daemon=True,
                                        name="kwil-sync-submitter")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def notify_saved(self) -> None:
        """A new record is in the outbox (cheap; called on the gRPC thread)."""
        with self._lock:
            self._saved += 1
            due = self._saved >= self.batch_size
        if due:
            self._wake.set()

    def request_sync(self, original_dbid: str, target: str) -> None:
        """Start restore-then-follow for a database (once per shim process)."""
        with self._lock:
            key = (original_dbid, target)
            if key in self._restored or key in self._restores:
                return
            self._restores.append(key)
        self._wake.set()

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            self.runner.close()

    def _serve(self) -> None:
        poll_s = min(self.interval_s, self.min_check_s)  # bounds Prefect calls per second
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._submit_restores()
            now = time.monotonic()
            with self._lock:
                due = self._saved >= self.batch_size or now - self._last_check >= self.interval_s
            if due:
                self._last_check = now
                self._submit_upload()
            self._stop.wait(poll_s)

    def _submit_restores(self) -> None:
        with self._lock:
            queued, self._restores = self._restores, []
        for original, target in queued:
            parameters = {**self.restore_parameters, "original_dbid": original, "target": target}
            try:
                run_id = self.runner.submit(self.restore_deployment, parameters)
            except Exception as exc:
                self._failed(f"could not submit {self.restore_deployment} for {original} -> "
                             f"{target}", exc)
                with self._lock:
                    self._restores.append((original, target))  # try again next tick
                continue
            with self._lock:
                self._restored.add((original, target))
                self.stats.restore_runs += 1
            log.info("submitted restore-then-follow run %s for %s -> %s", run_id, original,
                     target)

    def _submit_upload(self) -> None:
        try:
            if self._active_run is not None and self.runner.is_active(self._active_run):
                return
            if self.pending_count() == 0:
                with self._lock:
                    self._saved = 0
                return
            run_id = self.runner.submit(self.upload_deployment, self.upload_parameters)
        except Exception as exc:
            self._failed(f"could not submit {self.upload_deployment}", exc)
            return
        with self._lock:
            self._active_run = run_id
            self._saved = 0
            self.stats.upload_runs += 1
        log.debug("submitted upload run %s", run_id)

    def _failed(self, what: str, exc: Exception) -> None:
        with self._lock:
            self.stats.failures += 1
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning("%s (%s: %s); records stay in the outbox and submission is retried. "
                        "Is PREFECT_API_URL set and the server up?", what, type(exc).__name__,
                        exc)
