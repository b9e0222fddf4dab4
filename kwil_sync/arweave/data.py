"""Fetch documents (transaction and data item bodies) from an Arweave gateway.

Downloads are streamed and the size cap is enforced while reading, so an oversize
document is dropped after `max_bytes` and never held whole. Many documents are fetched
concurrently over pooled keep-alive connections (`kwil_sync.http_pool`, a quarter of
httpx's CPU per document), and results come back in input order, each with its own
error, so one bad id never hides the others. 5xx, 429, connection errors and
timeouts are retried with exponential backoff (honouring a short Retry-After).

Example:
    ```python
    with GatewayDataClient("http://127.0.0.1:1984", max_bytes=1 << 20) as docs:
        for result in docs.fetch_many(ids):
            print(result.id, result.error or len(result.data or b""))
    ```
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from kwil_sync.errors import KwilSyncError
from kwil_sync.http_pool import AnswerTooLarge, HTTPPool, Reply, TransportFailure
from kwil_sync.retry import RetryPolicy

__all__ = [
    "DocumentNotFound",
    "DocumentTooLarge",
    "FetchResult",
    "GatewayDataClient",
    "GatewayError",
    "UnexpectedContentType",
]

_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
_MAX_RETRY_AFTER = 10.0


class GatewayError(KwilSyncError, RuntimeError):
    """A gateway failed or refused a request: the one root of every gateway error.

    `id` names the document or transaction (empty when none); `status` and a `body`
    excerpt say how the gateway answered, when it did. The read side raises it and the
    errors below; the write side (`kwil_sync.arweave.gateway`) its own subclasses.
    """

    def __init__(self, id: str, message: str, *, status: int | None = None,
                 body: str = "") -> None:
        super().__init__(message)
        self.id = id
        self.status = status
        self.body = body


class DocumentNotFound(GatewayError):
    """The gateway answered 404: the document is unknown there (or not yet indexed)."""


class DocumentTooLarge(GatewayError):
    """The document is larger than `max_bytes`; it was not read further."""


class UnexpectedContentType(GatewayError):
    """The gateway served the document with another Content-Type than expected."""


class _Retry(KwilSyncError):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


@dataclass(frozen=True)
class FetchResult:
    """One document of `fetch_many`: `data` on success, else `error`."""

    id: str
    data: bytes | None
    error: Exception | None


def _transient(error: Exception) -> bool:
    """429, 5xx, connection errors and timeouts: worth another try."""
    return isinstance(error, _Retry | TransportFailure)


def _asked_wait(error: Exception) -> float | None:
    return error.wait if isinstance(error, _Retry) else None


def _retry_after(response: Reply) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class GatewayDataClient:
    """Fetch documents by id from `{url}/{id}` with bounded concurrency.

    Args:
        url: The gateway base URL.
        max_bytes: Largest document accepted; larger ones raise DocumentTooLarge.
        concurrency: Parallel downloads in `fetch_many` (and pooled connections).
        timeout: Seconds per request (connect and each read).
        retries: Tries per document for transient failures.
        backoff: First retry delay in seconds, doubling per try (capped at 8 s).
        expected_content_type: If set, documents of another media type are refused.
        path_template: Where a document lives under `url` (ar.io also offers `/raw/{id}`).
        http: An `HTTPPool` to share (not closed here); one is made otherwise.
    """

    def __init__(self, url: str, *, max_bytes: int = 4 << 20, concurrency: int = 16,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 0.25,
                 expected_content_type: str | None = None, path_template: str = "/{id}",
                 http: HTTPPool | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.url = url.rstrip("/")
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.retry = RetryPolicy(self.retries - 1, backoff, max_backoff=8.0, jitter=0.5,
                                 max_retry_after=_MAX_RETRY_AFTER,
                                 beyond_max_retry_after="shorten", retryable=_transient,
                                 retry_after=_asked_wait)
        self.expected_content_type = expected_content_type
        self.path_template = path_template
        self._own_http = http is None
        self.http = http or HTTPPool(timeout=timeout, max_idle_per_origin=concurrency)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, concurrency={self.concurrency})"

    def _document_url(self, id: str) -> str:
        if not _ID.match(id):
            raise ValueError(f"{id!r} is not an Arweave id (43 base64url characters)")
        return self.url + self.path_template.format(id=id)

    def _check_head(self, id: str, response: Reply) -> None:
        """Raise for a status or header that rules the body out before reading it."""
        status = response.status
        if status == 404:
            raise DocumentNotFound(id, f"document {id} not found at {self.url} (404); it may "
                                   "not be indexed yet: retry later or try another gateway")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(response))
        if status != 200:
            raise GatewayError(id, f"{self.url} answered HTTP {status} for document {id}; "
                               "check the gateway URL", status=status)
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise self._too_large(id, f"{length} bytes")
        if self.expected_content_type:
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != self.expected_content_type.lower():
                raise UnexpectedContentType(
                    id, f"document {id} is served as {media or 'no type'!r}, expected "
                    f"{self.expected_content_type!r}: it is not a document of this kind")

    def _too_large(self, id: str, size: str) -> DocumentTooLarge:
        return DocumentTooLarge(id, f"document {id} is larger than max_bytes={self.max_bytes} "
                                f"({size}); raise max_bytes if it is legitimate")

    def _exhausted(self, id: str, reason: str) -> GatewayError:
        return GatewayError(id, f"document {id} from {self.url} failed {self.retries} times, "
                            f"last: {reason}; check that the gateway is up, then retry")

    def fetch(self, id: str) -> bytes:
        """The document's bytes.

        Raises:
            DocumentNotFound, DocumentTooLarge, UnexpectedContentType: As named.
            GatewayError: Another status, or transient failures on every try.
            ValueError: If `id` is not an Arweave id.
        """
        url = self._document_url(id)
        try:
            return self.retry.call(lambda: self._download(id, url))
        except (_Retry, TransportFailure) as exc:  # transient on every try
            raise self._exhausted(id, str(exc) or type(exc).__name__) from exc

    def _download(self, id: str, url: str) -> bytes:
        """One try: the whole body, read under the size cap."""
        with self.http.request("GET", url) as response:
            self._check_head(id, response)
            try:
                return response.read(self.max_bytes)
            except AnswerTooLarge as exc:
                raise self._too_large(id, f"over {exc.bytes_read} bytes read") from None

    def _result(self, id: str) -> FetchResult:
        try:
            return FetchResult(id, self.fetch(id), None)
        except Exception as exc:
            return FetchResult(id, None, exc)

    def fetch_many(self, ids: Iterable[str]) -> Iterator[FetchResult]:
        """Fetch `ids` `concurrency` at a time; yield results in input order.

        At most 2 x concurrency documents are in flight or waiting to be taken.
        """
        window = 2 * self.concurrency
        pending: deque[Future[FetchResult]] = deque()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="gateway-data")
        try:
            for id in ids:
                pending.append(pool.submit(self._result, id))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> GatewayDataClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
