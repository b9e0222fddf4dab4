"""Records in the exact 2023 format (written under Node by arbundles and ethers, as the
original extension did) parse, verify and replay; forged or unverifiable ones do not."""

import dataclasses
import json
import subprocess

import pytest

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.signers import b64url_decode
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.dbid import dbid
from kwil_sync.kwil.pipeline import NoncePipeline
from kwil_sync.kwil.values import convert_arguments
from kwil_sync.ledger import Ledger
from kwil_sync.records import SyncRecord
from kwil_sync.replay import Replayer
from kwil_sync.sources import GraphQLSource, ItemSource
from kwil_sync.testing.arlocal import node_dir
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.verify import TrustPolicy, verify_record

PROVIDER_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADMIN_KEY = "44" * 32
T0 = 1_690_000_000_000

# The 2023 example schema (schema/example.kf), as stand-in SQL.
SCHEMA_2023 = Schema(
    tables=["CREATE TABLE messages (id TEXT PRIMARY KEY, message TEXT NOT NULL, "
            "wallet TEXT NOT NULL)",
            "CREATE TABLE db_sync_history (id TEXT PRIMARY KEY, action_timestamp INTEGER "
            "NOT NULL, arweave_id TEXT NOT NULL, provider_address TEXT NOT NULL, "
            "executed_at TEXT NOT NULL)"],
    actions=[
        ActionDef("insert_message_sync", [("$id", "text"), ("$message", "text"),
                                          ("$original_caller", "text")], False,
                  "INSERT INTO messages VALUES ($id, $message, $original_caller)"),
        ActionDef("save_db_sync", [("$id", "text"), ("$action_timestamp", "int"),
                                   ("$arweave_id", "text"), ("$provider_address", "text"),
                                   ("$executed_at", "text")], False,
                  "INSERT INTO db_sync_history VALUES ($id, $action_timestamp, $arweave_id, "
                  "$provider_address, $executed_at)"),
    ])


def oracle(records: list[dict], *, anchor: bool = True, key: str = PROVIDER_KEY) -> dict:
    spec = {"eth_key": key, "local_db_name": "sync_test",
            "records": [{**r, "anchor": anchor} for r in records]}
    out = subprocess.run(["node", "oracle_legacy_record.mjs"], cwd=node_dir(),
                         input=json.dumps(spec), capture_output=True, text=True, timeout=60,
                         check=True)
    return json.loads(out.stdout)


def messages(n: int, prefix: str = "id") -> list[dict]:
    return [{"action_name": "insert_message_sync",
             "data": [["$id", f"{prefix}{i}"], ["$message", f"hello {i}"],
                      ["$original_caller", "0xCaller"]]} for i in range(1, n + 1)]


@pytest.fixture(scope="module")
def legacy() -> dict:
    made = oracle(messages(6))
    made["items"] = [DataItem.parse(b64url_decode(r["raw"])) for r in made["records"]]
    return made


def test_oracle_records_have_the_2023_shape(legacy):
    item, spec = legacy["items"][0], legacy["records"][0]
    assert item.verify() and item.id == spec["id"]
    assert [n for n, _ in item.tags] == ["Application", "Content-Type", "Original-DBID",
                                         "Local-DBID", "Local-DB-Name", "Type", "Action-Id",
                                         "Provider-Address", "Signature"]
    assert legacy["local_dbid"] == dbid(legacy["provider_address"], "sync_test")
    assert len(item.anchor or b"") == 32 and len(spec["action_id"]) == 21
    record = SyncRecord.from_item(item)
    assert record.version == 1 and record.sequence is None
    assert record.document == spec["document"].encode()
    assert record.data == (("$id", "id1"), ("$message", "hello 1"),
                           ("$original_caller", "0xCaller"))


def test_oracle_records_verify_with_their_item_signature(legacy):
    policy = TrustPolicy(legacy["original_dbid"])
    source = ItemSource(legacy["items"])
    for row, item in zip(source.rows(), legacy["items"], strict=True):
        verdict = verify_record(SyncRecord.from_parts(row, item.data), row, policy)
        assert verdict.ok, verdict.message
        assert verdict.signer == legacy["provider_address"]
        # Irys lists neither owner key nor anchor: the 2023 signature alone binds nothing
        irys = dataclasses.replace(row, owner_key=None, anchor=None,
                                   owner_address=legacy["provider_address"])
        record = SyncRecord.from_parts(irys, item.data)
        assert verify_record(record, irys, policy).reason == "item-signature-unverifiable"
        lenient = TrustPolicy(legacy["original_dbid"], allow_unverified_legacy=True)
        assert verify_record(record, irys, lenient).ok


def test_oracle_records_without_anchor_verify_from_irys_rows():
    made = oracle(messages(1), anchor=False)
    item = DataItem.parse(b64url_decode(made["records"][0]["raw"]))
    row = dataclasses.replace(ItemSource([item]).rows()[0], owner_key=None)
    verdict = verify_record(SyncRecord.from_parts(row, item.data), row,
                            TrustPolicy(made["original_dbid"]))
    assert verdict.ok, verdict.message


