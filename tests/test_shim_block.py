"""The SyncShim block reaches a running shim (its block standards: test_block_standards.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from kwil_sync.blocks.shim import SyncShim
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import start_shim


def test_the_block_client_talks_to_the_shim(tmp_path: Path) -> None:
    running = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "o.sqlite",
                                    kwil_version="v0.9", provider_key=SecretStr("22" * 32),
                                    submit=False))
    try:
        with SyncShim(address=running.address, timeout_seconds=5).get_client() as client:
            assert client.status() == []
            assert client.lease(10).items == []
    finally:
        running.stop(0)
    assert "22" * 32 not in repr(running.config)  # the key stays out of reprs
