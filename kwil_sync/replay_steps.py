"""The replay pipeline's steps as plain functions, one call per chunk or batch.

`kwil_sync.replay.Replayer` composes them; Prefect tasks (tasks/*.py) wrap them one
task run per chunk of pages or batch, never per action:

    fetch_page -> fetch_documents -> verify_batch -> (Sequencer) -> apply_batch

Only `apply_batch` writes (ledger intents and completions); the others are pure reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from kwil_sync.appliers import (
    ActionApplier,
    ActionParams,
    CallResult,
    OnCallsPrepared,
    PlannedCall,
    plan_call,
)
from kwil_sync.arweave.data import DocumentNotFound, DocumentTooLarge
from kwil_sync.arweave.graphql_queries import Page, TxRecord
from kwil_sync.kwil.pipeline import PreparedTx
from kwil_sync.ledger import ActionResult, Ledger, SignedAction
from kwil_sync.proof_checks import Unproven, judge_unproven
from kwil_sync.proofs import ItemProver
from kwil_sync.records import MAX_DOCUMENT_BYTES, RecordError, SyncRecord
from kwil_sync.refusals import Reason, Refusal
from kwil_sync.sources import DocumentFetcher, RecordSource, Start
from kwil_sync.verify import TrustPolicy, Verdict, verify_record

REJECTED_CODE = -1  # ledger code for a transaction the node refused without a tx code

__all__ = ["Applied", "Checked", "Fetched", "apply_batch", "fetch_documents", "fetch_page",
           "verify_batch"]


@dataclass(frozen=True)
class Fetched:
    """A GraphQL row and its document (`data`), or why the document is not there."""

    tx: TxRecord
    data: bytes | None
    error: Exception | None = None


@dataclass
class Checked:
    """What `verify_batch` made of a page: records to order, and the rest."""

    accepted: list[SyncRecord] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    signers: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    skipped_own: int = 0
    unconfirmed: int = 0
    known: int = 0  # rows whose action the ledger holds as resolved: not fetched
    proven_from_bytes: int = 0  # accepted on their raw data item's bytes
    unverified_legacy: int = 0  # 2023 records accepted on the index's word (last resort)


@dataclass
class Applied:
    """What `apply_batch` did: the node's results and the records it could not plan."""

    results: list[CallResult] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    split: int = 0  # failed transactions of several records, bisected


def fetch_page(source: RecordSource, start: Start) -> Page:
    """The first page from `start` (resume with `Start(after=page.end_cursor)`)."""
    pages = source.pages(start)
    try:
        return next(pages, Page([], None, False))
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


def fetch_documents(fetcher: DocumentFetcher, records: Sequence[TxRecord]) -> list[Fetched]:
    """Fetch the documents of `records` concurrently; results in the same order.

    Raises:
        GatewayError: For failures other than "not found" and "too large" (the gateway
            is down or failing): the page should be retried, not quarantined.
    """
    out = []
    for tx, result in zip(records, fetcher.fetch_many([r.id for r in records]), strict=True):
        error = result.error
        if error is not None and not isinstance(error, DocumentNotFound | DocumentTooLarge):
            raise error
        out.append(Fetched(tx, result.data, error))
    return out


def verify_batch(fetched: Sequence[Fetched], policy: TrustPolicy, *,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES,
                 skip_provider: str | None = None, prover: ItemProver | None = None) -> Checked:
    """Parse and verify a page; never raises for hostile input.

    A record whose item signature the row cannot prove (a 2023 record from an index
    that reports no anchor, owner key or signature) is proven from its raw data item
    by `prover`, all such records of the page at once; only when that fails does
    `policy.allow_unverified_legacy` let it through (counted in `unverified_legacy`).

    Args:
        fetched: Rows with their documents.
        policy: The database and its trusted providers.
        max_document_bytes: Larger documents are refused (`oversize`).
        skip_provider: Follow mode: this provider's own records are skipped, not refused.
        prover: Finds raw data items (`kwil_sync.proofs.ByteProver`); None: rows only.
    """
    checked = Checked()
    strict = replace(policy, allow_unverified_legacy=False)
    skip = skip_provider.lower() if skip_provider else None
    outcomes: list[tuple[SyncRecord, Verdict] | Refusal] = []
    for item in fetched:
        tx, provider = item.tx, item.tx.tag("Provider-Address")
        if skip is not None and (provider or "").lower() == skip:
            checked.skipped_own += 1
            continue
        if tx.timestamp_ms is None:  # a gateway lists it before its bundle is mined
            checked.unconfirmed += 1
            continue
        refusal = _refusal(item, max_document_bytes)
        if refusal is not None:
            outcomes.append(refusal)
            continue
        assert item.data is not None
        checked.bytes += len(item.data)
        try:
            record = SyncRecord.from_parts(tx, item.data)
        except RecordError as exc:
            outcomes.append(Refusal(tx.id, exc.reason, str(exc), tx.tag("Action-Id"),
                                    provider))
            continue
        outcomes.append((record, verify_record(record, tx, strict)))
    _prove_from_bytes(outcomes, fetched, policy, prover, checked)
    for outcome in outcomes:
        if isinstance(outcome, Refusal):
            checked.refused.append(outcome)
            continue
        record, verdict = outcome
        if not verdict.ok:
            assert isinstance(verdict.reason, Reason)  # refused, so not "ok"
            checked.refused.append(Refusal.of(record, verdict.reason, verdict.message))
            continue
        assert verdict.signer is not None
        checked.signers[verdict.signer] = checked.signers.get(verdict.signer, 0) + 1
        checked.accepted.append(record)
    return checked


