"""The nonce pipeline applies actions in order, once each, through refusals and outages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import build_tx, dbid, encode_action
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.errors import NodeUnavailable, WrongChainId
from kwil_sync.kwil.pipeline import NoncePipeline, PreparedTx, TxOutcome
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema

KEY = "f1aa5a7966c3863ccde3047f6a1e266cdc0c76b399e256b8fede92b1c69e4f4e"
OWNER = EthereumKey(KEY).address
CHAIN = "pipeline-test"
SCHEMA = Schema(
    ["CREATE TABLE log (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER UNIQUE, body TEXT)"],
    [ActionDef("append", [("$id", "int8"), ("$body", "text")], True,
               "INSERT INTO log (id, body) VALUES ($id, $body)")],
)


@pytest.fixture(params=["v0.9", "v0.10"])
def node(request: pytest.FixtureRequest) -> Iterator[KwilNodeStandIn]:
    with KwilNodeStandIn.start(version=request.param, chain_id=CHAIN,
                               block_interval=0.02) as n:
        n.deploy(OWNER, "logdb", SCHEMA)
        yield n


def target(node: KwilNodeStandIn) -> str:
    return dbid(OWNER, "logdb") if node.version == "v0.9" else "logdb"


def calls(node: KwilNodeStandIn, ids: range | list[int]) -> list[tuple[str, str, list[Any]]]:
    int_type = "int" if node.version == "v0.9" else "int8"
    return [(target(node), "append", [[{"type": int_type, "value": i},
                                       {"type": "text", "value": f"entry {i}"}]]) for i in ids]


def applied_ids(node: KwilNodeStandIn) -> list[int]:
    return [row["id"] for row in node.rows(target(node), "SELECT id FROM log ORDER BY seq")]


class HookedClient(KwilClient):
    """Runs `hook(n)` before the n-th broadcast (counted from 0)."""

    def __init__(self, url: str, hook: Any) -> None:
        super().__init__(url)
        self.hook, self.sent = hook, 0

    def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> Any:
        self.hook(self.sent)
        self.sent += 1
        return super().broadcast(tx, sync)


def pipeline(node: KwilNodeStandIn, hook: Any = None, **options: Any) -> NoncePipeline:
    client = KwilClient(node.url) if hook is None else HookedClient(node.url, hook)
    return NoncePipeline(client, KEY, CHAIN, node.version, **options)


def test_applies_in_order_and_reports_failures_without_stopping(node):
    batch = calls(node, list(range(60)) + [5] + list(range(60, 120)))  # index 60 repeats id 5
    batch.insert(30, (target(node), "append", [[{"type": "bool", "value": "no"}]]))
    seen_before_broadcast: list[bool] = []
    groups: list[list[PreparedTx]] = []

    def on_signed(group: list[PreparedTx]) -> None:
        groups.append(group)
        seen_before_broadcast.extend(node.chain.lookup(s.tx_hash) is not None for s in group)

    outcomes = pipeline(node, window=16).execute(batch, on_signed=on_signed)
    assert [o.index for o in outcomes] == list(range(len(batch)))
    assert outcomes[30] == TxOutcome(30, "", 1, outcomes[30].log, None)  # did not encode
    assert "bool" in outcomes[30].log
    duplicate = outcomes[61]
    assert duplicate.height is not None and duplicate.code != 0 and "UNIQUE" in duplicate.log
    assert all(o.ok for i, o in enumerate(outcomes) if i not in (30, 61))
    heights = [o.height for o in outcomes if o.height is not None]
    assert heights == sorted(heights)  # nonces in order, so blocks in order
    assert applied_ids(node) == list(range(120))
    assert len(seen_before_broadcast) == len(batch) - 1 and not any(seen_before_broadcast)
    assert len(groups[0]) == 16 and len(groups) < len(batch) - 1  # signed ahead, in groups
    nonces = [s.nonce for g in groups for s in g]
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))


def test_recovers_from_a_nonce_another_writer_took_mid_window(node):
    other = KwilClient(node.url)
    signed: list[tuple[int, str]] = []

    def take_a_nonce(sent: int) -> None:
        if sent == 10:  # take the nonce index 10 is about to use
            nonce = other.account_nonce(OWNER) + 1
            payload = encode_action(node.version, target(node), "append",
                                    calls(node, [999])[0][2])
            other.broadcast(build_tx(KEY, payload, description="other writer", fee="0",
                                     nonce=nonce, chain_id=CHAIN))

    def on_signed(group: list[PreparedTx]) -> None:
        signed.extend((s.index, s.tx_hash) for s in group)

    outcomes = pipeline(node, take_a_nonce, window=8).execute(calls(node, range(30)),
                                                              on_signed=on_signed)
    assert all(o.ok for o in outcomes)
    assert applied_ids(node) == list(range(10)) + [999] + list(range(10, 30))
    resigned = [digest for index, digest in signed if index == 10]
    assert len(resigned) == 2 and outcomes[10].tx_hash == resigned[1]
    assert node.chain.lookup(resigned[0]) is None  # the first signature never ran


def test_recovers_from_the_node_being_down_briefly(node):
    def outage(sent: int) -> None:
        if sent == 20:
            node.go_down()
            threading.Timer(0.4, node.come_up).start()

    outcomes = pipeline(node, outage, window=16, retry_delay=0.05).execute(
        calls(node, range(50)))
    assert all(o.ok for o in outcomes)
    assert applied_ids(node) == list(range(50))


def test_sends_again_what_a_restarted_node_forgot(node):
    node.block_interval = 0  # the block thread ends: blocks only when this test makes them
    lost: list[int] = []
    done = threading.Event()

    def blocks() -> None:
        while not done.wait(0.02):
            node.make_block()

    maker = threading.Thread(target=blocks)

    def restart(sent: int) -> None:
        if sent == 5 and not lost:
            node.make_block()  # indexes 0..4 land
        elif sent == 12 and not lost:
            lost.append(node.restart())  # a restarted kwild forgets its mempool
            maker.start()

    try:
        outcomes = pipeline(node, restart, window=32).execute(calls(node, range(40)))
    finally:
        done.set()
        if maker.is_alive():
            maker.join()
    assert lost == [7]  # indexes 5..11 were pending when the node restarted
    assert all(o.ok for o in outcomes)
    assert applied_ids(node) == list(range(40))


def test_retries_rejected_broadcasts(node):
    node.reject_broadcasts(3)
    outcomes = pipeline(node, retry_delay=0.02).execute(calls(node, range(10)))
    assert all(o.ok for o in outcomes) and applied_ids(node) == list(range(10))


def test_gives_up_when_the_node_stays_down(node):
    def outage(sent: int) -> None:
        if sent == 3:
            node.go_down()

    with pytest.raises(NodeUnavailable, match="is kwild running"):
        pipeline(node, outage, retries=2, retry_delay=0.02).execute(calls(node, range(10)))
    node.come_up()


def test_wrong_chain_id_is_raised_not_reported(node):
    wrong = NoncePipeline(KwilClient(node.url), KEY, "some-other-chain", node.version)
    with pytest.raises(WrongChainId):
        wrong.execute(calls(node, range(3)))
    assert applied_ids(node) == []
