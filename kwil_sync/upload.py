"""Upload one batch of the shim's outbox: lease, upload, acknowledge.

The item bytes are fixed in the outbox (signed once, when kwild's call was answered),
so a retried or repeated upload posts the very same item under the very same id:
bundlers answer "already received" (201), which counts as accepted. Items are
acknowledged only after the endpoint accepted them; items a failed batch did upload
are acknowledged before the error propagates, so a retry posts only the rest.

Tied calls become items only inside the shim's PendingItems, after their kwild
transaction was confirmed (code 0) on the provider's node; calls of failed transactions
are voided there and never reach an upload. Each batch reports what that confirmation
pass did (confirmed, voided, waiting, unconfirmed, a node error).
"""

from __future__ import annotations

from dataclasses import dataclass

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.uploaders import Uploader, UploadError, UploadReceipt
from kwil_sync.errors import KwilSyncError
from kwil_sync.shim_client import ShimClient

__all__ = ["LEASE_SECONDS", "BatchResult", "OutboxCorrupted", "upload_pending"]

LEASE_SECONDS = 600  # longer than a batch's upload with all its HTTP retries


class OutboxCorrupted(KwilSyncError, RuntimeError):
    """Stored bytes do not parse or do not match their item id: never upload those."""


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: items accepted (repeats included), items still pending, and
    the tied calls the confirmation pass before it settled or left waiting."""

    uploaded: int
    already_there: int
    remaining: int
    confirmed: int = 0
    voided: int = 0
    waiting: int = 0
    unconfirmed: int = 0
    node_error: str = ""


def _acknowledge(shim: ShimClient, receipts: list[UploadReceipt]) -> None:
    if receipts:
        shim.ack([r.id for r in receipts], {r.id: r.to_json() for r in receipts})


def upload_pending(shim: ShimClient, uploader: Uploader, *, holder: str, limit: int
                   ) -> BatchResult:
    """Lease up to `limit` pending items, upload them and acknowledge what was accepted.

    Args:
        shim: Client of the shim that holds the outbox.
        uploader: Where the items go (Irys, Turbo, or a gateway directly).
        holder: Who leases the batch (the flow run id): a retry gets the same items.
        limit: Items per batch.

    Raises:
        UploadError: If an item was not accepted (the accepted ones are acknowledged).
        OutboxCorrupted: If stored bytes are not the item they claim to be.
    """
    batch = shim.pending(limit, holder=holder, lease_seconds=LEASE_SECONDS)
    c = batch.confirmation

    def result(uploaded: int, already_there: int) -> BatchResult:
        return BatchResult(uploaded, already_there, batch.remaining, c.confirmed, c.voided,
                           c.waiting, c.unconfirmed, c.node_error)

    if not batch.items:
        return result(0, 0)
    items: list[DataItem] = []
    for pending in batch.items:
        try:
            item = DataItem.parse(pending.raw)
        except ValueError as exc:
            raise OutboxCorrupted(f"outbox item {pending.item_id} does not parse: {exc}") from exc
        if item.id != pending.item_id:
            raise OutboxCorrupted(f"outbox item {pending.item_id} holds bytes of {item.id}")
        items.append(item)
    try:
        receipts = uploader.upload(items)
    except UploadError as exc:
        _acknowledge(shim, exc.completed)
        raise
    wrong = [r.id for r, i in zip(receipts, items, strict=True) if r.id != i.id]
    if wrong:  # never acknowledge an item under an id it was not accepted as
        raise UploadError(f"the uploader answered ids {wrong[:3]} for other items")
    _acknowledge(shim, receipts)
    return result(len(receipts), sum(r.duplicate for r in receipts))
