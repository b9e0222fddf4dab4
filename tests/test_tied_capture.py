"""Commit-tied capture against real components: the Kwil stand-in calls the shim's
extension Execute while it executes blocks (as kwild v0.9 does), the shim holds tied
calls until `tx_query` confirms their transaction, and records reach the Irys-style
bundler stand-in only for committed transactions."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.records import SyncRecord
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import RunningShim, start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn
from kwil_sync.testing.procs import free_port
from kwil_sync.testing.workload import MessagesWorkload, messages_schema
from kwil_sync.upload import upload_pending
from kwil_sync.verify import TrustPolicy, verify_record

PROVIDER = secrets.token_hex(32)
USER = secrets.token_hex(32)


@dataclass
class World:
    node: KwilNodeStandIn
    shim: RunningShim
    target: str
    workload: MessagesWorkload
    client: ShimClient


def start_world(tmp_path: Path, *, block_interval: float = 0.05,
                extra_actions: list[ActionDef] | None = None,
                confirm_timeout_s: float = 600.0) -> World:
    """The shim first (kwild dials it at start), then the node with it as extension."""
    port = free_port()
    shim = start_shim(ShimConfig(
        provider_key=SecretStr(PROVIDER), port=0, submit=False, kwil_version="v0.9",
        kwil_url=f"http://127.0.0.1:{port}", outbox_path=tmp_path / "outbox.sqlite",
        confirm_timeout_s=confirm_timeout_s))
    node = KwilNodeStandIn.start(version="v0.9", port=port, block_interval=block_interval,
                                 extension_endpoints=[shim.address])
    schema = messages_schema("tied")
    schema.actions.extend(extra_actions or [])
    target = node.deploy(EthereumKey(PROVIDER).address, "messages", schema)
    workload = MessagesWorkload(KwilClient(node.url, version="v0.9"), target, USER,
                                shim.address, {}, node_calls_extension=True)
    return World(node, shim, target, workload, ShimClient(shim.address))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = start_world(tmp_path)
    yield w
    w.client.close()
    w.workload.close()
    w.node.stop()
    w.shim.stop()


def records_of(items: list[bytes]) -> list[SyncRecord]:
    return [SyncRecord.from_item(DataItem.parse(raw)) for raw in items]


def test_a_failed_later_argument_set_voids_the_call_made_for_the_first(world: World) -> None:
    hashes = world.workload.run(world.workload.plan(5))
    calls_before = world.node.chain.extensions.calls  # type: ignore[union-attr]
    failed = world.workload.run_rolled_back()
    assert failed.code != 0 and "UNIQUE" in failed.log
    # kwild made the call for the first set before the second failed
    assert world.node.chain.extensions.calls == calls_before + 1  # type: ignore[union-attr]
    assert world.node.rows(world.target, "SELECT count(*) AS n FROM messages")[0]["n"] == 5

    batch = world.client.lease(100, holder="t")
    assert (batch.confirmation.confirmed, batch.confirmation.voided) == (5, 1)
    assert batch.confirmation.transactions == 6  # one tx_query per transaction
    records = records_of([i.raw for i in batch.items])
    assert [r.tx.tx_hash for r in records if r.tx] == hashes
    assert [r.sequence for r in records] == [1, 2, 3, 4, 5]  # no gap for the voided call
    policy = TrustPolicy(world.target)
    assert all(verify_record(r, None, policy).ok for r in records)
    [voided] = world.client.calls("voided")
    assert voided.tx_hash == failed.tx_hash and voided.code == failed.code
    assert "UNIQUE" in voided.log and voided.item_id == ""
    [status] = world.client.status(world.target)
    assert (status.voided, status.untied, status.waiting, status.pending) == (1, 0, 0, 5)


def test_a_failed_statement_after_the_call_voids_it(tmp_path: Path) -> None:
    twice = ActionDef("post_twice", [("$id", "int"), ("$body", "text")], True,
                      "INSERT INTO messages VALUES ($id, $body, @caller, 1); "
                      "$r = db_sync.save_action_tx(@txid, @height, 'post_message_sync', $id, "
                      "$body, @caller, 1); INSERT INTO messages VALUES ($id, $body, @caller, 1)")
    w = start_world(tmp_path, extra_actions=[twice])
    try:
        from kwil_sync.kwil.pipeline import NoncePipeline
        from kwil_sync.kwil.values import convert_arguments

        client = KwilClient(w.node.url, version="v0.9")
        pipeline = NoncePipeline(client, USER, client.chain_info().chain_id)
        args = convert_arguments("v0.9", [("$id", "int"), ("$body", "text")], ["9", "x"])
        [outcome] = pipeline.execute([(w.target, "post_twice", [args])])
        assert outcome.code != 0
        assert [c.state for c in w.client.calls()] == ["waiting"]  # the call was made
        batch = w.client.lease(10, holder="t")
        assert (batch.items, batch.confirmation.voided) == ([], 1)
        assert w.node.rows(w.target, "SELECT * FROM messages") == []
    finally:
        w.client.close()
        w.workload.close()
        w.node.stop()
        w.shim.stop()


def test_a_replayed_block_makes_repeated_calls_that_become_one_record(tmp_path: Path) -> None:
    w = start_world(tmp_path, block_interval=0)  # blocks only when the test makes them
    try:
        import threading

        done: list[str] = []
        sender = threading.Thread(target=lambda: done.extend(w.workload.run(
            w.workload.plan(3))))
        sender.start()
        hub = w.node.chain.extensions
        assert hub is not None
        while not done:
            if w.node.make_block(replays=2):  # executed three times, committed once
                assert hub.calls % 3 == 0
            sender.join(0.05)
        sender.join()
        assert hub.calls == 9
        batch = w.client.lease(10, holder="t")
        records = records_of([i.raw for i in batch.items])
        assert len(records) == 3 and batch.confirmation.confirmed == 3
        assert sorted(r.tx.tx_hash for r in records if r.tx) == sorted(done)
        heights = {h: w.workload.client.tx_query(h) for h in done}
        assert all(r.tx and heights[r.tx.tx_hash].height == r.tx.height  # type: ignore[union-attr]
                   for r in records)
    finally:
        w.client.close()
        w.workload.close()
        w.node.stop()
        w.shim.stop()


def test_a_node_syncing_from_genesis_repeats_every_call_and_adds_no_record(
        world: World) -> None:
    world.workload.run(world.workload.plan(6))
    world.workload.run_rolled_back()
    first = world.client.lease(100, holder="t")
    rows = world.node.rows(world.target, "SELECT * FROM messages ORDER BY id")
    hub = world.node.chain.extensions
    assert hub is not None and len(first.items) == 6
    before = hub.calls
    assert world.node.replay_chain() == 7  # same results, or it raises
    assert hub.calls == 2 * before  # every call made again, the rolled-back one too
    assert world.node.rows(world.target, "SELECT * FROM messages ORDER BY id") == rows
    again = world.client.lease(100, holder="t")
    assert [i.item_id for i in again.items] == [i.item_id for i in first.items]
    assert again.confirmation.transactions == 0  # nothing new to confirm
    assert [c.state for c in world.client.calls()].count("voided") == 1


def test_the_node_down_during_confirmation_uploads_nothing_until_it_answers(
        world: World) -> None:
    world.workload.run(world.workload.plan(4))
    world.node.go_down()
    batch = world.client.lease(10, holder="t")
    assert batch.items == [] and "did not answer" in batch.confirmation.node_error
    assert [c.state for c in world.client.calls()] == ["waiting"] * 4
    world.node.come_up()
    batch = world.client.lease(10, holder="t")
    assert batch.confirmation.confirmed == 4 and len(batch.items) == 4


def test_a_slow_node_is_asked_within_the_pass_budget_and_the_rest_waits(
        world: World) -> None:
    from kwil_sync.confirm import Confirmer

    world.workload.run(world.workload.plan(5))
    confirmer = Confirmer(world.shim.outbox, world.shim.client.tx_query,
                          world.shim.service.build_tied, budget_s=0.2)
    world.node.set_delay(0.15)
    first = confirmer.run_pass()
    assert 1 <= first.transactions < 5 and first.confirmed == first.transactions
    world.node.set_delay(0)
    rest = confirmer.run_pass()
    assert first.confirmed + rest.confirmed == 5
    assert [i.sequence for i in world.shim.outbox.pending(10)] == [1, 2, 3, 4, 5]


def test_only_committed_records_reach_the_bundler(world: World, tmp_path: Path) -> None:
    committed = world.workload.run(world.workload.plan(6))
    failed = world.workload.run_rolled_back()
    bundler = BundlerStandIn.start(data_dir=tmp_path / "bundler")  # Irys side only
    try:
        total = 0
        while (result := upload_pending(world.client, IrysUploader(bundler.url), holder="u",
                                        limit=4)).uploaded:
            total += result.uploaded
        assert total == 6
        pager = GraphQLPager(f"{bundler.url}/graphql", "irys")
        published = [dict(r.tags) for r in pager.records({"Original-DBID": [world.target]})]
        assert sorted(t["Kwil-Tx-Hash"] for t in published) == sorted(committed)
        assert failed.tx_hash not in {t["Kwil-Tx-Hash"] for t in published}
        assert {t["Sync-Version"] for t in published} == {"3"}
    finally:
        bundler.stop()


def test_a_transaction_the_node_never_saw_is_reported_unconfirmed(tmp_path: Path) -> None:
    w = start_world(tmp_path, confirm_timeout_s=0.0)
    try:
        saved = w.client.save_action(local_db_name="messages", action_name="post_message_sync",
                                     values=["1", "ghost", EthereumKey(USER).address, "1"],
                                     tx_hash="ab" * 32, height=3)
        assert saved.tied and saved.state == "waiting" and saved.item_id == ""
        batch = w.client.lease(10, holder="t")
        assert batch.items == [] and batch.confirmation.unconfirmed == 1
        [status] = w.client.status()
        assert (status.unconfirmed, status.pending) == (1, 0)
    finally:
        w.client.close()
        w.workload.close()
        w.node.stop()
        w.shim.stop()
