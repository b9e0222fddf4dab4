"""The SyncShim block meets Prefect's block standards and reaches a running shim."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

from blocks.shim import SyncShim
from shim.config import ShimConfig
from shim.server import start_shim


class TestSyncShimBlockStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[SyncShim]:
        return SyncShim


def test_the_block_client_talks_to_the_shim(tmp_path: Path) -> None:
    running = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "o.sqlite",
                                    kwil_version="v0.9", provider_key=SecretStr("22" * 32),
                                    submit=False))
    try:
        with SyncShim(address=running.address, timeout_seconds=5).get_client() as client:
            assert client.status() == []
            assert client.pending(10).items == []
    finally:
        running.stop(0)
    assert "22" * 32 not in repr(running.config)  # the key stays out of reprs
