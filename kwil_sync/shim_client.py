"""A gRPC client for the shim's own API (`kwil_sync.SyncShim`), used by the upload flow.

The upload flow may run on another machine than the shim, so it reads the outbox only
through this client, never from the shim's disk. `lease` and `ack` make it a
`kwil_sync.upload.OutboxQueue`, as the local `Outbox` is.

Example:
    ```python
    with ShimClient("127.0.0.1:50051") as shim:
        batch = shim.lease(100, holder="flow-run-id")
        shim.ack([item.item_id for item in batch.items])
    ```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from kwil_sync.confirm import ConfirmReport
from kwil_sync.outbox import AckResult, ChainStatus, PendingBatch, PendingItem
from kwil_sync.proto import kwil_sync_pb2, kwil_sync_pb2_grpc

__all__ = ["CallInfo", "SavedRecord", "ShimClient"]


@dataclass(frozen=True)
class CallInfo:
    """A tied call as `Calls` reports it."""

    action_id: str
    original_dbid: str
    action_name: str
    tx_hash: str
    height: int
    call_index: int
    state: str
    code: int
    log: str
    item_id: str


@dataclass(frozen=True)
class SavedRecord:
    item_id: str
    url: str
    sequence: int
    action_id: str
    repeated: bool
    tied: bool = False
    state: str = ""


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
                    original_dbid: str = "", local_dbid: str = "", tx_hash: str = "",
                    height: int = 0) -> SavedRecord:
        """Record one action (see `SaveActionRequest` in proto/kwil_sync.proto).

        With `tx_hash` (kwild v0.10: the hash `broadcast` answered) the call is tied: it
        becomes a record only once the node reports that transaction committed.
        """
        r = self._stub.SaveAction(kwil_sync_pb2.SaveActionRequest(
            local_db_name=local_db_name, action_name=action_name, values=list(values),
            original_dbid=original_dbid, local_dbid=local_dbid, tx_hash=tx_hash,
            height=height), timeout=self.timeout)
        return SavedRecord(r.item_id, r.url, r.sequence, r.action_id, r.repeated, r.tied,
                           r.state)

    def status(self, original_dbid: str = "") -> list[ChainStatus]:
        """Outbox depth, sequence and last upload per database."""
        r = self._stub.Status(kwil_sync_pb2.StatusRequest(original_dbid=original_dbid),
                              timeout=self.timeout)
        return [ChainStatus(d.provider_address, d.original_dbid, d.pending, d.uploaded,
                            d.sequence, d.last_action_id, d.last_uploaded_id, untied=d.untied,
                            waiting=d.waiting, unconfirmed=d.unconfirmed, voided=d.voided)
                for d in r.databases]

    def calls(self, state: str = "", original_dbid: str = "") -> list[CallInfo]:
        """Tied calls (in `state`, of `original_dbid`; all when empty) with their results."""
        r = self._stub.Calls(kwil_sync_pb2.CallsRequest(state=state, original_dbid=original_dbid),
                             timeout=self.timeout)
        return [CallInfo(c.action_id, c.original_dbid, c.action_name, c.tx_hash, c.height,
                         c.call_index, c.state, c.code, c.log, c.item_id) for c in r.calls]

    def lease(self, limit: int, *, holder: str = "", lease_seconds: int = 0) -> PendingBatch:
        """Lease up to `limit` items waiting for upload, oldest first (`PendingItems`: the
        shim first confirms due tied calls; `confirmation` says what that pass did)."""
        r = self._stub.PendingItems(kwil_sync_pb2.PendingItemsRequest(
            limit=limit, holder=holder, lease_seconds=lease_seconds), timeout=self.timeout)
        c = r.confirmation
        report = ConfirmReport(c.confirmed, c.voided, c.waiting, c.unconfirmed, c.transactions,
                               c.node_error)
        return PendingBatch([PendingItem(i.item_id, i.action_id, i.original_dbid, i.sequence,
                                         i.raw) for i in r.items], r.remaining, report)


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
