"""The 2023 `DbSyncService.Sync`: start restore-then-follow for a database, answer "ok"."""

from __future__ import annotations

import grpc

from kwil_sync.proto import dbsync_pb2, dbsync_pb2_grpc
from kwil_sync.shim.service import ShimService
from kwil_sync.shim.status import answer

__all__ = ["DbSyncServicer"]


class DbSyncServicer(dbsync_pb2_grpc.DbSyncServiceServicer):
    """Accepts the 2023 extension's Sync call, so old extensions can point at this shim."""

    def __init__(self, service: ShimService) -> None:
        self.service = service

    def Sync(self, request: dbsync_pb2.DbSync, context: grpc.ServicerContext
             ) -> dbsync_pb2.SyncResponse:
        answer(context, "Sync",
               lambda: self.service.sync(request.originalDbid, request.localProviderDbid))
        return dbsync_pb2.SyncResponse(status="ok")