def _prove_from_bytes(outcomes: list[tuple[SyncRecord, Verdict] | Refusal],
                      fetched: Sequence[Fetched], policy: TrustPolicy,
                      prover: ItemProver | None, checked: Checked) -> None:
    """Re-judge, in place, the records their rows could not prove (`proof_checks`)."""
    documents = {f.tx.id: (f.tx, f.data) for f in fetched}
    todo = [i for i, o in enumerate(outcomes)
            if not isinstance(o, Refusal)
            and o[1].reason == Reason.ITEM_SIGNATURE_UNVERIFIABLE]
    items = []
    for i in todo:
        record, verdict = cast(tuple[SyncRecord, Verdict], outcomes[i])
        row, data = documents[record.tx_id]
        items.append(Unproven(record, row, data or b"", verdict))
    judged = judge_unproven(items, policy, prover)
    for i, outcome in zip(todo, judged.outcomes, strict=True):
        outcomes[i] = outcome
    checked.proven_from_bytes += judged.proven_from_bytes
    checked.unverified_legacy += judged.unverified_legacy


def _refusal(item: Fetched, max_bytes: int) -> Refusal | None:
    tx = item.tx
    if isinstance(item.error, DocumentNotFound):
        return Refusal(tx.id, Reason.DOCUMENT_MISSING,
                       f"the gateway does not serve {tx.id} (yet)", tx.tag("Action-Id"),
                       tx.tag("Provider-Address"))
    if isinstance(item.error, DocumentTooLarge) or len(item.data or b"") > max_bytes:
        return Refusal(tx.id, Reason.OVERSIZE, f"document {tx.id} is over {max_bytes} bytes",
                       tx.tag("Action-Id"), tx.tag("Provider-Address"))
    return None


def plan_batch(records: Sequence[SyncRecord], schema: Mapping[str, ActionParams],
               version: str, target: str) -> tuple[list[PlannedCall], list[Refusal]]:
    """Map records onto the target's actions; refuse those that do not fit."""
    planned, refused = [], []
    for record in records:
        call = plan_call(record, schema, version, target)
        if isinstance(call, PlannedCall):
            planned.append(call)
        else:
            refused.append(call)
    return planned, refused


def apply_batch(applier: ActionApplier, ledger: Ledger, key: str,
                records: Sequence[SyncRecord], schema: Mapping[str, ActionParams]) -> Applied:
    """Plan and execute records in order, with an intent stored before each broadcast.

    `key` is the target's ledger key; the calls go to `applier.target`.

    The caller must have dropped what the ledger already holds (`Ledger.filter_new`).
    Results are completed in the ledger before returning; an exception leaves intents
    pending, for `resolve_pending` at the start of the next run.
    """
    planned, refused = plan_batch(records, schema, applier.version, applier.target)

    def on_signed(group: list[tuple[PlannedCall, PreparedTx]]) -> None:  # one fsync a group
        ledger.intend_many(key, [SignedAction(c.record.action_id, s.tx_hash, s.nonce, s.tx,
                                              c.record.tx_id, c.record.provider_address,
                                              c.record.sequence) for c, s in group])

    results, split = _apply_bisecting(applier, ledger, key, planned, on_signed)
    # Refused at the door (no height): those bytes never land, the result is final.
    ledger.complete_many(key, [ActionResult(r.action_id, r.code if r.height is not None
                                            or r.code else REJECTED_CODE, r.log, r.height)
                               for r in results])
    return Applied(results, refused, split)


def _apply_bisecting(applier: ActionApplier, ledger: Ledger, key: str,
                     calls: Sequence[PlannedCall],
                     on_signed: OnCallsPrepared) -> tuple[list[CallResult], int]:
    """Apply `calls`; a failed transaction that carried several records applied none of
    them (kwild runs a transaction's argument sets all or nothing), so its records are
    released in the ledger and applied again in two halves, down to the one that fails,
    which is reported with the node's message. The others still apply exactly once.
    Returns the results in the order of `calls` and how many transactions were split.

    The halves go after the rest of `calls`, which was sent behind the failed
    transaction already: a failure changes the order of the records around it, never
    within a transaction (docs/ARCHITECTURE.md, "Many records per transaction").
    """
    results = applier.apply(calls, on_signed)
    final = list(results)
    retries: list[list[int]] = []
    at = 0
    while at < len(results):
        result = results[at]
        if result.ok or result.shared < 2:
            at += 1
            continue
        members = list(range(at, min(at + result.shared, len(results))))
        retries.append(members)
        at = members[-1] + 1
    split = len(retries)
    for members in retries:
        ledger.release_many(key, [calls[i].record.action_id for i in members])
        half = len(members) // 2
        for part in (members[:half], members[half:]):
            again, more = _apply_bisecting(applier, ledger, key, [calls[i] for i in part],
                                           on_signed)
            split += more
            for i, r in zip(part, again, strict=True):
                final[i] = r
    return final, split