def test_tampered_2023_document_is_refused(legacy):
    item = legacy["items"][1]
    row = ItemSource([item]).rows()[0]
    evil = item.data.replace(b"hello 2", b"HACKED!")
    verdict = verify_record(SyncRecord.from_parts(row, evil), row,
                            TrustPolicy(legacy["original_dbid"]))
    assert verdict.reason == "bad-item-signature"


def test_2023_records_of_another_key_are_untrusted(legacy):
    other = oracle(messages(1), key="55" * 32)
    item = DataItem.parse(b64url_decode(other["records"][0]["raw"]))
    # another provider's record claiming our database: its dbid does not match
    policy = TrustPolicy(other["original_dbid"])
    assert verify_record(SyncRecord.from_item(item), None, policy).ok
    tags = [(n, legacy["original_dbid"] if n == "Original-DBID" else v) for n, v in item.tags]
    forged = DataItem.create(item.data, tags, EthereumSigner("55" * 32), anchor=item.anchor)
    verdict = verify_record(SyncRecord.from_item(forged), None,
                            TrustPolicy(legacy["original_dbid"]))
    assert verdict.reason == "untrusted-signer"


@pytest.fixture
def target_node():
    node = KwilNodeStandIn.start(version="v0.9", block_interval=0.02)
    try:
        yield node
    finally:
        node.stop()


def test_2023_records_replay_with_the_db_sync_history_convention(legacy, target_node, tmp_path):
    admin = EthereumSigner(ADMIN_KEY).address
    target = target_node.deploy(admin, "sync_test", SCHEMA_2023)
    items = legacy["items"]
    # a 2023 sync server already applied the first record and wrote its history row
    first = SyncRecord.from_item(items[0])
    with KwilClient(target_node.url) as client:
        seed = NoncePipeline(client, ADMIN_KEY, client.chain_info().chain_id, "v0.9")
        params = {a.name: a.parameters for a in client.actions(target)}
        outcomes = seed.execute([
            (target, "insert_message_sync", [convert_arguments(
                "v0.9", params["insert_message_sync"], list(first.values))]),
            (target, "save_db_sync", [convert_arguments("v0.9", params["save_db_sync"], [
                first.action_id, str(T0), items[0].id, legacy["provider_address"], "0"])]),
        ])
        assert all(o.ok for o in outcomes)
    source = ItemSource(items, timestamps=[T0 + i for i in range(len(items))], page_size=4)
    with Ledger(tmp_path / "l.sqlite") as ledger, KwilClient(target_node.url) as client:
        applier = KwilApplier(client, ADMIN_KEY, target, db_sync_history=True)
        run = Replayer(source, source, applier, ledger, TrustPolicy(legacy["original_dbid"]),
                       target_id=target)
        report = run.run()
        assert (report.applied, report.already_applied, report.quarantined) == (5, 1, {})
        rows = target_node.rows(target, "SELECT id, message FROM messages ORDER BY id")
        assert rows == [{"id": f"id{i}", "message": f"hello {i}"} for i in range(1, 7)]
        history = target_node.rows(target, "SELECT id, action_timestamp, arweave_id, "
                                           "provider_address FROM db_sync_history")
        assert len(history) == 6
        assert {h["arweave_id"] for h in history} == {i.id for i in items}
        assert history[-1]["provider_address"] == legacy["provider_address"]
        again = run.run()
        assert again.applied == 0 and again.already_applied == 6


@pytest.mark.arlocal
def test_2023_records_through_the_bundler_and_arlocal(legacy, arlocal, target_node, tmp_path):
    from kwil_sync.arweave.uploaders import IrysUploader
    from kwil_sync.testing.bundler import BundlerStandIn

    admin = EthereumSigner(ADMIN_KEY).address
    plain = oracle(messages(3, prefix="plain"), anchor=False)  # no anchor: checkable anywhere
    unanchored = [DataItem.parse(b64url_decode(r["raw"])) for r in plain["records"]]
    assert plain["original_dbid"] == legacy["original_dbid"]
    # arlocal and Irys do not report the anchors the 2023 Bundlr client added
    cases = [("gateway", False, 3, {"item-signature-unverifiable": 6}),
             ("irys", False, 3, {"item-signature-unverifiable": 6}),
             ("gateway", True, 9, {})]
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path / "b") as bundler:
        IrysUploader(bundler.url, "ethereum").upload(legacy["items"] + unanchored)
        bundler.flush()
        urls = {"gateway": arlocal.url, "irys": bundler.url}
        with KwilClient(target_node.url) as client, GatewayDataClient(arlocal.url) as docs:
            for n, (dialect, lenient, applied, quarantined) in enumerate(cases):
                target = target_node.deploy(admin, f"sync_{n}", SCHEMA_2023)
                pager = GraphQLPager(f"{urls[dialect]}/graphql", dialect)  # type: ignore[arg-type]
                policy = TrustPolicy(legacy["original_dbid"], allow_unverified_legacy=lenient)
                with Ledger(tmp_path / f"{n}.sqlite") as ledger:
                    report = Replayer(GraphQLSource(pager, legacy["original_dbid"]), docs,
                                      KwilApplier(client, ADMIN_KEY, target), ledger, policy,
                                      target_id=target).run()
                assert (report.applied, dict(report.quarantined)) == (applied, quarantined)
                count = target_node.rows(target, "SELECT COUNT(*) AS n FROM messages")
                assert count == [{"n": applied}]
