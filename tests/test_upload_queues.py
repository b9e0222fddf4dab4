"""One upload logic over each outbox queue: a local outbox file, and a real shim over gRPC.

`kwil_sync.upload.upload_pending` leases, uploads to the bundler stand-in and
acknowledges through the `OutboxQueue` interface; each test runs it unchanged over a
local `Outbox` and over a `ShimClient` of a running shim (whose outbox the test fills).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.uploaders import IrysUploader, UploadError
from kwil_sync.outbox import Outbox
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.upload import OutboxCorrupted, OutboxQueue, upload_pending

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SIGNER = EthereumSigner("22" * 32)
DBID = "xqueue"


@dataclass
class World:
    """The queue under test, the outbox behind it (to fill and inspect) and the bundler."""

    queue: OutboxQueue
    outbox: Outbox
    bundler: BundlerStandIn

    def save(self, count: int) -> list[str]:
        """Store `count` signed records in the outbox; their item ids, oldest first."""
        ids = []
        for n in range(count):
            action = f"action-{n}"

            def build(sequence: int, prev: str, action: str = action) -> DataItem:
                tags = [("Action-Id", action), ("Sequence", str(sequence)),
                        ("Prev-Action-Id", prev)]
                return DataItem.create(action.encode(), tags, SIGNER)

            ids.append(self.outbox.save(action_id=action, provider=SIGNER.address,
                                        original_dbid=DBID, build=build).item_id)
        return ids

    def stored_receipts(self) -> dict[str, dict[str, object] | None]:
        """Item id -> the receipt JSON the outbox keeps (None while not uploaded)."""
        with sqlite3.connect(self.outbox.path) as db:
            rows = db.execute("SELECT item_id, receipt FROM items").fetchall()
        return {item_id: json.loads(text) if text else None for item_id, text in rows}

    def uploader(self) -> IrysUploader:
        return IrysUploader(self.bundler.url, sleep=lambda _: None)


@pytest.fixture(scope="module")
def node() -> Iterator[KwilNodeStandIn]:
    standin = KwilNodeStandIn.start(version="v0.9")
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def bundler_wallet() -> ArweaveSigner:
    return ArweaveSigner.generate()  # once: an RSA key takes seconds to make


@pytest.fixture(params=["local outbox", "shim over gRPC"])
def queue_world(request: pytest.FixtureRequest, node: KwilNodeStandIn,
                bundler_wallet: ArweaveSigner, tmp_path: Path) -> Iterator[World]:
    with BundlerStandIn.start(data_dir=tmp_path / "bundler", bundle_interval=0,
                              signer=bundler_wallet) as bundler:
        if request.param == "local outbox":
            outbox = Outbox(tmp_path / "outbox.sqlite")
            try:
                yield World(outbox, outbox, bundler)
            finally:
                outbox.close()
            return
        shim = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "outbox.sqlite",
                                     kwil_url=node.url, kwil_version="v0.9",
                                     provider_key=SecretStr(KEY), submit=False))
        try:
            with ShimClient(shim.address, timeout=10) as client:
                yield World(client, shim.outbox, bundler)
        finally:
            shim.stop(0)


def test_the_same_upload_drains_each_queue_and_keeps_the_receipts(queue_world: World) -> None:
    world = queue_world
    ids = world.save(5)
    [earlier] = world.uploader().upload([DataItem.parse(world.outbox.pending(1)[0].raw)])
    assert earlier.id == ids[0]  # the bundler holds the first item already

    results = [upload_pending(world.queue, world.uploader(), holder="run", limit=2)
               for _ in range(4)]
    assert [(r.uploaded, r.already_there, r.remaining) for r in results] == [
        (2, 1, 3), (2, 0, 1), (1, 0, 0), (0, 0, 0)]
    [chain] = world.outbox.status()
    assert (chain.pending, chain.uploaded, chain.last_uploaded_id) == (0, 5, ids[-1])
    receipts = world.stored_receipts()
    endpoint = f"{world.bundler.url}/tx/ethereum"
    assert receipts[ids[0]] == {"id": ids[0], "timestamp_ms": None, "duplicate": True,
                                "endpoint": endpoint, "bundle_tx_id": None,
                                "signed_receipt": None}
    for item_id in ids[1:]:
        signed = world.bundler.store.receipt_of(item_id)
        assert signed is not None
        assert receipts[item_id] == {"id": item_id, "timestamp_ms": signed["timestamp"],
                                     "duplicate": False, "endpoint": endpoint,
                                     "bundle_tx_id": None, "signed_receipt": signed}


def test_a_refused_item_stays_pending_and_the_accepted_ones_are_acknowledged(
        queue_world: World) -> None:
    world = queue_world
    ids = world.save(3)
    world.bundler.set_fault(400, count=1)  # one of the three is refused as sent: final
    with pytest.raises(UploadError, match="HTTP 400") as caught:
        upload_pending(world.queue, world.uploader(), holder="run", limit=3)
    refused = caught.value.item_id
    assert refused in ids and len(caught.value.completed) == 2
    left = world.queue.lease(10, holder="run", lease_seconds=60)
    assert [p.item_id for p in left.items] == [refused] and left.remaining == 0
    assert [i for i, receipt in world.stored_receipts().items() if receipt is None] == [refused]

    again = upload_pending(world.queue, world.uploader(), holder="run", limit=3)
    assert (again.uploaded, again.already_there, again.remaining) == (1, 0, 0)
    assert all(world.bundler.store.receipt_of(i) is not None for i in ids)


def test_bytes_that_are_not_their_item_are_never_uploaded(queue_world: World) -> None:
    world = queue_world
    first, second = world.save(2)
    with sqlite3.connect(world.outbox.path) as db:  # the second row holds the first's bytes
        db.execute("UPDATE items SET raw = (SELECT raw FROM items WHERE item_id = ?) "
                   "WHERE item_id = ?", (first, second))
    with pytest.raises(OutboxCorrupted, match=f"{second} holds bytes of {first}"):
        upload_pending(world.queue, world.uploader(), holder="run", limit=10)
    assert world.bundler.store.receipt_of(first) is None  # nothing of the batch went out
    assert world.outbox.status()[0].pending == 2
