"""The consistent point: the source's last published record (read from real signed
records) against the replica's ledger position (a real ledger), and what verification
does when either moves: rows written on the source after the point are not drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_records import Provider, messages_calls, sign_chain

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.ledger import Ledger, SequenceSlot
from kwil_sync.replica import LogPoint, QueryNode, Settle, published_point, verify_replica
from kwil_sync.sources import ItemSource, Start
from kwil_sync.testing.kwil_node import KwilNodeStandIn, Schema

A = Provider("a1" * 32)  # the source's provider
C = Provider("c3" * 32)  # another provider writing to the same log
LEDGER_KEY = "kwil-standin/replica"
TABLE = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"


def _forged(sequence: int) -> DataItem:
    """A record naming A as its provider, signed by someone else."""
    genuine = sign_chain(A, messages_calls(1, A.address))[0]
    tags = [(n, str(sequence) if n == "Sequence" else v) for n, v in genuine.tags]
    return DataItem.create(bytes(genuine.data), tags, EthereumSigner("f0" * 32))


def test_the_published_point_is_the_providers_highest_signed_sequence() -> None:
    log = sign_chain(A, messages_calls(5, A.address)) + \
        sign_chain(C, messages_calls(3, C.address), original_dbid=A.dbid)
    untagged = DataItem.create(bytes(log[0].data), [(n, v) for n, v in log[0].tags
                                                    if n != "Sequence"], A.signer)
    source = ItemSource([*log, _forged(99), untagged])
    point = published_point(source, providers={A.address})
    assert point.to_dict() == {A.address.lower(): 5}
    both = published_point(source, providers={A.address, C.address})
    assert both.to_dict() == {A.address.lower(): 5, C.address.lower(): 3}
    # Records before `start` are not read; what the replica applied stands for them.
    later = published_point(source, providers={A.address}, start=Start(after="5"),
                            known=LogPoint({A.address.lower(): 4}))
    assert later.to_dict() == {A.address.lower(): 4}


class World:
    """Source and replica stand-ins, the source's log, and the replica's ledger."""

    def __init__(self, tmp: Path) -> None:
        self.nodes = [KwilNodeStandIn.start(version="v0.10", block_interval=0)
                      for _ in range(2)]
        for node in self.nodes:
            node.deploy(A.address, "notes", Schema([TABLE]))
        self.log = ItemSource(sign_chain(A, messages_calls(5, A.address)))
        self.ledger = Ledger(tmp / "ledger.sqlite")
        self.applied(5)
        for side in (0, 1):
            self.write(side, "INSERT INTO notes VALUES (?, ?)", [(i, f"n{i}") for i in range(50)])
        self.on_position: Any = None

    def write(self, side: int, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        conn = self.nodes[side].chain.databases["notes"].conn
        conn.executemany(sql, rows) if rows is not None else conn.execute(sql)

    def publish(self, count: int = 1) -> None:
        first = len(self.log.items) + 1
        items = sign_chain(A, messages_calls(count, A.address, seed=first),
                           first_sequence=first,
                           prev_action_id=self.log.items[-1].tag("Action-Id") or "")
        self.log.items += items
        self.log.timestamps += [int(item.tag("Created-At") or 0) for item in items]

    def applied(self, upto: int) -> None:
        self.ledger.mark_sequenced(LEDGER_KEY, [SequenceSlot(A.address, n, f"action-{n}")
                                                for n in range(1, upto + 1)])

    def settle(self, **options: Any) -> Settle:
        def published() -> LogPoint:
            return published_point(self.log, providers={A.address})

        def replica_position() -> LogPoint:
            if self.on_position is not None:
                self.on_position()
            return LogPoint(self.ledger.sequence_start(LEDGER_KEY)).only({A.address})

        return Settle(published, replica_position, **{"catch_up_s": 2.0, "settle_s": 0.05,
                                                      **options})

    def verify(self, **options: Any) -> Any:
        source, replica = (QueryNode(n.url, "notes") for n in self.nodes)
        return verify_replica(source, replica, settle=self.settle(**options))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    for node in made.nodes:
        node.stop()
    made.ledger.close()


def test_level_copies_are_verified_at_the_point(world: World) -> None:
    report = world.verify()
    assert report.status == "verified"
    assert report.point == report.replica_position == {A.address.lower(): 5}


def test_a_replica_behind_the_point_is_not_compared(world: World) -> None:
    world.publish(2)
    report = world.verify(catch_up_s=0.3)
    assert report.status == "unverified" and not report.tables
    assert "behind" in report.notes[0] and "run follow" in report.notes[0]


def test_a_write_published_while_comparing_is_not_drift_once_the_replica_follows(
        world: World) -> None:
    calls = {"n": 0}

    def concurrent_source_and_follow() -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the point is read: the source writes and publishes after it
            world.write(0, "INSERT INTO notes VALUES (500, 'after the point')")
            world.publish()
        elif len(world.log.items) == 6 and world.ledger.last_sequence(LEDGER_KEY,
                                                                      A.address) == 5:
            world.write(1, "INSERT INTO notes VALUES (500, 'after the point')")  # follow
            world.applied(6)

    world.on_position = concurrent_source_and_follow
    report = world.verify()
    assert report.status == "verified", report.to_dict()
    assert report.rounds == 2 and report.point == {A.address.lower(): 6}


def test_a_difference_that_holds_still_is_drift(world: World) -> None:
    world.write(1, "UPDATE notes SET body = 'edited behind our back' WHERE id = 7")
    report = world.verify()
    assert report.status == "drift" and report.rounds == 1
    assert report.tables[0].different == [[7]]


def test_a_source_that_keeps_publishing_leaves_it_unverified(world: World) -> None:
    world.write(1, "UPDATE notes SET body = 'edited' WHERE id = 8")

    def busy_source() -> None:  # every read finds one more record, applied at once
        world.publish()
        world.applied(len(world.log.items))

    world.on_position = busy_source
    report = world.verify(max_rounds=2)
    assert report.status == "unverified"
    assert "kept publishing" in report.notes[-1]
    assert report.tables[0].different == [[8]]  # reported, but not as proven drift
