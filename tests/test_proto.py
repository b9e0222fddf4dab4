"""The committed protobuf modules are fresh and speak the wire names kwild and 2023 tools use."""

from __future__ import annotations

from pathlib import Path

import pytest

from kwil_sync.proto import dbsync_pb2, extension_pb2, kwil_sync_pb2
from kwil_sync.proto.generate import PROTO_DIR, generate, generated_names


def test_committed_modules_match_a_fresh_generation(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(generated_names())
    stale = [p.name for p in written
             if p.read_bytes() != (PROTO_DIR / p.name).read_bytes()]
    assert not stale, f"stale generated modules {stale}: run `make proto` and commit them"


def _methods(module: object, service: str) -> dict[str, tuple[str, str]]:
    desc = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
    return {m.name: (m.input_type.full_name, m.output_type.full_name) for m in desc.methods}


def test_extension_service_is_kwild_s() -> None:
    service = extension_pb2.DESCRIPTOR.services_by_name["ExtensionService"]
    assert service.full_name == "extension.ExtensionService"
    assert _methods(extension_pb2, "ExtensionService") == {
        "Name": ("extension.NameRequest", "extension.NameResponse"),
        "ListMethods": ("extension.ListMethodsRequest", "extension.ListMethodsResponse"),
        "Execute": ("extension.ExecuteRequest", "extension.ExecuteResponse"),
        "Initialize": ("extension.InitializeRequest", "extension.InitializeResponse"),
    }


@pytest.mark.parametrize(("message", "fields"), [
    ("NameResponse", {"name": 1}),
    ("ListMethodsResponse", {"methods": 1}),
    ("InitializeRequest", {"metadata": 1}),
    ("InitializeResponse", {"success": 1, "metadata": 2}),
    ("ExecuteRequest", {"name": 1, "args": 2, "metadata": 3}),
    ("ExecuteResponse", {"outputs": 1}),
    ("ScalarValue", {"value": 1}),
])
def test_extension_field_numbers(message: str, fields: dict[str, int]) -> None:
    desc = extension_pb2.DESCRIPTOR.message_types_by_name[message]
    assert {f.name: f.number for f in desc.fields} == fields


def test_extension_wire_bytes() -> None:
    # What a Go client puts on the wire for ExecuteRequest{name, args:[{"7"}], metadata}.
    request = extension_pb2.ExecuteRequest(
        name="save_action", args=[extension_pb2.ScalarValue(value=b"7")],
        metadata={"k": "v"})
    assert request.SerializeToString() == (
        b"\x0a\x0bsave_action" b"\x12\x03\x0a\x017" b"\x1a\x06\x0a\x01k\x12\x01v")


def test_dbsync_service_has_no_package_and_the_2023_field_names() -> None:
    assert dbsync_pb2.DESCRIPTOR.package == ""
    assert _methods(dbsync_pb2, "DbSyncService") == {"Sync": ("DbSync", "SyncResponse")}
    fields = dbsync_pb2.DESCRIPTOR.message_types_by_name["DbSync"].fields
    assert [(f.name, f.number) for f in fields] == [
        ("originalDbid", 1), ("localProviderDbid", 2), ("providerAddress", 3)]
    message = dbsync_pb2.DbSync(originalDbid="xa", localProviderDbid="xb", providerAddress="0x1")
    assert message.SerializeToString() == b"\x0a\x02xa\x12\x02xb\x1a\x030x1"


def test_sync_shim_service() -> None:
    assert _methods(kwil_sync_pb2, "SyncShim") == {
        "SaveAction": ("kwil_sync.SaveActionRequest", "kwil_sync.SaveActionResponse"),
        "Status": ("kwil_sync.StatusRequest", "kwil_sync.StatusResponse"),
        "PendingItems": ("kwil_sync.PendingItemsRequest", "kwil_sync.PendingItemsResponse"),
        "AckUploaded": ("kwil_sync.AckUploadedRequest", "kwil_sync.AckUploadedResponse"),
        "Calls": ("kwil_sync.CallsRequest", "kwil_sync.CallsResponse"),
    }
