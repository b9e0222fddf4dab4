"""The HTTP item poster behind the Irys and Turbo uploaders: one POST per raw item.

A batch is posted concurrently; when an item fails, the others still finish and the
first failure (in input order) is raised with the receipts of those that succeeded in
`completed`. The sleep function is injectable, so tests see each wait without waiting.
"""

from __future__ import annotations

import email.utils
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.uploaders.base import (
    InvalidReceipt,
    PaymentRequired,
    RateLimited,
    UploadError,
    UploadReceipt,
)
from kwil_sync.retry import RetryPolicy

__all__ = ["EXCERPT", "HttpItemUploader", "receipt_json"]

EXCERPT = 300  # characters of an answer's body kept in errors


class HttpItemUploader(ABC):
    """POST each raw item to one endpoint, concurrently, with retries."""

    _ok: frozenset[int] = frozenset({200})

    def __init__(self, endpoint: str, *, http: httpx.Client | None, timeout: float,
                 retry: RetryPolicy, concurrency: int, sleep: Callable[[float], None]) -> None:
        self.endpoint = endpoint
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)
        self.retry, self.concurrency, self.sleep = retry, max(1, concurrency), sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"

    def close(self) -> None:
        """Close the HTTP client if this uploader made it."""
        if self._own_http:
            self.http.close()

    def upload(self, items: Sequence[DataItem]) -> list[UploadReceipt]:
        """Upload every item; receipts in input order.

        Raises:
            UploadError: The first failure in input order (`completed` holds the successes).
        """
        if len(items) <= 1 or self.concurrency == 1:
            outcomes = [_attempt(self._upload_one, item) for item in items]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(items))) as pool:
                outcomes = list(pool.map(lambda i: _attempt(self._upload_one, i), items))
        return _receipts_or_raise(outcomes)

    def _upload_one(self, item: DataItem) -> UploadReceipt:
        attempt = 0
        while True:
            try:
                response = self.http.post(self.endpoint, content=item.raw,
                                          headers={"Content-Type": "application/octet-stream"})
            except httpx.TransportError as exc:
                error = UploadError(f"item {item.id}: {self.endpoint} is unreachable ({exc!r})",
                                    item_id=item.id)
                retryable = True
            else:
                if response.status_code in self._ok:
                    return self._receipt(item, response)
                error, retryable = self._refusal(item, response)
            wait = self.retry.delay(attempt, error.retry_after) if retryable else None
            if wait is None:
                raise error
            self.sleep(wait)
            attempt += 1

    def _refusal(self, item: DataItem, response: httpx.Response) -> tuple[UploadError, bool]:
        """The error for a refusal, and whether waiting may help."""
        status, body = response.status_code, response.text[:EXCERPT]
        retry_after = _retry_after(response)
        kind: type[UploadError] = UploadError
        if status == 402:  # without Retry-After there is no window to wait for
            kind, hint, retryable = PaymentRequired, "fund the account", retry_after is not None
        elif status == 429:
            kind, hint, retryable = RateLimited, "slow down or retry later", True
        elif status >= 500:
            hint, retryable = "the service failed: retry later", True
        else:
            hint, retryable = "the item was refused as sent", False
        message = f"item {item.id}: {self.endpoint} answered HTTP {status}: {body!r}; {hint}"
        return kind(message, item_id=item.id, status=status, body=body,
                    retry_after=retry_after), retryable

    @abstractmethod
    def _receipt(self, item: DataItem, response: httpx.Response) -> UploadReceipt:
        """Turn a success answer into a receipt (raise InvalidReceipt when it is not one)."""


def receipt_json(item: DataItem, endpoint: str, response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, checked to name `item`.

    Raises:
        InvalidReceipt: The body is not a JSON object or names another id.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidReceipt(f"item {item.id}: {endpoint} answered {response.status_code} with "
                             f"{response.text[:EXCERPT]!r}, not a JSON receipt",
                             item_id=item.id, status=response.status_code)
    if body.get("id") != item.id:
        raise InvalidReceipt(f"item {item.id}: the receipt from {endpoint} names "
                             f"{body.get('id')!r} instead", item_id=item.id,
                             status=response.status_code)
    return body


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _attempt(upload_one: Callable[[DataItem], UploadReceipt], item: DataItem
             ) -> UploadReceipt | UploadError:
    try:
        return upload_one(item)
    except UploadError as exc:
        return exc


def _receipts_or_raise(outcomes: Sequence[UploadReceipt | UploadError]) -> list[UploadReceipt]:
    receipts = [o for o in outcomes if isinstance(o, UploadReceipt)]
    for outcome in outcomes:
        if isinstance(outcome, UploadError):
            outcome.completed = receipts
            raise outcome
    return receipts
