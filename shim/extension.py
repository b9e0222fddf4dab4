"""`ExtensionService` as kwild (v0.5 to v0.9) calls it: the `db_sync` extension.

kwild calls Name and ListMethods once at start, Initialize on each deploy and for every
stored database at node start, and Execute from inside actions, on every validator and
for view calls too. Execute(save_action) answers only once the record is fsynced, with
the JSON-encoded `https://arweave.net/<item id>` kwild JSON-decodes.
"""

from __future__ import annotations

import json

import grpc

from proto import extension_pb2, extension_pb2_grpc
from shim.service import InvalidRequest, ShimService
from shim.status import answer
from shim.values import scalar_to_string

__all__ = ["EXTENSION_NAME", "METHODS", "DbSyncExtension"]

EXTENSION_NAME = "db_sync"
METHODS = ("save_action",)


class DbSyncExtension(extension_pb2_grpc.ExtensionServiceServicer):
    """The `db_sync` extension: one method, `save_action(action_name, ...values)`.

    Args:
        service: The shim's logic.
        answer_with: "url" answers `https://arweave.net/<item id>` (the 2023 answer;
            differs between validators with different keys) or "action-id" answers
            the Action-Id (the same on every validator).
    """

    def __init__(self, service: ShimService, *, answer_with: str = "url") -> None:
        if answer_with not in ("url", "action-id"):
            raise ValueError(f"answer_with must be 'url' or 'action-id', got {answer_with!r}")
        self.service = service
        self.answer_with = answer_with

    def Name(self, request: extension_pb2.NameRequest, context: grpc.ServicerContext
             ) -> extension_pb2.NameResponse:
        return extension_pb2.NameResponse(name=EXTENSION_NAME)

    def ListMethods(self, request: extension_pb2.ListMethodsRequest,
                    context: grpc.ServicerContext) -> extension_pb2.ListMethodsResponse:
        return extension_pb2.ListMethodsResponse(methods=list(METHODS))

    def Initialize(self, request: extension_pb2.InitializeRequest,
                   context: grpc.ServicerContext) -> extension_pb2.InitializeResponse:
        metadata = answer(context, "Initialize",
                          lambda: self.service.initialize(dict(request.metadata)))
        return extension_pb2.InitializeResponse(success=True, metadata=metadata)

    def Execute(self, request: extension_pb2.ExecuteRequest, context: grpc.ServicerContext
                ) -> extension_pb2.ExecuteResponse:
        return answer(context, "Execute", lambda: self._execute(request))

    def _execute(self, request: extension_pb2.ExecuteRequest) -> extension_pb2.ExecuteResponse:
        if request.name.lower() not in METHODS:
            raise InvalidRequest(f"db_sync has no method {request.name!r}; it has "
                                 f"{', '.join(METHODS)}")
        if not request.args:
            raise InvalidRequest("save_action needs the action name as its first argument: "
                                 "db_sync.save_action('<action>', $a, $b, ...)")
        strings = [scalar_to_string(arg.value, position=i + 1)
                   for i, arg in enumerate(request.args)]
        saved = self.service.save_from_metadata(dict(request.metadata), strings[0], strings[1:])
        output = saved.url if self.answer_with == "url" else saved.stored.action_id
        return extension_pb2.ExecuteResponse(
            outputs=[extension_pb2.ScalarValue(value=json.dumps(output).encode())])
