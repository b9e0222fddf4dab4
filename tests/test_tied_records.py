"""Sync-Version 3 records (tied to a kwild transaction) and kwild v0.10's tied SaveAction."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.kwil.client import KwilClient
from kwil_sync.records import (
    RecordError,
    SyncRecord,
    TxRef,
    action_id,
    build_record,
    canonical_text,
    tied_action_id,
)
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.workload import MessagesWorkload, SyncedCall, messages_schema
from kwil_sync.verify import TrustPolicy, verify_record

SIGNER = EthereumSigner(secrets.token_hex(32))
NAME = "messages"
TX = TxRef("0f" * 32, 42, 1)


def make(tx: TxRef | None = TX, **overrides: object) -> DataItem:
    from kwil_sync.kwil import dbid

    original = dbid(SIGNER.address, NAME)
    fields: dict[str, object] = dict(
        original_dbid=original, local_dbid=original, local_db_name=NAME,
        action_name="post_message_sync", data=[("$id", "7"), ("$body", "hi")], sequence=1,
        prev_action_id="-", created_at_ms=1_700_000_000_000, tx=tx)
    fields.update(overrides)
    return build_record(SIGNER, **fields)  # type: ignore[arg-type]


def policy() -> TrustPolicy:
    from kwil_sync.kwil import dbid

    return TrustPolicy(dbid(SIGNER.address, NAME))


def test_a_tied_record_carries_and_signs_its_transaction() -> None:
    item = make()
    names = [n for n, _ in item.tags]
    assert names[-4:] == ["Created-At", "Kwil-Tx-Hash", "Kwil-Height", "Kwil-Tx-Call"]
    record = SyncRecord.from_item(item)
    assert (record.version, record.tx) == (3, TX)
    assert b"Kwil-Tx-Hash: " + b"0f" * 32 in record.signed_text()
    assert record.action_id == tied_action_id(record.original_dbid, "post_message_sync",
                                              ["7", "hi"], TX.tx_hash)
    assert record.action_id != action_id(record.original_dbid, "post_message_sync", ["7", "hi"])
    assert verify_record(record, None, policy()).ok


def test_untied_records_stay_version_2_and_verify() -> None:
    record = SyncRecord.from_item(make(tx=None))
    assert (record.version, record.tx) == (2, None)
    assert "Kwil-Tx-Hash" not in dict(record.tags)
    assert verify_record(record, None, policy()).ok


@pytest.mark.parametrize("tag,value", [("Kwil-Height", "43"), ("Kwil-Tx-Hash", "1f" * 32),
                                       ("Kwil-Tx-Call", "0")])
def test_changing_the_provenance_breaks_the_signature(tag: str, value: str) -> None:
    item = make()
    forged_tags = [(n, value if n == tag else v) for n, v in item.tags]
    forged = DataItem.create(item.data, forged_tags, SIGNER)  # a valid item, old Signature tag
    verdict = verify_record(SyncRecord.from_item(forged), None, policy())
    assert not verdict.ok
    assert verdict.reason in ("signer-mismatch", "action-id-mismatch")


def test_a_version_3_record_must_carry_its_transaction_tags() -> None:
    item = make()
    without = [(n, v) for n, v in item.tags if n != "Kwil-Height"]
    with pytest.raises(RecordError, match="Kwil-Height"):
        SyncRecord.from_item(DataItem.create(item.data, without, SIGNER))
    with pytest.raises(RecordError):
        TxRef("not-a-hash", 1, 0)
    with pytest.raises(RecordError):
        TxRef("0f" * 32, 0, 0)


def test_the_canonical_text_of_version_2_is_unchanged() -> None:
    text = canonical_text(original_dbid="x", action_id="a", sequence=1, prev_action_id="-",
                          payload_sha256="h", created_at_ms=5)
    assert text == (b"kwil-sync record v2\nOriginal-DBID: x\nAction-Id: a\nSequence: 1\n"
                    b"Prev-Action-Id: -\nPayload-SHA256: h\nCreated-At: 5\n")


def test_v010_save_action_with_the_tx_hash_is_confirmed_like_v09(tmp_path: Path) -> None:
    key, user = secrets.token_hex(32), secrets.token_hex(32)
    node = KwilNodeStandIn.start(version="v0.10")
    shim = start_shim(ShimConfig(provider_key=SecretStr(key), port=0, submit=False,
                                 kwil_url=node.url, kwil_version="v0.10",
                                 outbox_path=tmp_path / "outbox.sqlite"))
    workload = None
    try:
        from kwil_sync.ethkeys import EthereumKey

        node.deploy(EthereumKey(key).address, NAME, messages_schema("none"))
        workload = MessagesWorkload(KwilClient(node.url, version="v0.10"), NAME, user,
                                    shim.address, {})
        [post] = workload.plan(1)
        [ok] = workload.execute([[post]])
        clash = SyncedCall("post_message", [post.values[0], "again", post.values[2]])
        [failed] = workload.execute([[clash]])
        assert ok.ok and not failed.ok
        author = EthereumKey(user).address
        with ShimClient(shim.address) as client:
            for outcome in (ok, failed):  # the application saves after each transaction
                saved = client.save_action(local_db_name=NAME, action_name="post_message_sync",
                                           values=[*post.values[:2], author, post.values[2]],
                                           tx_hash=outcome.tx_hash)
                assert saved.tied and saved.state == "waiting"
            batch = client.lease(10, holder="v010")
            assert (batch.confirmation.confirmed, batch.confirmation.voided) == (1, 1)
            [record] = [SyncRecord.from_item(DataItem.parse(i.raw)) for i in batch.items]
            assert record.tx is not None and record.tx.tx_hash == ok.tx_hash
            assert record.tx.height == ok.height  # the node's height (the app sent none)
            assert record.local_dbid == NAME
    finally:
        if workload is not None:
            workload.close()
        shim.stop()
        node.stop()
