"""`kwil_sync.SyncShim`: SaveAction for kwild v0.10 and applications, Status, and the
outbox pull API the upload flow uses remotely (PendingItems, AckUploaded, Calls).

PendingItems first runs a confirmation pass (`kwil_sync.confirm`): tied calls whose
transaction committed become records in that same call, so the upload path, never
kwild's Execute, is what waits for the node."""

from __future__ import annotations

import grpc

from kwil_sync.confirm import Confirmer, ConfirmReport
from kwil_sync.proto import kwil_sync_pb2, kwil_sync_pb2_grpc
from kwil_sync.shim.service import InvalidRequest, ShimService
from kwil_sync.shim.status import answer

__all__ = ["DEFAULT_LEASE_SECONDS", "DEFAULT_PENDING_LIMIT", "MAX_PENDING_LIMIT",
           "SyncShimServicer"]

DEFAULT_PENDING_LIMIT = 100
MAX_PENDING_LIMIT = 1000
DEFAULT_LEASE_SECONDS = 300


class SyncShimServicer(kwil_sync_pb2_grpc.SyncShimServicer):
    """The shim's own API over its `ShimService` and outbox.

    Args:
        service: The shim's logic.
        confirmer: Confirms tied calls before each PendingItems; None leaves them waiting.
    """

    def __init__(self, service: ShimService, confirmer: Confirmer | None = None) -> None:
        self.service = service
        self.confirmer = confirmer

    def SaveAction(self, request: kwil_sync_pb2.SaveActionRequest,
                   context: grpc.ServicerContext) -> kwil_sync_pb2.SaveActionResponse:
        if request.tx_hash:
            return self._save_tied(request, context)
        saved = answer(context, "SaveAction", lambda: self.service.save(
            local_db_name=request.local_db_name, action_name=request.action_name,
            values=list(request.values), original_dbid=request.original_dbid,
            local_dbid=request.local_dbid))
        stored = saved.stored
        return kwil_sync_pb2.SaveActionResponse(
            item_id=stored.item_id, url=saved.url, sequence=stored.sequence,
            action_id=stored.action_id, repeated=stored.repeated)

    def _save_tied(self, request: kwil_sync_pb2.SaveActionRequest,
                   context: grpc.ServicerContext) -> kwil_sync_pb2.SaveActionResponse:
        saved = answer(context, "SaveAction", lambda: self.service.save_tied(
            local_db_name=request.local_db_name, action_name=request.action_name,
            values=list(request.values), tx_hash=request.tx_hash, height=request.height,
            original_dbid=request.original_dbid, local_dbid=request.local_dbid))
        stored = saved.stored
        return kwil_sync_pb2.SaveActionResponse(
            action_id=saved.action_id, tied=True, repeated=bool(stored and stored.repeated),
            state=stored.state if stored else "", item_id=stored.item_id if stored else "")

    def Status(self, request: kwil_sync_pb2.StatusRequest, context: grpc.ServicerContext
               ) -> kwil_sync_pb2.StatusResponse:
        chains = answer(context, "Status",
                        lambda: self.service.outbox.status(request.original_dbid))
        return kwil_sync_pb2.StatusResponse(databases=[
            kwil_sync_pb2.DatabaseStatus(
                original_dbid=c.original_dbid, provider_address=c.provider, pending=c.pending,
                uploaded=c.uploaded, sequence=c.sequence, last_action_id=c.last_action_id,
                last_uploaded_id=c.last_uploaded_id, untied=c.untied, waiting=c.waiting,
                unconfirmed=c.unconfirmed, voided=c.voided)
            for c in chains])

    def Calls(self, request: kwil_sync_pb2.CallsRequest, context: grpc.ServicerContext
              ) -> kwil_sync_pb2.CallsResponse:
        calls = answer(context, "Calls", lambda: self.service.outbox.calls(
            request.state, request.original_dbid))
        return kwil_sync_pb2.CallsResponse(calls=[kwil_sync_pb2.TiedCallInfo(
            action_id=c.call.action_id, original_dbid=c.call.original_dbid,
            action_name=c.call.action_name, tx_hash=c.call.tx_hash, height=c.call.height,
            call_index=c.call_index, state=c.state, code=c.code or 0, log=c.log,
            item_id=c.item_id) for c in calls])

    def PendingItems(self, request: kwil_sync_pb2.PendingItemsRequest,
                     context: grpc.ServicerContext) -> kwil_sync_pb2.PendingItemsResponse:
        report = ConfirmReport()

        def lease() -> tuple[list[kwil_sync_pb2.PendingItem], int]:
            nonlocal report
            limit = request.limit or DEFAULT_PENDING_LIMIT
            if limit > MAX_PENDING_LIMIT:
                raise InvalidRequest(f"limit {limit} is over {MAX_PENDING_LIMIT}: ask in batches")
            if self.confirmer is not None:
                report = self.confirmer.run_pass()
            outbox = self.service.outbox
            items = outbox.pending(limit, holder=request.holder,
                                   lease_seconds=request.lease_seconds or DEFAULT_LEASE_SECONDS)
            remaining = max(outbox.pending_count() - len(items), 0)
            return [kwil_sync_pb2.PendingItem(
                item_id=i.item_id, raw=i.raw, original_dbid=i.original_dbid,
                sequence=i.sequence, action_id=i.action_id) for i in items], remaining

        items, remaining = answer(context, "PendingItems", lease)
        return kwil_sync_pb2.PendingItemsResponse(
            items=items, remaining=remaining, confirmation=kwil_sync_pb2.ConfirmReport(
                confirmed=report.confirmed, voided=report.voided, waiting=report.waiting,
                unconfirmed=report.unconfirmed, transactions=report.transactions,
                node_error=report.node_error))

    def AckUploaded(self, request: kwil_sync_pb2.AckUploadedRequest,
                    context: grpc.ServicerContext) -> kwil_sync_pb2.AckUploadedResponse:
        result = answer(context, "AckUploaded", lambda: self.service.outbox.ack(
            list(request.item_ids), dict(request.receipts)))
        return kwil_sync_pb2.AckUploadedResponse(acknowledged=result.acknowledged,
                                                 unknown_ids=result.unknown_ids)
