"""Upload signed data items: to an Irys bundler, to ArDrive Turbo, or bundled into L1 transactions.

Every uploader has one method, `upload(items) -> receipts` (in input order). A batch
is posted concurrently; when an item fails, the others still finish and the first
failure (in input order) is raised with the receipts of those that succeeded in
`completed`. Re-uploading an item is safe: the id is the same and bundlers answer
"already received".

One backend per module: `base` (protocol, receipts, errors), `irys`,
`turbo`, `direct` (L1 bundles); `http_items` holds the HTTP poster Irys and Turbo share.
Retries: connection errors, timeouts and 5xx back off exponentially; 429 and 402 wait
as long as `Retry-After` says (402 without it is final: the account must be funded);
a wait longer than `max_retry_after` is not slept but raised at once. The sleep
function is injectable, so tests see each wait without waiting.
"""

from kwil_sync.arweave.uploaders.base import (
    InvalidReceipt,
    PaymentRequired,
    RateLimited,
    Uploader,
    UploadError,
    UploadReceipt,
)
from kwil_sync.arweave.uploaders.direct import DirectL1Uploader
from kwil_sync.arweave.uploaders.irys import IrysUploader, verify_irys_receipt
from kwil_sync.arweave.uploaders.turbo import TurboUploader

__all__ = [
    "DirectL1Uploader", "InvalidReceipt", "IrysUploader", "PaymentRequired", "RateLimited",
    "TurboUploader", "UploadError", "UploadReceipt", "Uploader",
    "verify_irys_receipt",
]
