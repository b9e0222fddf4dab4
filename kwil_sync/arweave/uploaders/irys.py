"""Irys (Bundlr) uploads: `POST {url}/tx/{token}`, with the node's signed receipt checked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.signers import b64url_decode, verify_signature
from kwil_sync.arweave.uploaders.base import InvalidReceipt, UploadReceipt
from kwil_sync.arweave.uploaders.http_items import HttpItemUploader, receipt_json
from kwil_sync.http_pool import Answer, HTTPPool

__all__ = ["IrysUploader", "verify_irys_receipt"]


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


class IrysUploader(HttpItemUploader):
    """Upload to an Irys (Bundlr) node: `POST {url}/tx/{token}`, signed receipts checked.

    Args:
        url: The node, e.g. "https://uploader.irys.xyz".
        token: The payment token path segment ("ethereum", "arweave", ...).
        max_retries: Retries per item after the first attempt.
        http: A connection pool to share (not closed here); one is made otherwise.
        trusted_keys: If given, receipts must be signed by one of these RSA moduli
            (base64url, the receipt's `public`); otherwise any valid signature is accepted.
        concurrency: Items posted at once.
        sleep: How to wait between attempts (tests pass a recorder).
    """

    _ok = frozenset({200, 201})

    def __init__(self, url: str, token: str = "ethereum", *, max_retries: int = 4,
                 http: HTTPPool | None = None, timeout: float = 30.0,
                 backoff: float = 0.5, trusted_keys: Sequence[str] = (),
                 concurrency: int = 8, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(f"{url.rstrip('/')}/tx/{token}", http=http, timeout=timeout,
                         max_retries=max_retries, backoff=backoff,
                         concurrency=concurrency, sleep=sleep)
        self.trusted_keys = frozenset(trusted_keys)

    def _receipt(self, item: DataItem, response: Answer) -> UploadReceipt:
        if response.status == 201:  # already received: the node holds this very id
            return UploadReceipt(item.id, None, True, self.endpoint)
        body = receipt_json(item, self.endpoint, response)
        if not verify_irys_receipt(body):
            raise InvalidReceipt(f"item {item.id}: the receipt from {self.endpoint} is not "
                                 "signed by the key it names", item_id=item.id, status=200)
        if self.trusted_keys and body["public"] not in self.trusted_keys:
            raise InvalidReceipt(f"item {item.id}: the receipt from {self.endpoint} is signed "
                                 "by an untrusted key", item_id=item.id, status=200)
        return UploadReceipt(item.id, int(body["timestamp"]), False, self.endpoint,
                             signed_receipt=body)
