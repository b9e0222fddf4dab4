"""Pytest fixtures for kwil-sync's stand-ins: `arlocal` (one fresh instance per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kwil_sync.testing.arlocal import Arlocal


@pytest.fixture(scope="session")
def arlocal() -> Iterator[Arlocal]:
    """A fresh arlocal on 127.0.0.1 for the whole test session."""
    gw = Arlocal.start()
    try:
        yield gw
    finally:
        gw.stop()
