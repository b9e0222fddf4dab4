"""One refusal vocabulary: every reason code any stage produces is a `Reason`."""

from __future__ import annotations

import ast
import inspect

import kwil_sync.records
from kwil_sync.proof_checks import UNPROVEN
from kwil_sync.records import SyncRecord
from kwil_sync.refusals import Reason, Refusal
from kwil_sync.testing.hostile import build_corpus
from kwil_sync.verify import REASONS


def test_reasons_are_their_stored_codes():
    assert Reason.APPLY_FAILED == "apply-failed" and str(Reason.SEQUENCE_GAP) == "sequence-gap"
    assert Reason("unknown-action") is Reason.UNKNOWN_ACTION
    assert len({r.value for r in Reason}) == len(Reason)


def test_every_record_error_the_parser_raises_names_a_reason():
    # RecordError takes its reason as a literal first argument; a new literal must be
    # added to Reason, or the replay's Reason(exc.reason) would fail on that record.
    tree = ast.parse(inspect.getsource(kwil_sync.records))
    raised = {node.args[0].value for node in ast.walk(tree)
              if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "RecordError"
              and node.args and isinstance(node.args[0], ast.Constant)}
    assert raised and raised <= set(Reason)
    assert UNPROVEN in set(Reason) and set(REASONS) <= set(Reason)


def test_the_hostile_corpus_names_its_reasons_and_refusals_carry_a_records_ids():
    corpus = build_corpus("11" * 32, "22" * 32, good=8)
    assert all(isinstance(h.reason, Reason) for h in corpus.hostile)
    record = SyncRecord.from_item(corpus.chain[0])
    refusal = Refusal.of(record, Reason.APPLY_FAILED, "code 1")
    assert (refusal.item_id, refusal.action_id, refusal.provider) == (
        corpus.chain[0].id, corpus.chain[0].tag("Action-Id"), corpus.owner)
