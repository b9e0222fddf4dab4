"""Remote extensions for the kwild stand-in, as kwild v0.9 dials them.

kwil-db v0.9.4 `internal/extensions/remote_extensions.go`: at start kwild dials each
`extension_endpoints` entry without TLS and asks `Name` and `ListMethods` (an endpoint
that does not answer stops the node from starting; method names are lower-cased);
`Initialize` runs when a schema that `use`s the extension is deployed, and again for
every stored database at node start, and the metadata it returns is sent with every
`Execute`. `Execute` is a plain gRPC call made while the action runs, inside block
execution, before the transaction's outcome is known. Arguments travel as the JSON of
each value (kwild sends strings, integers and floats); outputs are JSON-decoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from kwil_sync.errors import KwilSyncError
from kwil_sync.proto import extension_pb2, extension_pb2_grpc

__all__ = ["ExtensionFailed", "ExtensionHub"]

CALL_TIMEOUT = 5.0  # kwild's per-call timeout for remote extensions


class ExtensionFailed(KwilSyncError, RuntimeError):
    """An extension call failed: kwild fails the deploy or the transaction."""


class _Endpoint:
    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.stub = extension_pb2_grpc.ExtensionServiceStub(self.channel)
        try:
            self.name = self.stub.Name(extension_pb2.NameRequest(), timeout=CALL_TIMEOUT).name
            listed = self.stub.ListMethods(extension_pb2.ListMethodsRequest(),
                                           timeout=CALL_TIMEOUT).methods
        except grpc.RpcError as exc:
            self.channel.close()
            raise ExtensionFailed(f"extension endpoint {address} did not answer Name/"
                                  f"ListMethods ({exc.code().name}): start it before the "
                                  "node, as kwild requires") from None
        self.methods = {m.lower() for m in listed}


class ExtensionHub:
    """The node's extensions by name, connected at start.

    Args:
        endpoints: `host:port` of each extension server.

    Raises:
        ExtensionFailed: If an endpoint does not answer (kwild refuses to start).
    """

    def __init__(self, endpoints: Sequence[str]) -> None:
        self._by_name: dict[str, _Endpoint] = {}
        for address in endpoints:
            endpoint = _Endpoint(address)
            self._by_name[endpoint.name.lower()] = endpoint
        self.calls = 0  # Execute calls made (tests count them)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def _endpoint(self, name: str) -> _Endpoint:
        endpoint = self._by_name.get(name.lower())
        if endpoint is None:
            raise ExtensionFailed(f'extension "{name}" not found: the node has '
                                  f"{', '.join(self.names) or 'no extensions'}")
        return endpoint

    def initialize(self, name: str, metadata: Mapping[str, str]) -> dict[str, str]:
        """Initialize the extension for one database; returns the metadata to keep."""
        endpoint = self._endpoint(name)
        try:
            answer = endpoint.stub.Initialize(
                extension_pb2.InitializeRequest(metadata=dict(metadata)), timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise ExtensionFailed(f"extension {name} refused Initialize: {exc.details()}") \
                from None
        return dict(answer.metadata)

    def execute(self, name: str, method: str, args: Sequence[Any],
                metadata: Mapping[str, str]) -> list[Any]:
        """Call one method with JSON-encoded arguments; returns the decoded outputs."""
        endpoint = self._endpoint(name)
        if method.lower() not in endpoint.methods:
            raise ExtensionFailed(f"method '{method}' is not available for extension "
                                  f"'{name}' at target '{endpoint.address}'")
        request = extension_pb2.ExecuteRequest(
            name=method.lower(), metadata=dict(metadata),
            args=[extension_pb2.ScalarValue(value=json.dumps(a).encode()) for a in args])
        self.calls += 1
        try:
            answer = endpoint.stub.Execute(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise ExtensionFailed(f"extension {name}.{method} failed: {exc.details()}") \
                from None
        return [json.loads(out.value) for out in answer.outputs]

    def close(self) -> None:
        for endpoint in self._by_name.values():
            endpoint.channel.close()
