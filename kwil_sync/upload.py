"""Upload one batch of an outbox queue: lease, upload, acknowledge.

The queue is anything that satisfies `OutboxQueue`: the shim's outbox over gRPC
(`kwil_sync.shim_client.ShimClient`, what the upload flow uses, possibly on another
machine) or a local outbox file (`kwil_sync.outbox.Outbox`).

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.uploaders import Uploader, UploadError, UploadReceipt
from kwil_sync.errors import KwilSyncError
from kwil_sync.outbox import AckResult, PendingBatch

__all__ = ["LEASE_SECONDS", "BatchResult", "OutboxCorrupted", "OutboxQueue", "upload_pending"]

LEASE_SECONDS = 600  # longer than a batch's upload with all its HTTP retries


class OutboxQueue(Protocol):
    """Where signed items wait for upload: leased in batches, acknowledged once accepted."""

    def lease(self, limit: int, *, holder: str, lease_seconds: int) -> PendingBatch:
        """Lease up to `limit` pending items to `holder` for `lease_seconds`, oldest first.

        The same holder gets its own unacknowledged items again, so a retried batch
        posts the same bytes.
        """
        ...

    def ack(self, item_ids: Iterable[str], receipts: Mapping[str, str] | None = None
            ) -> AckResult:
        """Mark items uploaded (idempotent), keeping each one's receipt JSON."""
        ...


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


def _acknowledge(queue: OutboxQueue, receipts: list[UploadReceipt]) -> None:
    if receipts:
        queue.ack([r.id for r in receipts], {r.id: r.to_json() for r in receipts})


def upload_pending(queue: OutboxQueue, uploader: Uploader, *, holder: str, limit: int
                   ) -> BatchResult:
    """Lease up to `limit` pending items, upload them and acknowledge what was accepted.

    Args:
        queue: The outbox: a `ShimClient` of the shim that holds it, or a local `Outbox`.
        uploader: Where the items go (Irys, Turbo, or a gateway directly).
        holder: Who leases the batch (the flow run id): a retry gets the same items.
        limit: Items per batch.

    Raises:
        UploadError: If an item was not accepted (the accepted ones are acknowledged).
        OutboxCorrupted: If stored bytes are not the item they claim to be.
    """
    batch = queue.lease(limit, holder=holder, lease_seconds=LEASE_SECONDS)
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
        _acknowledge(queue, exc.completed)
        raise
    wrong = [r.id for r, i in zip(receipts, items, strict=True) if r.id != i.id]
    if wrong:  # never acknowledge an item under an id it was not accepted as
        raise UploadError(f"the uploader answered ids {wrong[:3]} for other items")
    _acknowledge(queue, receipts)
    return result(len(receipts), sum(r.duplicate for r in receipts))
