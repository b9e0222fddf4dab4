"""Two validators execute the same kwild transaction, each calling its own shim (its own
provider key): each writes a version 3 record with the same Action-Id, and a restore
that trusts both applies the action once."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

from pydantic import SecretStr

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import build_tx, convert_arguments, dbid, encode_action
from kwil_sync.kwil.client import KwilClient
from kwil_sync.ledger import Ledger
from kwil_sync.records import SyncRecord
from kwil_sync.replay import Replayer
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import RunningShim, start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.sources import ItemSource
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.procs import free_port
from kwil_sync.testing.workload import messages_schema
from kwil_sync.verify import TrustPolicy

OWNER, SECOND, USER, TARGET_ADMIN = (secrets.token_hex(32) for _ in range(4))


def validator(tmp_path: Path, key: str, schema_owner: str, original: str
              ) -> tuple[KwilNodeStandIn, RunningShim, str]:
    port = free_port()
    shim = start_shim(ShimConfig(provider_key=SecretStr(key), port=0, submit=False,
                                 kwil_version="v0.9", kwil_url=f"http://127.0.0.1:{port}",
                                 outbox_path=tmp_path / f"{key[:8]}.sqlite"))
    node = KwilNodeStandIn.start(version="v0.9", port=port, block_interval=0,
                                 extension_endpoints=[shim.address])
    schema = messages_schema("tied")
    [use] = schema.extensions
    schema = dataclasses.replace(schema, extensions=[dataclasses.replace(
        use, metadata={**use.metadata, "original_dbid": original, "local_dbid": original})])
    return node, shim, node.deploy(schema_owner, "messages", schema)


def test_two_validators_write_one_action_that_restores_once(tmp_path: Path) -> None:
    owner = EthereumKey(OWNER).address
    original = dbid(owner, "messages")
    validators = [validator(tmp_path, key, owner, original) for key in (OWNER, SECOND)]
    target_node = KwilNodeStandIn.start(version="v0.9")
    try:
        args = convert_arguments("v0.9", [("$id", "int"), ("$body", "text"),
                                          ("$created_at", "int")], ["1", "hello", "5"])
        tx = build_tx(USER, encode_action("v0.9", original, "post_message", [args]),
                      description="", fee=0, nonce=1, chain_id="kwil-standin")
        records = []
        for node, shim, target in validators:  # the same transaction in the same block
            assert target == original
            KwilClient(node.url, version="v0.9").broadcast(tx)
            assert node.make_block() == 1
            with ShimClient(shim.address) as client:
                [item] = client.lease(10, holder="v").items
            records.append(SyncRecord.from_item(DataItem.parse(item.raw)))
        first, second = records
        assert first.action_id == second.action_id and first.tx == second.tx
        assert first.provider_address != second.provider_address

        restored = target_node.deploy(EthereumKey(TARGET_ADMIN).address, "messages",
                                      messages_schema("none"))
        ledger = Ledger(tmp_path / "ledger.sqlite")
        source = ItemSource([_item(shim) for _, shim, _ in validators])
        policy = TrustPolicy(original, trusted_providers={EthereumKey(SECOND).address})
        report = Replayer(source, source, KwilApplier(KwilClient(target_node.url), TARGET_ADMIN,
                                                      restored),
                          ledger, policy, target_id=f"standin/{restored}").run()
        ledger.close()
        assert (report.applied, report.duplicates) == (1, 1)
        assert target_node.rows(restored, "SELECT id, body FROM messages") == [
            {"id": 1, "body": "hello"}]
    finally:
        target_node.stop()
        for node, shim, _ in validators:
            node.stop()
            shim.stop()


def _item(shim: RunningShim) -> DataItem:
    [pending] = shim.outbox.pending(10, holder="v")  # the items leased above
    return DataItem.parse(pending.raw)
