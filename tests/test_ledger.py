"""Ledger: intents, completions, sequence slots, quarantine; crash recovery by the rules."""

import sqlite3
from typing import Any

import pytest

from kwil_sync.kwil.errors import DuplicateTx, NonceError
from kwil_sync.kwil.rpc_results import BroadcastResult, TxStatus
from kwil_sync.ledger import (
    Ledger,
    LedgerStateError,
    SequenceSlot,
    SignedAction,
    open_ledger,
)
from kwil_sync.replay_recovery import PendingTransactions, resolve_pending

T = "xtarget"
SENDER = "0x00000000000000000000000000000000000000Aa"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):
    """The same rules on both stores."""
    where = (tmp_path / "sub" / "ledger.sqlite" if request.param == "sqlite"
             else request.getfixturevalue("postgres_url"))
    with open_ledger(where) as led:
        yield led


def signed(tx_hash: str, nonce: int) -> dict[str, Any]:
    return {"hash": tx_hash, "body": {"nonce": nonce}}


def test_a_packed_transaction_is_stored_once_and_shared_by_its_records(ledger):
    tx = signed("cafe", 4)
    ledger.intend_many(T, [SignedAction(f"a{n}", "CAFE", 4, tx, sequence=n) for n in range(3)])
    intents = ledger.pending(T)
    assert [(i.action_id, i.tx_hash, i.signed_tx) for i in intents] == [
        (f"a{n}", "cafe", tx) for n in range(3)]
    [(stored,)] = ledger.store.rows("SELECT COUNT(*) FROM actions WHERE signed_tx IS NOT NULL")
    assert stored == 1


def test_intent_then_completion(ledger):
    ledger.intend(T, "a1", "AB01", 1, signed_tx=signed("ab01", 1), tx_id="tx1",
                  provider=SENDER, sequence=1)
    [intent] = ledger.pending(T)
    assert (intent.action_id, intent.tx_hash, intent.nonce, intent.tx_id) == ("a1", "ab01", 1,
                                                                               "tx1")
    assert intent.signed_tx == signed("ab01", 1)
    assert ledger.filter_new(T, ["a1", "a2"]) == ["a2"]  # an intent is not new
    ledger.complete(T, "a1", code=0, log="", height=7)
    assert ledger.pending(T) == [] and ledger.applied(T, "a1")
    assert not ledger.applied(T, "a2") and not ledger.applied("other", "a1")
    with pytest.raises(LedgerStateError, match="already done"):
        ledger.intend(T, "a1", "cd02", 2)
    with pytest.raises(LedgerStateError, match="already done"):
        ledger.intend(T, "a1", "ab01", 1)


def test_failed_result_is_final(ledger):
    ledger.intend(T, "a1", "01", 1)
    ledger.complete(T, "a1", code=110, log="dataset not found", height=3)
    assert ledger.applied(T, "a1")
    counts = ledger.counts(T)
    assert (counts.done, counts.failed, counts.pending) == (0, 1, 0)


def test_a_re_signed_intent_keeps_the_earlier_hash(ledger):
    ledger.intend(T, "a1", "01", 1)
    ledger.intend(T, "a1", "01", 1)  # the same bytes sent again: nothing changes
    ledger.intend(T, "a1", "02", 2, signed_tx=signed("02", 2))
    [intent] = ledger.pending(T)
    assert (intent.tx_hash, intent.nonce, intent.prior_hashes) == ("02", 2, ("01",))
    ledger.release(T, "a1")
    assert ledger.pending(T) == [] and ledger.filter_new(T, ["a1"]) == ["a1"]


def test_recovery_finds_an_earlier_signature_that_landed(ledger):
    node = Node()
    ledger.intend(T, "a1", "h1", 1, signed_tx=signed("h1", 1))
    node.broadcast(signed("h1", 1))
    node.mine()
    ledger.intend(T, "a1", "h2", 2, signed_tx=signed("h2", 2))  # re-signed, never sent
    report = recover(ledger, node)
    assert report.completed == ["a1"] and node.sent == ["h1"]
    assert ledger.counts(T).done == 1


def test_intend_many_is_all_or_nothing(ledger):
    ledger.intend(T, "a2", "02", 2)
    ledger.complete(T, "a2", code=0)
    with pytest.raises(LedgerStateError, match="already done"):
        ledger.intend_many(T, [SignedAction("a1", "01", 1), SignedAction("a2", "03", 3)])
    assert ledger.pending(T) == []


def test_survives_reopen_in_wal_mode(tmp_path):
    path = tmp_path / "l.sqlite"
    with Ledger(path) as led:
        led.intend(T, "a1", "01", 1)
        led.mark_sequenced(T, [SequenceSlot(SENDER, 1, "a1")])
    with Ledger(path) as led:
        assert [i.action_id for i in led.pending(T)] == ["a1"]
        assert led.last_sequence(T, SENDER.upper().replace("0X", "0x")) == 1
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_filter_new_in_bulk_keeps_order(ledger):
    ledger.record_external(T, [f"id{i}" for i in range(0, 1200, 2)], log="db_sync_history")
    ids = [f"id{i}" for i in range(1200)]
    assert ledger.filter_new(T, ids) == [f"id{i}" for i in range(1, 1200, 2)]
    assert ledger.record_external(T, ["id0", "new"], log="x") == 1


def test_sequence_slots(ledger):
    ledger.mark_sequenced(T, [SequenceSlot(SENDER, 1, "a1"), SequenceSlot(SENDER, 2, "a2"),
                              SequenceSlot("0xBB", 1, "b1")])
    ledger.mark_sequenced(T, [SequenceSlot(SENDER, 2, "a2")])  # idempotent
    assert ledger.sequence_start(T) == {SENDER.lower(): 2, "0xbb": 1}
    assert ledger.action_at(T, SENDER, 2) == "a2" and ledger.action_at(T, SENDER, 3) is None
    assert ledger.last_sequence(T, "0xcc") == 0 and ledger.sequence_start("other") == {}


