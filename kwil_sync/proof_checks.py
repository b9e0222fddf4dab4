"""Judge again, on their own bytes, the records an index row could not prove.

`kwil_sync.replay_steps.verify_batch` judges every row strictly first; the records it
refuses as `item-signature-unverifiable` (a 2023 record whose row lacks the anchor, the
owner key or the signature) come here, a chunk's worth at once. Each is verified again
with its raw data item's owner key, signature, anchor and target (found by an
`ItemProver`), but with the index's tags and the data gateway's document, so a lie in
either fails the check. Where no bytes are to be had, `allow_unverified_legacy` is the
last resort, and each record it lets through is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.arweave.signers import b64url
from kwil_sync.proofs import ItemProver
from kwil_sync.records import SyncRecord
from kwil_sync.verify import TrustPolicy, Verdict, verify_record

__all__ = ["Judged", "Unproven", "judge_unproven", "proven_row"]


@dataclass(frozen=True)
class Unproven:
    """A record its row could not prove: the record, the row, the fetched document."""

    record: SyncRecord
    row: TxRecord
    document: bytes
    verdict: Verdict


@dataclass
class Judged:
    """The new (record, verdict) of each input, in order, and what decided them."""

    outcomes: list[tuple[SyncRecord, Verdict]] = field(default_factory=list)
    proven_from_bytes: int = 0
    unverified_legacy: int = 0


def judge_unproven(items: Sequence[Unproven], policy: TrustPolicy,
                   prover: ItemProver | None) -> Judged:
    """Verify `items` on their raw data items' bytes; never raises for hostile input."""
    judged = Judged()
    if not items:
        return judged
    proofs = prover.prove_many([x.row for x in items]) if prover is not None else {}
    strict = replace(policy, allow_unverified_legacy=False)
    for x in items:
        item = proofs.get(x.record.tx_id)
        if isinstance(item, DataItem):
            row = proven_row(x.row, item)
            record = SyncRecord.from_parts(row, x.document)
            verdict = verify_record(record, row, strict)
            judged.proven_from_bytes += verdict.ok
            judged.outcomes.append((record, verdict))
        elif policy.allow_unverified_legacy:
            verdict = verify_record(x.record, x.row, policy)
            judged.unverified_legacy += verdict.ok
            judged.outcomes.append((x.record, verdict))
        else:
            why = f"; its bytes: {item}" if item is not None else ""
            judged.outcomes.append((x.record, replace(x.verdict,
                                                      message=x.verdict.message + why)))
    return judged


def proven_row(tx: TxRecord, item: DataItem) -> TxRecord:
    """The row with the item's own proof (owner key, signature, anchor, target); its
    tags stay the index's."""
    return replace(tx, owner_key=item.owner, signature=item.signature, anchor=item.anchor,
                   target=b64url(item.target) if item.target else None)
