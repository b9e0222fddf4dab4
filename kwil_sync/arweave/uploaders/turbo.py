"""ArDrive Turbo uploads: `POST {url}/v1/tx`."""

from __future__ import annotations

import time
from collections.abc import Callable

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.uploaders.base import UploadReceipt
from kwil_sync.arweave.uploaders.http_items import HttpItemUploader, receipt_json
from kwil_sync.http_pool import Answer, HTTPPool

__all__ = ["TurboUploader"]


class TurboUploader(HttpItemUploader):
    """Upload to ArDrive Turbo: `POST {url}/v1/tx` (receipt format unverified: id checked)."""

    _ok = frozenset({200, 201, 202})

    def __init__(self, url: str = "https://upload.ardrive.io", *, max_retries: int = 4,
                 http: HTTPPool | None = None, timeout: float = 30.0,
                 backoff: float = 0.5, concurrency: int = 8,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(f"{url.rstrip('/')}/v1/tx", http=http, timeout=timeout,
                         max_retries=max_retries, backoff=backoff,
                         concurrency=concurrency, sleep=sleep)

    def _receipt(self, item: DataItem, response: Answer) -> UploadReceipt:
        body = receipt_json(item, self.endpoint, response)
        stamp = body.get("timestamp")
        return UploadReceipt(item.id, int(stamp) if isinstance(stamp, int | str) and
                             str(stamp).isdigit() else None, False, self.endpoint,
                             signed_receipt=body)
