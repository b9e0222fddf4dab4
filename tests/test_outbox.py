"""The shim's outbox: gap-free sequences, dedup by action id, leases, acks, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.outbox import FIRST_PREV_ACTION_ID, Outbox

KEY = "11" * 32
SIGNER = EthereumSigner(KEY)
DBID = "xoriginal"


def builder(action_id: str, calls: list[tuple[int, str]] | None = None):
    def build(sequence: int, prev: str) -> DataItem:
        if calls is not None:
            calls.append((sequence, prev))
        tags = [("Action-Id", action_id), ("Sequence", str(sequence)), ("Prev-Action-Id", prev)]
        return DataItem.create(action_id.encode(), tags, SIGNER)
    return build


def save(outbox: Outbox, action_id: str, dbid: str = DBID):
    return outbox.save(action_id=action_id, provider=SIGNER.address, original_dbid=dbid,
                       build=builder(action_id))


@pytest.fixture
def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "state" / "outbox.sqlite")
    yield box
    box.close()


def test_sequences_chain_and_repeats_assign_nothing(outbox: Outbox) -> None:
    first, second = save(outbox, "a1"), save(outbox, "a2")
    assert (first.sequence, second.sequence) == (1, 2)
    assert not first.repeated
    raw = {p.action_id: DataItem.parse(p.raw) for p in outbox.pending(10)}
    assert raw["a1"].tag("Prev-Action-Id") == FIRST_PREV_ACTION_ID
    assert raw["a2"].tag("Prev-Action-Id") == "a1"
    calls: list[tuple[int, str]] = []
    again = outbox.save(action_id="a1", provider=SIGNER.address, original_dbid=DBID,
                        build=builder("a1", calls))
    assert again.repeated and again.item_id == first.item_id and again.sequence == 1
    assert calls == []  # the stored item answers; nothing is rebuilt or re-signed
    assert save(outbox, "a3").sequence == 3


def test_chains_are_per_database(outbox: Outbox) -> None:
    assert save(outbox, "a1", "x1").sequence == 1
    assert save(outbox, "b1", "x2").sequence == 1
    assert save(outbox, "a2", "x1").sequence == 2


def test_a_failing_build_stores_nothing_and_leaves_no_gap(outbox: Outbox) -> None:
    save(outbox, "a1")

    def broken(sequence: int, prev: str) -> DataItem:
        raise ValueError("document too large")

    with pytest.raises(ValueError, match="too large"):
        outbox.save(action_id="bad", provider=SIGNER.address, original_dbid=DBID, build=broken)
    assert outbox.get("bad") is None
    assert save(outbox, "a2").sequence == 2
    assert outbox.pending_count() == 2


def test_concurrent_saves_get_distinct_contiguous_sequences(outbox: Outbox) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            stored = save(outbox, f"w{n}-{i % 20}")  # 5 repeats per worker
            with lock:
                results.append(stored.sequence)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(results)) == list(range(1, 161))
    [status] = outbox.status()
    assert (status.sequence, status.pending) == (160, 160)


def test_leases_split_work_between_holders_and_return_to_their_holder(outbox: Outbox) -> None:
    for i in range(5):
        save(outbox, f"a{i}")
    first = outbox.pending(3, holder="run-1")
    second = outbox.pending(3, holder="run-2")
    assert [p.sequence for p in first] == [1, 2, 3]
    assert [p.sequence for p in second] == [4, 5]
    assert [p.item_id for p in outbox.pending(3, holder="run-1")] == [p.item_id for p in first]
    assert outbox.pending(3, holder="run-3") == []
    expired = outbox.pending(3, holder="run-1", lease_seconds=-1)  # let run-1's lease lapse
    assert outbox.pending(2, holder="run-3") == [first[0], first[1]] == expired[:2]


def test_ack_is_idempotent_reports_unknown_ids_and_feeds_status(outbox: Outbox) -> None:
    items = [save(outbox, f"a{i}") for i in range(3)]
    result = outbox.ack([items[0].item_id, items[1].item_id, "nope"],
                        {items[0].item_id: '{"id": "x"}'})
    assert (result.acknowledged, result.unknown_ids) == (2, ["nope"])
    assert outbox.ack([items[0].item_id]).acknowledged == 1
    assert [p.item_id for p in outbox.pending(10)] == [items[2].item_id]
    [status] = outbox.status(DBID)
    assert (status.pending, status.uploaded, status.sequence) == (1, 2, 3)
    assert status.last_uploaded_id == items[1].item_id
    assert status.last_action_id == "a2"
    assert outbox.status("another") == []


def test_the_file_is_wal_and_reopens_with_everything(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    stored = save(box, "a1")
    box.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = Outbox(path)
    assert again.get("a1") == stored.__class__(**{**stored.__dict__, "repeated": True})
    assert save(again, "a2").sequence == 2
    again.close()


def test_every_answered_save_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_outbox import Outbox, save
        box = Outbox({str(path)!r})
        for i in range(100000):
            stored = save(box, f"k{{i}}")
            print(stored.item_id, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            cwd=Path(__file__).parents[1])
    assert proc.stdout is not None
    answered = [proc.stdout.readline().decode().strip() for _ in range(300)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    box = Outbox(path)
    held = {p.item_id: p.sequence for p in box.pending(100000)}
    assert set(answered) <= set(held)
    assert sorted(held.values()) == list(range(1, len(held) + 1))  # no gap, no repeat
    box.close()
