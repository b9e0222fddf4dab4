"""`ExtensionService` as kwild (v0.5 to v0.9) calls it: the `db_sync` extension.

kwild calls Name and ListMethods once at start, Initialize on each deploy and for every
stored database at node start, and Execute from inside actions, on every validator and
for view calls too. Execute(save_action) answers only once the record is fsynced, with
the JSON-encoded `https://arweave.net/<item id>` kwild JSON-decodes.

`save_action_tx(@txid, @height, action_name, ...values)` is the tied form (docs/SHIM.md,
"Commit-tied capture"): the call is stored to wait for its transaction's result and
answered with its Action-Id; it becomes a record only once the node reports the
transaction committed. With an empty `@txid` (a view call) nothing is stored.
"""

from __future__ import annotations

import json

import grpc

from kwil_sync.proto import extension_pb2, extension_pb2_grpc
from kwil_sync.shim.service import InvalidRequest, ShimService
from kwil_sync.shim.status import answer
from kwil_sync.shim.values import scalar_to_string

__all__ = ["EXTENSION_NAME", "METHODS", "DbSyncExtension"]

EXTENSION_NAME = "db_sync"
METHODS = ("save_action", "save_action_tx")


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
        method = request.name.lower()
        if method not in METHODS:
            raise InvalidRequest(f"db_sync has no method {request.name!r}; it has "
                                 f"{', '.join(METHODS)}")
        strings = [scalar_to_string(arg.value, position=i + 1)
                   for i, arg in enumerate(request.args)]
        metadata = dict(request.metadata)
        if method == "save_action_tx":
            output = self._execute_tied(metadata, strings)
        else:
            if not strings:
                raise InvalidRequest("save_action needs the action name as its first argument: "
                                     "db_sync.save_action('<action>', $a, $b, ...)")
            saved = self.service.save_from_metadata(metadata, strings[0], strings[1:])
            output = saved.url if self.answer_with == "url" else saved.stored.action_id
        return extension_pb2.ExecuteResponse(
            outputs=[extension_pb2.ScalarValue(value=json.dumps(output).encode())])

    def _execute_tied(self, metadata: dict[str, str], strings: list[str]) -> str:
        if len(strings) < 3:
            raise InvalidRequest("save_action_tx needs @txid, @height and the action name "
                                 "first: db_sync.save_action_tx(@txid, @height, '<action>', "
                                 "$a, ...)")
        txid, height_text, action_name, *values = strings
        if not height_text.isdigit():
            raise InvalidRequest(f"save_action_tx's second argument must be @height, got "
                                 f"{height_text[:40]!r}")
        saved = self.service.save_tied_from_metadata(metadata, action_name, values,
                                                     tx_hash=txid, height=int(height_text))
        return saved.action_id
