"""Restore and version 3 records: provenance in the report, `until` a kwild height."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.dbid import dbid
from kwil_sync.ledger import Ledger
from kwil_sync.provenance import UntilHeight
from kwil_sync.records import TxRef, build_record
from kwil_sync.replay import Replayer
from kwil_sync.sources import ItemSource
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.verify import TrustPolicy

OWNER = EthereumSigner("55" * 32)
STRANGER = EthereumSigner("66" * 32)
ADMIN_KEY = "77" * 32
DB = dbid(OWNER.address, "chat")
T0 = 1_700_000_000_000
SCHEMA = Schema(tables=["CREATE TABLE notes (id TEXT PRIMARY KEY)"],
                actions=[ActionDef("note_sync", [("$id", "text")], False,
                                   "INSERT INTO notes VALUES ($id)")])


def records(signer: EthereumSigner, heights: list[int | None]) -> list[DataItem]:
    """One record per height (None: an untied record), sequences from 1."""
    items, prev = [], "-"
    for i, height in enumerate(heights, start=1):
        tx = None if height is None else TxRef(f"{i:064x}", height, 0)
        item = build_record(signer, original_dbid=DB, local_dbid=dbid(signer.address, "chat"),
                            local_db_name="chat", action_name="note_sync",
                            data=[("$id", f"{signer.address[:6]}-{i}")], sequence=i,
                            prev_action_id=prev, created_at_ms=T0 + i, tx=tx)
        prev = dict(item.tags)["Action-Id"]
        items.append(item)
    return items


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[KwilNodeStandIn, str, Ledger]]:
    node = KwilNodeStandIn.start(version="v0.9", block_interval=0.02)
    target = node.deploy(EthereumSigner(ADMIN_KEY).address, "chat", SCHEMA)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield node, target, ledger
    ledger.close()
    node.stop()


def run(world: tuple[KwilNodeStandIn, str, Ledger], items: list[DataItem], **kw: object):
    node, target, ledger = world
    source = ItemSource(items, page_size=2)
    client = KwilClient(node.url)
    replayer = Replayer(source, source, KwilApplier(client, ADMIN_KEY, target), ledger,
                        TrustPolicy(DB), target_id=f"standin/{target}", batch_size=3)
    return replayer.run(**kw)  # type: ignore[arg-type]


def test_restore_reports_the_transactions_it_applied(world) -> None:
    report = run(world, records(OWNER, [10, 11, None, 12]))
    assert report.applied == 4
    assert report.provenance.to_dict() == {OWNER.address: {
        "tied": 3, "untied": 1, "first_height": 10, "last_height": 12,
        "last_tx_hash": f"{4:064x}"}}
    assert report.to_dict()["provenance"][OWNER.address]["tied"] == 3


def test_until_a_height_stops_before_the_first_record_above_it(world) -> None:
    forged = records(STRANGER, [99])  # an untrusted row tagged high cannot cut the run short
    items = records(OWNER, [10, 11, 11, 12, 13])
    report = run(world, [items[0], *forged, *items[1:]], until=UntilHeight(11))
    node, target, _ = world
    assert report.reached_until and report.applied == 3
    assert [r["id"] for r in node.rows(target, "SELECT id FROM notes ORDER BY id")] == [
        f"{OWNER.address[:6]}-{i}" for i in (1, 2, 3)]
    later = run(world, items)  # the rest on the next run
    assert later.applied == 2 and later.already_applied == 0
