"""`kwil-sync status` shows untied records (with a warning) and tied calls by state."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from kwil_sync.cli.status import collect_status
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.workload import messages_schema


def test_status_counts_and_warns_about_untied_records(tmp_path: Path) -> None:
    key = secrets.token_hex(32)
    node = KwilNodeStandIn.start(version="v0.9")
    shim = start_shim(ShimConfig(provider_key=SecretStr(key), port=0, submit=False,
                                 kwil_url=node.url, kwil_version="v0.9",
                                 outbox_path=tmp_path / "outbox.sqlite", confirm_timeout_s=0))
    try:
        target = node.deploy(EthereumKey(key).address, "messages", messages_schema("none"))
        values = ["1", "hi", EthereumKey(key).address, "1"]
        with ShimClient(shim.address) as client:
            client.save_action(local_db_name="messages", action_name="post_message_sync",
                               values=values)  # the 2023 form: untied
            client.save_action(local_db_name="messages", action_name="post_message_sync",
                               values=values, tx_hash="cd" * 32)  # a transaction nobody sent
            client.lease(10, holder="status-test")  # one confirmation pass
        status = collect_status(ledger=str(tmp_path / "none.sqlite"), shim=shim.address)
        [row] = status["outbox"]
        assert row["database"] == target
        assert (row["untied"], row["unconfirmed"], row["waiting"], row["voided"]) == (1, 1, 0, 0)
        assert any("untied" in e and "save_action_tx" in e for e in status["errors"])
        assert any("unconfirmed" in e for e in status["errors"])
    finally:
        shim.stop()
        node.stop()
