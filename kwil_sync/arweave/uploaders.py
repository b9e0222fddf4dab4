"""Upload signed data items: to an Irys bundler, to ArDrive Turbo, or bundled into L1 transactions.

Every uploader has one method, `upload(items) -> receipts` (in input order). A batch
is posted concurrently; when an item fails, the others still finish and the first
failure (in input order) is raised with the receipts of those that succeeded in
`completed`. Re-uploading an item is safe: the id is the same and bundlers answer
"already received".

Retries: connection errors, timeouts and 5xx back off exponentially; 429 and 402 wait
as long as `Retry-After` says (402 without it is final: the account must be funded);
a wait longer than `max_retry_after` is not slept but raised at once. The sleep
function is injectable, so tests see each wait without waiting.
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import httpx

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.bundle import BUNDLE_TAGS, encode_bundle
from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.gateway import (
    GatewayClient,
    GatewayError,
    GatewayUnavailable,
    WalletNotFunded,
)
from kwil_sync.arweave.signers import ArweaveSigner, b64url_decode, verify_signature
from kwil_sync.arweave.transaction import Transaction

__all__ = [
    "DirectL1Uploader", "InvalidReceipt", "IrysUploader", "PaymentRequired", "RateLimited",
    "RetryPolicy", "TurboUploader", "UploadError", "UploadReceipt", "Uploader",
    "verify_irys_receipt",
]

_EXCERPT = 300
T = TypeVar("T")


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


class Uploader(Protocol):
    """Anything that stores signed data items on Arweave and says under which ids."""

    def upload(self, items: Sequence[DataItem]) -> list[UploadReceipt]: ...

    def close(self) -> None: ...


class UploadError(RuntimeError):
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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: exponential backoff, or the server's Retry-After."""

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry `attempt + 1`, or None to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return min(self.max_backoff, self.backoff * 2**attempt)


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


def verify_irys_receipt(receipt: dict[str, Any]) -> bool:
    """True when `receipt` is signed (RSA-PSS) by the key in its `public` field."""
    try:
        message = deep_hash([
            b"Bundlr", str(receipt["version"]).encode(), str(receipt["id"]).encode(),
            str(receipt["deadlineHeight"]).encode(), str(receipt["timestamp"]).encode(),
        ])
        owner, signature = b64url_decode(receipt["public"]), b64url_decode(receipt["signature"])
    except (KeyError, TypeError, ValueError):
        return False
    return verify_signature(1, owner, message, signature)


class _HttpItemUploader(ABC):
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
        status, body = response.status_code, response.text[:_EXCERPT]
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


