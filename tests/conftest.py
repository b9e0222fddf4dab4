"""Shared fixtures: stand-ins from kwil_sync.testing, vectors as data."""

import json
import os
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
