"""Commit-tied capture across a SIGKILLed shim: the calls kwild made before the kill are
in the outbox, confirmed after the restart; a transaction whose extension call met the
dead shim fails on the node, and nothing of it is ever published."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from test_shim_crash import KEY, Shim

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.records import SyncRecord
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.procs import free_port
from kwil_sync.testing.workload import MessagesWorkload, messages_schema

USER = "3c1f7d0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
T = TypeVar("T")


def with_blocks(node: KwilNodeStandIn, work: Callable[[], T]) -> T:
    """Run `work` (which waits for its transactions) while the test makes the blocks."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    while thread.is_alive():
        node.make_block()
        thread.join(0.05)
    if errors:
        raise errors[0]
    return out[0]


def test_calls_survive_a_sigkill_before_confirmation(tmp_path: Path) -> None:
    node_port = free_port()
    shim = Shim(free_port(), tmp_path / "outbox.sqlite", f"http://127.0.0.1:{node_port}")
    shim.start()
    address = f"127.0.0.1:{shim.port}"
    node = KwilNodeStandIn.start(version="v0.9", port=node_port, block_interval=0,
                                 extension_endpoints=[address])
    target = node.deploy(EthereumKey(KEY).address, "messages", messages_schema("tied"))
    workload = MessagesWorkload(KwilClient(node.url, version="v0.9"), target, USER, address,
                                {}, node_calls_extension=True)
    try:
        committed = with_blocks(node, lambda: workload.run(workload.plan(5)))
        rolled_back = with_blocks(node, workload.run_rolled_back)
        shim.kill()  # the calls are stored, none confirmed yet

        # kwild's call meets the dead shim: the action fails, so the transaction does
        post = workload.plan(1)
        dead_call = with_blocks(node, lambda: workload.execute([post]))
        assert [o.code != 0 for o in dead_call] == [True]
        assert "db_sync.save_action_tx failed" in dead_call[0].log

        shim.start()  # same outbox, same port
        with ShimClient(address) as client:
            batch = client.lease(100, holder="after-restart")
            assert (batch.confirmation.confirmed, batch.confirmation.voided) == (5, 1)
            records = [SyncRecord.from_item(DataItem.parse(i.raw)) for i in batch.items]
            assert sorted(r.tx.tx_hash for r in records if r.tx) == sorted(committed)
            assert [r.sequence for r in records] == [1, 2, 3, 4, 5]
            voided = client.calls("voided")
            assert [c.tx_hash for c in voided] == [rolled_back.tx_hash]
            published = {r.tx.tx_hash for r in records if r.tx}
            assert dead_call[0].tx_hash not in published
            assert not {c.tx_hash for c in client.calls()} & {dead_call[0].tx_hash}
            again = client.lease(100, holder="after-restart")  # nothing changes on a rerun
            assert [i.item_id for i in again.items] == [i.item_id for i in batch.items]
            assert again.confirmation.transactions == 0
    finally:
        workload.close()
        node.stop()
        shim.stop()