def test_quarantine_counts_repeats(ledger):
    ledger.quarantine(T, "tx1", "untrusted-signer", "0xBad is not trusted", provider="0xBad")
    ledger.quarantine(T, "tx1", "untrusted-signer", "again")
    ledger.quarantine(T, "tx2", "bad-json", "no", action_id="a2")
    entries = ledger.quarantined(T)
    assert [(e.item_id, e.reason, e.times, e.detail) for e in entries] == [
        ("tx1", "untrusted-signer", 2, "again"), ("tx2", "bad-json", 1, "no")]
    assert entries[0].first_seen <= entries[0].last_seen
    assert ledger.counts(T).quarantined == 2


def test_gaps_replace(ledger):
    ledger.set_gaps(T, {SENDER: 5.0})
    assert ledger.gaps(T) == {SENDER.lower(): 5.0}
    ledger.set_gaps(T, {})
    assert ledger.gaps(T) == {}


class Node:
    """A node's tx bookkeeping: a mempool, committed results and an account nonce."""

    def __init__(self, used: int = 0) -> None:
        self.used = used
        self.mempool: dict[str, int] = {}
        self.committed: dict[str, TxStatus] = {}
        self.sent: list[str] = []
        self.commit_after_polls: int | None = None
        self.polls = 0

    def tx_query(self, tx_hash: str) -> TxStatus | None:
        self.polls += 1
        if self.commit_after_polls is not None and self.polls >= self.commit_after_polls:
            self.mine()
        if tx_hash in self.committed:
            return self.committed[tx_hash]
        return TxStatus(-1, 0, "") if tx_hash in self.mempool else None

    def account_nonce(self, address: str, *, pending: bool = True) -> int:
        return self.used + (len(self.mempool) if pending else 0)

    def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> BroadcastResult:
        tx_hash, nonce = tx["hash"], tx["body"]["nonce"]
        if tx_hash in self.mempool:
            raise DuplicateTx("dup", tx_code=0, tx_hash=tx_hash, log="already exists")
        if nonce != self.used + len(self.mempool) + 1:
            raise NonceError("nonce", tx_code=4, tx_hash=tx_hash,
                             log=f"got {nonce}, expected {self.used + 1}")
        self.sent.append(tx_hash)
        self.mempool[tx_hash] = nonce
        return BroadcastResult(tx_hash)

    def mine(self) -> None:
        for tx_hash in sorted(self.mempool, key=self.mempool.__getitem__):
            self.committed[tx_hash] = TxStatus(10, 0, "")
            self.used += 1
        self.mempool.clear()


def recover(ledger, node, **kw):
    return resolve_pending(ledger, T, node, SENDER, sleep=lambda s: None, **kw)


def test_recovery_completes_committed_and_waits_for_the_mempool(ledger):
    node = Node()
    for n, h in ((1, "h1"), (2, "h2")):
        ledger.intend(T, f"a{n}", h, n, signed_tx=signed(h, n))
        node.broadcast(signed(h, n))
    node.committed["h1"], node.used = TxStatus(5, 0, ""), 1
    del node.mempool["h1"]
    node.commit_after_polls = 4
    report = recover(ledger, node)
    assert report.completed == ["a1", "a2"] and report.released == report.resent == []
    assert node.sent == ["h1", "h2"]  # nothing broadcast twice
    assert ledger.pending(T) == [] and ledger.applied(T, "a2")


def test_recovery_resends_the_same_bytes_when_the_nonce_is_free(ledger):
    node = Node(used=4)  # killed after the intents, before broadcast
    for n, h in ((5, "h5"), (6, "h6")):
        ledger.intend(T, f"a{n}", h, n, signed_tx=signed(h, n))
    node.commit_after_polls = 6
    report = recover(ledger, node)
    assert report.resent == ["a5", "a6"] and sorted(report.completed) == ["a5", "a6"]
    assert node.sent == ["h5", "h6"] and node.used == 6


def test_recovery_releases_only_what_can_never_land(ledger):
    node = Node(used=9)  # nonce 5 was used by another transaction of the key
    ledger.intend(T, "a5", "h5", 5, signed_tx=signed("h5", 5))
    ledger.intend(T, "a10", "h10", 10)  # no stored bytes, nonce free
    node.used = 10  # ... and now used by something else too
    report = recover(ledger, node)
    assert sorted(report.released) == ["a10", "a5"] and node.sent == []
    assert ledger.filter_new(T, ["a5", "a10"]) == ["a5", "a10"]


def test_recovery_drops_bytes_the_node_refuses(ledger):
    node = Node(used=2)
    ledger.intend(T, "a9", "h9", 9, signed_tx=signed("h9", 9))  # nonce 3..8 never signed
    report = recover(ledger, node)
    assert report.released == ["a9"] and ledger.pending(T) == []


def test_recovery_stops_when_the_mempool_does_not_drain(ledger):
    node = Node()
    ledger.intend(T, "a1", "h1", 1, signed_tx=signed("h1", 1))
    node.broadcast(signed("h1", 1))
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(PendingTransactions, match="h1"):
        recover(ledger, node, wait_s=30, clock=lambda: next(ticks))
    assert [i.action_id for i in ledger.pending(T)] == ["a1"]  # left for the next run


def test_recovery_with_nothing_pending_asks_nothing(ledger):
    node = Node()
    assert recover(ledger, node).completed == [] and node.polls == 0
