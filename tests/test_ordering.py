"""Sequencer: per-provider order, gap hold and timeout, duplicates, rewinds and forks."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kwil_sync.ordering import Sequencer
from kwil_sync.records import ItemProof, SyncRecord

A = "0x00000000000000000000000000000000000000Aa"
B = "0x00000000000000000000000000000000000000bB"
PROOF = ItemProof(3, None, None, None, None)


def rec(provider: str, seq: int | None, ts: int, aid: str | None = None,
        prev: str | None = None) -> SyncRecord:
    aid = aid or f"{provider[-2:]}-{seq if seq is not None else ts}"
    if seq is not None and prev is None:
        prev = "-" if seq == 1 else f"{provider[-2:]}-{seq - 1}"
    return SyncRecord(tx_id=f"tx-{aid}-{ts}", version=1 if seq is None else 2, tags=(),
                      original_dbid="xdb", local_dbid="xdb", local_db_name="db",
                      action_id=aid, provider_address=provider, signature="0x",
                      action_name="a", data=(), document=b"", timestamp_ms=ts, proof=PROOF,
                      sequence=seq, prev_action_id=prev, payload_sha256=None,
                      created_at_ms=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ids(records) -> list[str]:
    return [r.action_id for r in records]


def test_shuffled_input_comes_out_in_sequence_order():
    records = [rec(A, n, 100 + n) for n in range(1, 9)]
    random.Random(4).shuffle(records)
    seq = Sequencer()
    seq.feed(records)
    out = seq.drain()
    assert ids(out.ready) == [f"Aa-{n}" for n in range(1, 9)]
    assert not out.quarantined and not out.duplicates and not seq.held()
    assert seq.last_sequence == {A.lower(): 8}


def test_a_gap_holds_later_records_until_it_closes():
    seq = Sequencer(gap_timeout_s=60, clock=Clock())
    seq.feed([rec(A, 1, 1), rec(A, 3, 3), rec(A, 4, 4)])
    assert ids(seq.drain().ready) == ["Aa-1"]
    assert ids(seq.held()) == ["Aa-3", "Aa-4"]
    gap = seq.open_gaps()[A.lower()]
    assert (gap.expected, gap.held_from, gap.held) == (2, 3, 2)
    seq.feed([rec(A, 2, 9)])
    assert ids(seq.drain().ready) == ["Aa-2", "Aa-3", "Aa-4"]
    assert seq.open_gaps() == {}


def test_a_gap_that_times_out_quarantines_and_never_applies_out_of_order():
    clock = Clock()
    seq = Sequencer(gap_timeout_s=60, clock=clock)
    seq.feed([rec(A, 1, 1), rec(A, 3, 3), rec(B, 1, 2)])
    assert ids(seq.drain().ready) == ["Aa-1", "bB-1"]
    clock.now += 59
    assert seq.drain().quarantined == []
    clock.now += 1
    out = seq.drain()
    assert [(q.record.action_id, q.reason) for q in out.quarantined] == [("Aa-3", "sequence-gap")]
    assert "sequence 2 to 2" in out.quarantined[0].detail
    assert [(g.provider, g.expected, g.held_from) for g in out.gaps] == [(A.lower(), 2, 3)]
    seq.feed([rec(A, 4, 4)])  # still behind the gap: held again, never released
    assert seq.drain().ready == [] and ids(seq.held()) == ["Aa-4"]
    seq.feed([rec(A, 2, 5)])  # the missing record arrives late
    assert ids(seq.drain().ready) == ["Aa-2"]  # 3 was quarantined, so 4 waits on it


def test_gap_age_survives_a_restart():
    clock = Clock()
    seq = Sequencer({A: 1}, gap_timeout_s=60, gap_opened={A: clock.now - 61}, clock=clock)
    seq.feed([rec(A, 3, 3)])
    assert [q.reason for q in seq.drain().quarantined] == ["sequence-gap"]


def test_repeated_action_id_collapses_and_still_fills_its_slot():
    seq = Sequencer()
    seq.feed([rec(A, 1, 10, aid="same"), rec(B, 1, 20, aid="same"),
              rec(B, 2, 30, prev="same")])
    out = seq.drain()
    assert ids(out.ready) == ["same", "bB-2"]
    assert [(r.provider_address, r.action_id) for r in out.duplicates] == [(B, "same")]
    seq.feed([rec(A, 1, 10, aid="same")])  # re-read later (follow's look-back)
    assert ids(seq.drain().duplicates) == ["same"]


def test_rewinds_are_quarantined_and_rereads_are_duplicates():
    history = {(A.lower(), 2): "Aa-2", (A.lower(), 3): "Aa-3"}
    seq = Sequencer({A: 3}, history=lambda p, n: history.get((p, n)))
    seq.feed([rec(A, 2, 2), rec(A, 3, 3, aid="evil"), rec(A, 4, 4, prev="Aa-3")])
    out = seq.drain()
    assert ids(out.duplicates) == ["Aa-2"]
    assert [(q.record.action_id, q.reason) for q in out.quarantined] == \
        [("evil", "sequence-rewind")]
    assert ids(out.ready) == ["Aa-4"]


def test_two_records_for_one_future_slot():
    seq = Sequencer()
    seq.feed([rec(A, 2, 5, aid="second", prev="zzz"), rec(A, 2, 4, aid="first"),
              rec(A, 1, 1)])
    out = seq.drain()
    assert ids(out.ready) == ["Aa-1", "first"]  # "second" has the wrong Prev-Action-Id
    assert {(q.record.action_id, q.reason) for q in out.quarantined} == \
        {("second", "chain-mismatch")}
    seq = Sequencer()
    seq.feed([rec(A, 1, 1), rec(A, 2, 2), rec(A, 2, 3, aid="other", prev="Aa-1")])
    out = seq.drain()
    assert ids(out.ready) == ["Aa-1", "Aa-2"]
    assert [(q.record.action_id, q.reason) for q in out.quarantined] == \
        [("other", "sequence-rewind")]


def test_fork_leaves_the_slot_open():
    seq = Sequencer(gap_timeout_s=10, clock=Clock())
    seq.feed([rec(A, 1, 1), rec(A, 2, 2, prev="somewhere-else"), rec(A, 3, 3)])
    out = seq.drain()
    assert ids(out.ready) == ["Aa-1"]
    assert [q.reason for q in out.quarantined] == ["chain-mismatch"]
    assert ids(seq.held()) == ["Aa-3"]
    seq.feed([rec(A, 1, 1, aid="x", prev="nope")])
    assert [q.reason for q in seq.drain().quarantined] == ["sequence-rewind"]


def test_legacy_records_pass_through_by_timestamp():
    seq = Sequencer()
    seq.feed([rec(B, None, 30, "n3"), rec(A, None, 10, "n1"), rec(A, None, 20, "n2"),
              rec(A, None, 20, "n2")])
    out = seq.drain()
    assert ids(out.ready) == ["n1", "n2", "n3"] and ids(out.duplicates) == ["n2"]


def test_providers_merge_by_key_without_reordering_one_provider():
    seq = Sequencer()
    # A's retried upload of sequence 1 landed after its sequence 2
    seq.feed([rec(A, 2, 10), rec(A, 1, 50), rec(B, 1, 20), rec(B, 2, 60)])
    assert ids(seq.drain().ready) == ["bB-1", "Aa-1", "Aa-2", "bB-2"]


def test_finish_quarantines_or_keeps_what_is_held():
    def fed() -> Sequencer:
        s = Sequencer()
        s.feed([rec(A, 1, 1), rec(A, 3, 3)])
        return s

    out = fed().finish(quarantine_held=True)
    assert ids(out.ready) == ["Aa-1"] and [q.reason for q in out.quarantined] == ["sequence-gap"]
    assert [g.expected for g in out.gaps] == [2]
    keeper = fed()
    out = keeper.finish(quarantine_held=False)
    assert out.quarantined == [] and ids(keeper.held()) == ["Aa-3"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
       st.randoms(use_true_random=False), st.integers(min_value=1, max_value=5))
def test_any_arrival_order_and_paging_gives_each_provider_in_order(counts, rnd, pages):
    providers = [f"0x{i:040x}" for i in range(len(counts))]
    records = [rec(p, n, rnd.randint(1, 50)) for p, c in zip(providers, counts, strict=True)
               for n in range(1, c + 1)]
    rnd.shuffle(records)
    seq, ready = Sequencer(), []
    size = -(-len(records) // pages)
    for i in range(0, len(records), size):
        seq.feed(records[i:i + size])
        ready += seq.drain().ready
    assert len(ready) == len(records)
    for p, c in zip(providers, counts, strict=True):
        assert [r.sequence for r in ready if r.provider_address == p] == list(range(1, c + 1))
