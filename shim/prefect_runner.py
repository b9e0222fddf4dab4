"""How the shim creates Prefect flow runs: `arun_deployment(..., timeout=0)` on one
event loop and one client, owned by the submitter thread (never a gRPC thread)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar
from uuid import UUID

__all__ = ["DeploymentRunner", "PrefectRunner"]

T = TypeVar("T")


class DeploymentRunner(Protocol):
    """Creates flow runs of deployments and tells whether one is still going.

    Called from the submitter thread only; `close` is called there when it stops.
    """

    def submit(self, deployment: str, parameters: dict[str, Any]) -> str: ...

    def is_active(self, flow_run_id: str) -> bool: ...

    def close(self) -> None: ...


class PrefectRunner:
    """`arun_deployment(..., timeout=0)` against the Prefect API of this process's settings.

    Prefect is imported when the runner is made (at shim start, not in the middle of a
    burst: the import holds the GIL for seconds), and one event loop and one client
    serve every call of the submitter thread.
    """

    def __init__(self) -> None:
        from prefect.client.orchestration import PrefectClient, get_client
        from prefect.deployments import arun_deployment

        self._get_client = get_client
        self._arun_deployment = arun_deployment
        self._client: PrefectClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _call(self, make: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if self._client is None:
            client = self._get_client()
            self._loop.run_until_complete(client.__aenter__())
            self._client = client
        try:
            return self._loop.run_until_complete(make(self._client))
        except Exception:
            self._drop_client()  # the next call starts with a fresh connection
            raise

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(client.__aexit__(None, None, None))

    def submit(self, deployment: str, parameters: dict[str, Any]) -> str:
        run = self._call(lambda client: self._arun_deployment(
            deployment, client=client, parameters=parameters, timeout=0))
        return str(run.id)

    def is_active(self, flow_run_id: str) -> bool:
        run = self._call(lambda client: client.read_flow_run(UUID(flow_run_id)))
        return run.state is not None and not run.state.is_final()

    def close(self) -> None:
        self._drop_client()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
