"""Pytest fixtures for kwil-sync's stand-ins: `arlocal` (one fresh instance per session) and
`postgres` (a throwaway PostgreSQL server), with `postgres_url` (a fresh database)."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator

import pytest

from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.postgres import INSTALL_HINT, PostgresServer, find_postgres_bin


@pytest.fixture(scope="session")
def arlocal() -> Iterator[Arlocal]:
    """A fresh arlocal on 127.0.0.1 for the whole test session."""
    gw = Arlocal.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on 127.0.0.1 for the whole test session.

    Skips (naming what to install) where no server binaries are found, except under CI,
    where a missing PostgreSQL is a failure: the shared-ledger tests must run there.
    """
    if find_postgres_bin() is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's PostgreSQL server, as a URL."""
    name = "t_" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]
    return postgres.create_database(f"{name}_{next(_DATABASES)}")


_DATABASES = itertools.count()
