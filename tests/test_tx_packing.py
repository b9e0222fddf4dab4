"""Many records per transaction (kwil_sync.tx_packing): consecutive records of one action
go as argument sets of one transaction, in log order, within the node's size limits; a
failed packed transaction applied nothing, so it is bisected down to the failing record
and the others apply exactly once, also across a crash."""

import sqlite3

import pytest
from test_replay import (
    ADMIN,
    ADMIN_KEY,
    OWNER,
    SCHEMA,
    Chain,
    Crash,
    CrashingApplier,
    ids_in_order,
    key,
    replayer,
)

from kwil_sync.appliers import KwilApplier
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.payload import encode_action
from kwil_sync.kwil.tx import build_tx
from kwil_sync.kwil.values import convert_arguments
from kwil_sync.ledger import Ledger
from kwil_sync.sources import ItemSource
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.kwil_node_chain import Chain as NodeChain
from kwil_sync.testing.kwil_node_chain import TooLarge
from kwil_sync.tx_packing import pack_calls

T0 = 1_700_000_000_000


@pytest.fixture(params=["v0.9", "v0.10"])
def world(request, tmp_path):
    node = KwilNodeStandIn.start(version=request.param, block_interval=0.02)
    try:
        target = node.deploy(ADMIN.address, "chat", SCHEMA)
        with KwilClient(node.url) as client, Ledger(tmp_path / "ledger.sqlite") as ledger:
            yield node, target, client, ledger
    finally:
        node.stop()


class Call:
    def __init__(self, action: str, text: str, target: str = "xdb") -> None:
        self.target, self.action = target, action
        self.arguments = [convert_arguments("v0.9", [("$t", "text")], [text])]


def _transactions(world) -> int:
    """Distinct transactions the ledger saw land for the target."""
    _, target, _, ledger = world
    with sqlite3.connect(ledger.path) as db:
        [(n,)] = db.execute("SELECT COUNT(DISTINCT tx_hash) FROM actions WHERE target=? AND "
                            "state='done'", (key(target),)).fetchall()
    return int(n)


def test_packs_runs_of_one_action_in_order_within_the_limits():
    calls = [Call("a", "x")] * 5 + [Call("b", "y")] + [Call("a", "z")] * 2
    packed = pack_calls(calls, "v0.9", max_calls=3)
    assert [t.members for t in packed] == [(0, 1, 2), (3, 4), (5,), (6, 7)]
    assert all(t.payload == encode_action("v0.9", t.target, t.action, t.arguments)
               for t in packed)
    big = [Call("a", "v" * 400)] * 8
    one = len(encode_action("v0.9", "xdb", "a", big[0].arguments))
    sized = pack_calls(big, "v0.9", max_calls=50, max_payload_bytes=3 * one)
    assert [len(t.members) for t in sized] == [2, 2, 2, 2]  # halved until each fits
    assert all(len(t.payload or b"") <= 3 * one for t in sized)
    with pytest.raises(ValueError):
        pack_calls(calls, "v0.9", max_calls=0)


@pytest.mark.parametrize("version", ["v0.9", "v0.10"])
def test_the_node_refuses_a_transaction_over_its_size_limit(version):
    chain = NodeChain(version, "tiny-chain")
    chain.max_tx_bytes = 2_000
    call = Call("insert_message_sync", "x" * 3_000)
    payload = encode_action(version, "xdb", call.action, call.arguments)
    tx = build_tx(ADMIN_KEY, payload, description="", nonce=1, chain_id="tiny-chain",
                  fee="0")
    with pytest.raises(TooLarge, match="size limit"):
        chain.submit(tx)


def test_consecutive_records_share_transactions_and_apply_in_order(world):
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}", f"body {i}") for i in range(1, 26)]
    source = ItemSource(items, timestamps=[T0] * len(items), page_size=10)
    _, target, client, _ = world
    applier = KwilApplier(client, ADMIN_KEY, target, max_calls_per_tx=10)
    report = replayer(world, source, applier=applier, batch_size=25).run()
    assert (report.applied, report.failed, report.split_transactions) == (25, 0, 0)
    assert ids_in_order(world) == [f"m{i}" for i in range(1, 26)]
    # chunks of 10, 20 then the rest are read (1 page, then doubling): 10 | 10 + 5 calls
    assert _transactions(world) <= 4


def _with_a_failing_record() -> list:
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}", f"body {i}") for i in range(1, 7)]
    items.append(chain.record("m3", "again"))  # its INSERT breaks the primary key
    items += [chain.record(f"m{i}", f"body {i}") for i in range(8, 13)]
    return items


def _assert_bisected(world, report) -> None:
    _, target, _, ledger = world
    assert (report.applied, report.failed) == (11, 1)
    assert report.quarantined == {"apply-failed": 1}
    [refusal] = report.refusals
    assert refusal.reason == "apply-failed" and refusal.detail  # the node's message
    assert ids_in_order(world) == [f"m{i}" for i in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12)]
    counts = ledger.counts(key(target))
    assert (counts.done, counts.failed, counts.pending) == (11, 1, 0)


def test_a_failed_packed_transaction_is_bisected_to_the_failing_record(world):
    items = _with_a_failing_record()
    source = ItemSource(items, timestamps=[T0] * len(items), page_size=12)
    report = replayer(world, source, batch_size=12).run()
    _assert_bisected(world, report)
    assert report.split_transactions >= 3  # 12 -> 6 -> 3 -> 1


def test_a_crash_after_a_failed_packed_transaction_loses_nothing(world):
    items = _with_a_failing_record()
    source = ItemSource(items, timestamps=[T0] * len(items), page_size=12)
    _, target, client, ledger = world
    dying = CrashingApplier(client, ADMIN_KEY, target, after_results=True)
    with pytest.raises(Crash):  # the packed transaction failed; the ledger never heard
        replayer(world, source, applier=dying, batch_size=12).run()
    assert len(ledger.pending(key(target))) == 12
    report = replayer(world, source, batch_size=12).run()
    assert report.recovery is not None and len(report.recovery.released) == 12
    assert report.recovery.failed == []  # not blamed on the eleven good records
    _assert_bisected(world, report)
