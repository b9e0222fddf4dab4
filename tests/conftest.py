"""Shared fixtures: stand-ins from kwil_sync.testing, vectors as data."""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# Before anything imports Prefect: no telemetry from servers the tests start.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import pytest

pytest_plugins = ["kwil_sync.testing.pytest_plugin"]

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def vectors():
    """Load a vector file from tests/vectors by name."""
    return lambda name: json.loads((VECTORS / name).read_text())


# Tiers: `make check` runs what needs no service (`-m "not integration"`); `make test`
# runs everything. A test is an integration test when it asks for a service fixture
# (arlocal, PostgreSQL, a Prefect server, a module's world of services, the Node
# oracles) or carries one of the service markers.
SERVICE_FIXTURES = frozenset({
    "arlocal", "postgres", "postgres_url", "world", "prefect_api", "prefect_server",
    "harness", "on_arlocal", "oracle", "funded", "wallet", "irys_run", "gateway_run",
    "shared_prefect", "flows_world"})
SERVICE_MARKERS = frozenset({"arlocal", "node", "prefect"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        markers = {m.name for m in item.iter_markers()}
        if fixtures & SERVICE_FIXTURES or markers & SERVICE_MARKERS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def shared_prefect(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's Prefect server (tests/helpers_records.session_stack), current for the
    module; yields its API URL. One server start for every module that needs no server of
    its own (each start costs 10 to 20 s)."""
    from helpers_records import session_stack
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = session_stack(request).prefect_api_url
    assert url is not None
    with temporary_settings({PREFECT_API_URL: url}):
        yield url


@pytest.fixture(scope="module", autouse=True)
def _fresh_prefect_event_workers() -> Iterator[None]:
    """Prefect keeps one events worker per process, talking to the API URL current when
    it first emitted; a module run later in the same process (pytest-xdist runs several
    in each worker) against another server would send its events, task runs included,
    to the first. Draining stops the workers, so the next module starts its own, as
    `prefect_test_harness` does at its end."""
    yield
    if "prefect.events.worker" in sys.modules:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