def _json(item: DataItem, endpoint: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidReceipt(f"item {item.id}: {endpoint} answered {response.status_code} with "
                             f"{response.text[:_EXCERPT]!r}, not a JSON receipt",
                             item_id=item.id, status=response.status_code)
    if body.get("id") != item.id:
        raise InvalidReceipt(f"item {item.id}: the receipt from {endpoint} names "
                             f"{body.get('id')!r} instead", item_id=item.id,
                             status=response.status_code)
    return body


class IrysUploader(_HttpItemUploader):
    """Upload to an Irys (Bundlr) node: `POST {url}/tx/{token}`, signed receipts checked.

    Args:
        url: The node, e.g. "https://uploader.irys.xyz".
        token: The payment token path segment ("ethereum", "arweave", ...).
        max_retries: Retries per item after the first attempt.
        http: A client to reuse; a new one is made otherwise.
        trusted_keys: If given, receipts must be signed by one of these RSA moduli
            (base64url, the receipt's `public`); otherwise any valid signature is accepted.
        concurrency: Items posted at once.
        sleep: How to wait between attempts (tests pass a recorder).
    """

    _ok = frozenset({200, 201})

    def __init__(self, url: str, token: str = "ethereum", *, max_retries: int = 4,
                 http: httpx.Client | None = None, timeout: float = 30.0,
                 backoff: float = 0.5, trusted_keys: Sequence[str] = (),
                 concurrency: int = 8, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(f"{url.rstrip('/')}/tx/{token}", http=http, timeout=timeout,
                         retry=RetryPolicy(max_retries, backoff), concurrency=concurrency,
                         sleep=sleep)
        self.trusted_keys = frozenset(trusted_keys)

    def _receipt(self, item: DataItem, response: httpx.Response) -> UploadReceipt:
        if response.status_code == 201:  # already received: the node holds this very id
            return UploadReceipt(item.id, None, True, self.endpoint)
        body = _json(item, self.endpoint, response)
        if not verify_irys_receipt(body):
            raise InvalidReceipt(f"item {item.id}: the receipt from {self.endpoint} is not "
                                 "signed by the key it names", item_id=item.id, status=200)
        if self.trusted_keys and body["public"] not in self.trusted_keys:
            raise InvalidReceipt(f"item {item.id}: the receipt from {self.endpoint} is signed "
                                 "by an untrusted key", item_id=item.id, status=200)
        return UploadReceipt(item.id, int(body["timestamp"]), False, self.endpoint,
                             signed_receipt=body)


class TurboUploader(_HttpItemUploader):
    """Upload to ArDrive Turbo: `POST {url}/v1/tx` (receipt format unverified: id checked)."""

    _ok = frozenset({200, 201, 202})

    def __init__(self, url: str = "https://upload.ardrive.io", *, max_retries: int = 4,
                 http: httpx.Client | None = None, timeout: float = 30.0,
                 backoff: float = 0.5, concurrency: int = 8,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(f"{url.rstrip('/')}/v1/tx", http=http, timeout=timeout,
                         retry=RetryPolicy(max_retries, backoff), concurrency=concurrency,
                         sleep=sleep)

    def _receipt(self, item: DataItem, response: httpx.Response) -> UploadReceipt:
        body = _json(item, self.endpoint, response)
        stamp = body.get("timestamp")
        return UploadReceipt(item.id, int(stamp) if isinstance(stamp, int | str) and
                             str(stamp).isdigit() else None, False, self.endpoint,
                             signed_receipt=body)


class DirectL1Uploader:
    """Bundle items into L1 transactions signed by an RSA wallet and post them to a gateway.

    Items keep their own ids (a single item goes as a bundle of one). Items are packed in
    order into bundles of at most `max_bundle_bytes` (an item larger than that travels
    alone).

    Args:
        gateway_url: The gateway to post to (arweave.net, arlocal, ...).
        signer: The funded wallet that signs and pays for the bundle transactions.
        max_bundle_bytes: Largest bundle per transaction.
        max_retries: Retries per transaction on connection errors, 429 and 5xx.
        gateway: A client to reuse instead of one made from `gateway_url`.
        sleep: How to wait between attempts.
    """

    def __init__(self, gateway_url: str, signer: ArweaveSigner, *,
                 max_bundle_bytes: int = 10 << 20, max_retries: int = 4,
                 backoff: float = 0.5, gateway: GatewayClient | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._own_gateway = gateway is None
        self.gateway = gateway or GatewayClient(gateway_url)
        self.signer, self.max_bundle_bytes, self.sleep = signer, max_bundle_bytes, sleep
        self.retry = RetryPolicy(max_retries, backoff)

    def __repr__(self) -> str:
        return f"DirectL1Uploader({self.gateway.url!r}, signer={self.signer!r})"

    def close(self) -> None:
        if self._own_gateway:
            self.gateway.close()

    def upload(self, items: Sequence[DataItem]) -> list[UploadReceipt]:
        """Post the items as bundles; receipts carry the bundle transaction id.

        Raises:
            PaymentRequired: The wallet cannot pay (on arlocal: mint first).
            UploadError: The gateway refused a bundle or stayed unavailable.
        """
        receipts: list[UploadReceipt] = []
        for group in self._groups(items):
            try:
                tx_id = self._post_bundle(group)
            except UploadError as exc:
                exc.completed = receipts
                raise
            receipts += [UploadReceipt(item.id, None, False, self.gateway.url, tx_id)
                         for item in group]
        return receipts

    def _groups(self, items: Sequence[DataItem]) -> list[list[DataItem]]:
        groups: list[list[DataItem]] = []
        size = 0
        for item in items:
            cost = 64 + len(item.raw)  # its header entry and its bytes
            if groups and size + cost <= self.max_bundle_bytes:
                groups[-1].append(item)
                size += cost
            else:
                groups.append([item])
                size = 32 + cost
        return groups

    def _post_bundle(self, group: list[DataItem]) -> str:
        data = encode_bundle(group)
        what = f"bundle of {len(group)} items (first {group[0].id})"

        def sign() -> Transaction:
            return Transaction.create(data, BUNDLE_TAGS, self.signer,
                                      last_tx=self.gateway.tx_anchor(),
                                      reward=self.gateway.price(len(data)))

        tx = self._with_retries(sign, what)
        # The same signed transaction on every retry: a post that landed unseen is not doubled.
        self._with_retries(lambda: self.gateway.post_transaction(tx), what)
        return tx.id

    def _with_retries(self, call: Callable[[], T], what: str) -> T:
        attempt = 0
        while True:
            try:
                return call()
            except WalletNotFunded as exc:
                raise PaymentRequired(f"{what}: {exc}", status=exc.status, body=exc.body) from exc
            except GatewayUnavailable as exc:
                wait = self.retry.delay(attempt, None)
                if wait is None:
                    raise UploadError(f"{what}: {exc}", status=exc.status, body=exc.body) from exc
            except GatewayError as exc:
                raise UploadError(f"{what}: {exc}", status=exc.status, body=exc.body) from exc
            self.sleep(wait)
            attempt += 1
