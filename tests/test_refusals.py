"""One refusal vocabulary: every reason code any stage produces is a `Reason`."""

from __future__ import annotations

import ast
import inspect

import kwil_sync.records
from kwil_sync.records import SyncRecord
from kwil_sync.refusals import Reason, Refusal
from kwil_sync.testing.hostile import build_corpus
from kwil_sync.verify import REASONS


def test_reasons_are_their_stored_codes():
    assert Reason.APPLY_FAILED == "apply-failed" and str(Reason.SEQUENCE_GAP) == "sequence-gap"
    assert Reason("unknown-action") is Reason.UNKNOWN_ACTION
    assert len({r.value for r in Reason}) == len(Reason)


def test_every_record_error_the_parser_raises_names_a_reason():
    # RecordError takes a Reason member as its first argument (typed; this also holds
    # where mypy does not look): the replay turns each into a refusal of that reason.
    tree = ast.parse(inspect.getsource(kwil_sync.records))
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "RecordError"]
    named = {node.args[0].attr for node in calls if isinstance(node.args[0], ast.Attribute)
             and getattr(node.args[0].value, "id", "") == "Reason"}
    assert calls and len(named) > 1
    assert all(isinstance(node.args[0], ast.Attribute) for node in calls)
    assert named <= {r.name for r in Reason} and set(REASONS) <= set(Reason)


def test_the_hostile_corpus_names_its_reasons_and_refusals_carry_a_records_ids():
    corpus = build_corpus("11" * 32, "22" * 32, good=8)
    assert all(isinstance(h.reason, Reason) for h in corpus.hostile)
    record = SyncRecord.from_item(corpus.chain[0])
    refusal = Refusal.of(record, Reason.APPLY_FAILED, "code 1")
    assert (refusal.item_id, refusal.action_id, refusal.provider) == (
        corpus.chain[0].id, corpus.chain[0].tag("Action-Id"), corpus.owner)
