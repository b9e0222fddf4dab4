"""What every uploader shares: the `Uploader` protocol, receipts and errors.

Retries (a `kwil_sync.retry.RetryPolicy`): connection errors, timeouts and 5xx back off
exponentially; 429 and 402 wait as long as `Retry-After` says (402 without it is final:
the account must be funded); a wait longer than `max_retry_after` is not slept but
raised at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.errors import KwilSyncError

__all__ = [
    "InvalidReceipt", "PaymentRequired", "RateLimited", "UploadError", "UploadReceipt",
    "Uploader",
]


@dataclass(frozen=True)
class UploadReceipt:
    """One uploaded item: its id, the bundler's timestamp (ms) if any, and where it went.

    `bundle_tx_id` names the L1 transaction (direct uploads); `signed_receipt` keeps the
    bundler's signed receipt JSON as proof (Irys).
    """

    id: str
    timestamp_ms: int | None
    duplicate: bool
    endpoint: str
    bundle_tx_id: str | None = None
    signed_receipt: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> str:
        """The receipt as the outbox keeps it: compact JSON of every field."""
        return json.dumps({"id": self.id, "timestamp_ms": self.timestamp_ms,
                           "duplicate": self.duplicate, "endpoint": self.endpoint,
                           "bundle_tx_id": self.bundle_tx_id,
                           "signed_receipt": self.signed_receipt}, separators=(",", ":"))


class Uploader(Protocol):
    """Anything that stores signed data items on Arweave and says under which ids."""

    def upload(self, items: Sequence[DataItem]) -> list[UploadReceipt]: ...

    def close(self) -> None: ...


class UploadError(KwilSyncError, RuntimeError):
    """An item was not uploaded. `status` and `body` excerpt come from the last answer."""

    def __init__(self, message: str, *, item_id: str = "", status: int | None = None,
                 body: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.item_id, self.status, self.body, self.retry_after = item_id, status, body, retry_after
        self.completed: list[UploadReceipt] = []  # the batch's successes, set by upload()


class PaymentRequired(UploadError):
    """402 (or an unfunded L1 wallet): fund the account, or wait out the free-tier window."""


class RateLimited(UploadError):
    """429 persisted through every retry."""


class InvalidReceipt(UploadError):
    """The bundler's receipt is not signed by its key or names another item."""
