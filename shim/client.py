"""A gRPC client for the shim's own API (`kwil_sync.SyncShim`), used by the upload flow.

The upload flow may run on another machine than the shim, so it reads the outbox only
through this client, never from the shim's disk.

Example:
    ```python
    with ShimClient("127.0.0.1:50051") as shim:
        batch = shim.pending(100, holder="flow-run-id")
        shim.ack([item.item_id for item in batch.items])
    ```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from kwil_sync.outbox import AckResult, ChainStatus, PendingItem
from proto import kwil_sync_pb2, kwil_sync_pb2_grpc

__all__ = ["PendingBatch", "SavedRecord", "ShimClient"]


@dataclass(frozen=True)
class PendingBatch:
    items: list[PendingItem]
    remaining: int


@dataclass(frozen=True)
class SavedRecord:
    item_id: str
    url: str
    sequence: int
    action_id: str
    repeated: bool


class ShimClient:
    """Talks to a running shim.

    Args:
        address: The shim's `host:port`.
        timeout: Seconds each call may take.
    """

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = kwil_sync_pb2_grpc.SyncShimStub(self._channel)

    def save_action(self, *, local_db_name: str, action_name: str, values: Sequence[str],
                    original_dbid: str = "", local_dbid: str = "") -> SavedRecord:
        """Record one action (see `SaveActionRequest` in proto/kwil_sync.proto)."""
        r = self._stub.SaveAction(kwil_sync_pb2.SaveActionRequest(
            local_db_name=local_db_name, action_name=action_name, values=list(values),
            original_dbid=original_dbid, local_dbid=local_dbid), timeout=self.timeout)
        return SavedRecord(r.item_id, r.url, r.sequence, r.action_id, r.repeated)

    def status(self, original_dbid: str = "") -> list[ChainStatus]:
        """Outbox depth, sequence and last upload per database."""
        r = self._stub.Status(kwil_sync_pb2.StatusRequest(original_dbid=original_dbid),
                              timeout=self.timeout)
        return [ChainStatus(d.provider_address, d.original_dbid, d.pending, d.uploaded,
                            d.sequence, d.last_action_id, d.last_uploaded_id)
                for d in r.databases]

    def pending(self, limit: int, *, holder: str = "", lease_seconds: int = 0) -> PendingBatch:
        """Lease up to `limit` items waiting for upload, oldest first."""
        r = self._stub.PendingItems(kwil_sync_pb2.PendingItemsRequest(
            limit=limit, holder=holder, lease_seconds=lease_seconds), timeout=self.timeout)
        return PendingBatch([PendingItem(i.item_id, i.action_id, i.original_dbid, i.sequence,
                                         i.raw) for i in r.items], r.remaining)

    def ack(self, item_ids: Iterable[str], receipts: Mapping[str, str] | None = None
            ) -> AckResult:
        """Mark items uploaded, after the upload endpoint accepted them."""
        r = self._stub.AckUploaded(kwil_sync_pb2.AckUploadedRequest(
            item_ids=list(item_ids), receipts=dict(receipts or {})), timeout=self.timeout)
        return AckResult(r.acknowledged, list(r.unknown_ids))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ShimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
