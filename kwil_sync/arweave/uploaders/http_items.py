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

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.uploaders.base import (
    InvalidReceipt,
    PaymentRequired,
    RateLimited,
    UploadError,
    UploadReceipt,
)
from kwil_sync.http_pool import Answer, AnswerTooLarge, HTTPPool, TransportFailure
from kwil_sync.retry import RetryPolicy

__all__ = ["EXCERPT", "HttpItemUploader", "receipt_json"]

EXCERPT = 300  # characters of an answer's body kept in errors
MAX_ANSWER_BYTES = 1 << 20  # a receipt is a few hundred bytes: more is not a receipt


class HttpItemUploader(ABC):
    """POST each raw item to one endpoint, concurrently, with retries."""

    _ok: frozenset[int] = frozenset({200})

    def __init__(self, endpoint: str, *, http: HTTPPool | None, timeout: float,
                 max_retries: int, backoff: float, concurrency: int,
                 sleep: Callable[[float], None]) -> None:
        self.endpoint = endpoint
        self._own_http = http is None
        self.http = http or HTTPPool(timeout=timeout, max_idle_per_origin=max(1, concurrency))
        self.retry = RetryPolicy(max_retries, backoff, retryable=_worth_retrying,
                                 retry_after=_asked_wait, sleep=sleep)
        self.concurrency = max(1, concurrency)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"

    def close(self) -> None:
        """Close the connection pool if this uploader made it."""
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
        return self.retry.call(lambda: self._post(item))

    def _post(self, item: DataItem) -> UploadReceipt:
        """One attempt: the receipt, or the UploadError that says why not."""
        try:
            response = self.http.send("POST", self.endpoint, body=item.raw,
                                      headers={"Content-Type": "application/octet-stream"},
                                      max_bytes=MAX_ANSWER_BYTES)
        except TransportFailure as exc:
            raise UploadError(f"item {item.id}: {self.endpoint} is unreachable ({exc})",
                              item_id=item.id) from exc
        except AnswerTooLarge as exc:
            raise InvalidReceipt(f"item {item.id}: {exc}; not a receipt", item_id=item.id
                                 ) from exc
        if response.status in self._ok:
            return self._receipt(item, response)
        raise self._refusal(item, response)

    def _refusal(self, item: DataItem, response: Answer) -> UploadError:
        """The error for a refusal (`_worth_retrying` says whether waiting may help)."""
        status, body = response.status, response.text[:EXCERPT]
        kind: type[UploadError] = UploadError
        if status == 402:
            kind, hint = PaymentRequired, "fund the account"
        elif status == 429:
            kind, hint = RateLimited, "slow down or retry later"
        elif status >= 500:
            hint = "the service failed: retry later"
        else:
            hint = "the item was refused as sent"
        message = f"item {item.id}: {self.endpoint} answered HTTP {status}: {body!r}; {hint}"
        return kind(message, item_id=item.id, status=status, body=body,
                    retry_after=_retry_after(response))

    @abstractmethod
    def _receipt(self, item: DataItem, response: Answer) -> UploadReceipt:
        """Turn a success answer into a receipt (raise InvalidReceipt when it is not one)."""


def receipt_json(item: DataItem, endpoint: str, response: Answer) -> dict[str, Any]:
    """The answer's JSON object, checked to name `item`.

    Raises:
        InvalidReceipt: The body is not a JSON object or names another id.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidReceipt(f"item {item.id}: {endpoint} answered {response.status} with "
                             f"{response.text[:EXCERPT]!r}, not a JSON receipt",
                             item_id=item.id, status=response.status)
    if body.get("id") != item.id:
        raise InvalidReceipt(f"item {item.id}: the receipt from {endpoint} names "
                             f"{body.get('id')!r} instead", item_id=item.id,
                             status=response.status)
    return body


def _worth_retrying(error: Exception) -> bool:
    """Whether waiting may help: unreachable, 429 and 5xx; 402 only with a Retry-After
    (without one there is no window to wait for: the account must be funded)."""
    if not isinstance(error, UploadError) or isinstance(error, InvalidReceipt):
        return False
    if error.status is None:  # the endpoint was not reached
        return True
    if error.status == 402:
        return error.retry_after is not None
    return error.status == 429 or error.status >= 500


def _asked_wait(error: Exception) -> float | None:
    return error.retry_after if isinstance(error, UploadError) else None


def _retry_after(response: Answer) -> float | None:
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
