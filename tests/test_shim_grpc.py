"""The shim as kwild and applications see it: a real grpcio client on a real port.

The local provider is the kwild stand-in (kwil_sync.testing.kwil_node), from which the
shim reads action parameter names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.kwil import dbid
from kwil_sync.proto import dbsync_pb2, dbsync_pb2_grpc, extension_pb2, extension_pb2_grpc
from kwil_sync.records import MAX_DOCUMENT_BYTES, SyncRecord, action_id
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.server import RunningShim, start_shim
from kwil_sync.shim_client import ShimClient
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
NAME = "chat"
LOCAL = dbid(ADDRESS, NAME)
SCHEMA = Schema(
    tables=["CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT, author TEXT)"],
    actions=[ActionDef("insert_message_sync", [("$id", "int"), ("$body", "text"),
                                               ("$author", "text")], False,
                       "INSERT INTO messages VALUES ($id, $body, $author)"),
             ActionDef("ping", [], True, "SELECT 1")])


def scalars(*values: object) -> list[extension_pb2.ScalarValue]:
    return [extension_pb2.ScalarValue(value=json.dumps(v).encode()) for v in values]


@pytest.fixture(scope="module")
def node() -> Iterator[KwilNodeStandIn]:
    standin = KwilNodeStandIn.start(version="v0.9")
    standin.deploy(ADDRESS, NAME, SCHEMA)
    yield standin
    standin.stop()


@pytest.fixture
def shim(node: KwilNodeStandIn, tmp_path: Path) -> Iterator[RunningShim]:
    running = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "outbox.sqlite",
                                    kwil_url=node.url, kwil_version="auto",
                                    provider_key=SecretStr(KEY), submit=False))
    yield running
    running.stop(0)


@pytest.fixture
def channel(shim: RunningShim) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(shim.address) as ch:
        yield ch


@pytest.fixture
def extension(channel: grpc.Channel) -> extension_pb2_grpc.ExtensionServiceStub:
    return extension_pb2_grpc.ExtensionServiceStub(channel)


def initialized(extension: extension_pb2_grpc.ExtensionServiceStub, **metadata: str
                ) -> dict[str, str]:
    answer = extension.Initialize(extension_pb2.InitializeRequest(metadata=metadata), timeout=5)
    assert answer.success
    return dict(answer.metadata)


def execute(extension: extension_pb2_grpc.ExtensionServiceStub, metadata: dict[str, str],
            *args: object) -> extension_pb2.ExecuteResponse:
    return extension.Execute(extension_pb2.ExecuteRequest(
        name="save_action", args=scalars(*args), metadata=metadata), timeout=5)


def refusal(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_name_and_methods(extension: extension_pb2_grpc.ExtensionServiceStub) -> None:
    assert extension.Name(extension_pb2.NameRequest(), timeout=5).name == "db_sync"
    methods = extension.ListMethods(extension_pb2.ListMethodsRequest(), timeout=5).methods
    assert list(methods) == ["save_action", "save_action_tx"]


def test_initialize_completes_the_2023_metadata(
        extension: extension_pb2_grpc.ExtensionServiceStub) -> None:
    assert initialized(extension, local_db_name=NAME) == {
        "local_db_name": NAME, "provider_address": ADDRESS, "local_dbid": LOCAL,
        "original_dbid": LOCAL}
    original = dbid("0x" + "ab" * 20, NAME)
    again = initialized(extension, local_db_name=NAME, original_dbid=original, other="kept")
    assert (again["original_dbid"], again["local_dbid"], again["other"]) == (
        original, LOCAL, "kept")
    assert initialized(extension, **again) == again  # kwild re-sends it at node start
    error = refusal(lambda: extension.Initialize(extension_pb2.InitializeRequest(
        metadata={**again, "provider_address": "0x" + "12" * 20}), timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ADDRESS in (error.details() or "")


@pytest.mark.parametrize(("metadata", "words"), [
    ({}, "local_db_name"),
    ({"local_db_name": "  "}, "local_db_name"),
    ({"local_db_name": NAME, "original_dbid": "not-a-dbid"}, "original_dbid"),
])
def test_initialize_refuses_bad_metadata(extension: extension_pb2_grpc.ExtensionServiceStub,
                                         metadata: dict[str, str], words: str) -> None:
    error = refusal(lambda: extension.Initialize(
        extension_pb2.InitializeRequest(metadata=metadata), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (error.details() or "")


def test_execute_writes_a_signed_record_and_answers_its_url(
        extension: extension_pb2_grpc.ExtensionServiceStub, shim: RunningShim) -> None:
    metadata = initialized(extension, local_db_name=NAME)
    answer = execute(extension, metadata, "insert_message_sync", 7, "héllo", 2.50)
    [output] = answer.outputs
    url = json.loads(output.value)  # kwild JSON-decodes outputs
    [pending] = shim.outbox.pending(10)
    assert url == f"https://arweave.net/{pending.item_id}"
    item = DataItem.parse(pending.raw)
    assert item.verify() and item.owner_address == ADDRESS
    record = SyncRecord.from_item(item)
    assert (record.action_name, record.data) == (
        "insert_message_sync", (("$id", "7"), ("$body", "héllo"), ("$author", "2.5")))
    assert (record.original_dbid, record.local_dbid, record.sequence) == (LOCAL, LOCAL, 1)
    assert record.action_id == action_id(LOCAL, "insert_message_sync", ["7", "héllo", "2.5"])
    # kwild runs Execute again (another validator's replay, a view call): same answer
    assert execute(extension, metadata, "insert_message_sync", 7, "héllo", 2.5) == answer
    assert shim.outbox.pending_count() == 1
    second = execute(extension, metadata, "insert_message_sync", 8, "next", "x")
    assert json.loads(second.outputs[0].value) != url
    assert [p.sequence for p in shim.outbox.pending(10)] == [1, 2]


def test_execute_answers_the_action_id_when_configured(node: KwilNodeStandIn,
                                                       tmp_path: Path) -> None:
    running = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "o.sqlite",
                                    kwil_url=node.url, kwil_version="v0.9",
                                    provider_key=SecretStr(KEY), submit=False,
                                    answer_with="action-id"))
    try:
        with grpc.insecure_channel(running.address) as ch:
            stub = extension_pb2_grpc.ExtensionServiceStub(ch)
            answer = execute(stub, initialized(stub, local_db_name=NAME), "ping")
        assert json.loads(answer.outputs[0].value) == action_id(LOCAL, "ping", [])
    finally:
        running.stop(0)


@pytest.mark.parametrize(("args", "words"), [
    (("no_such_action", 1), "no_such_action"),
    (("insert_message_sync", 1, "two"), "takes 3 argument"),
    (("insert_message_sync", 1, "two", "three", "four"), "got 4"),
    (("insert_message_sync", 1, "x" * (MAX_DOCUMENT_BYTES + 1), "a"), "byte limit"),
    (("insert_message_sync", 1, None, "a"), "null"),
    ((), "action name"),
])
def test_execute_refusals_name_the_problem(extension: extension_pb2_grpc.ExtensionServiceStub,
                                           shim: RunningShim, args: tuple[object, ...],
                                           words: str) -> None:
    metadata = initialized(extension, local_db_name=NAME)
    error = refusal(lambda: execute(extension, metadata, *args))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (error.details() or "")
    assert shim.outbox.pending_count() == 0 and shim.outbox.status() == []  # nothing half-written


def test_execute_refuses_an_unknown_method_and_a_foreign_provider(
        extension: extension_pb2_grpc.ExtensionServiceStub) -> None:
    metadata = initialized(extension, local_db_name=NAME)
    error = refusal(lambda: extension.Execute(extension_pb2.ExecuteRequest(
        name="drop_everything", args=scalars("ping"), metadata=metadata), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "drop_everything" in (error.details() or "")
    foreign = {**metadata, "provider_address": "0x" + "12" * 20}
    error = refusal(lambda: execute(extension, foreign, "ping"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_execute_while_the_provider_is_down(
        extension: extension_pb2_grpc.ExtensionServiceStub, node: KwilNodeStandIn,
        shim: RunningShim) -> None:
    metadata = initialized(extension, local_db_name=NAME)
    earlier = execute(extension, metadata, "insert_message_sync", 1, "a", "b")
    node.go_down()
    try:
        # parameters already read stay cached; a repeat is answered from the outbox alone
        assert execute(extension, metadata, "insert_message_sync", 1, "a", "b") == earlier
        cached = execute(extension, metadata, "ping")
        # an action the shim has not seen needs the provider: UNAVAILABLE, nothing stored
        error = refusal(lambda: execute(extension, metadata, "added_later", 1))
    finally:
        node.come_up()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert json.loads(cached.outputs[0].value).startswith("https://arweave.net/")
    assert shim.outbox.pending_count() == 2


def test_dbsync_sync_answers_ok_and_checks_its_input(channel: grpc.Channel) -> None:
    stub = dbsync_pb2_grpc.DbSyncServiceStub(channel)
    answer = stub.Sync(dbsync_pb2.DbSync(originalDbid=LOCAL, localProviderDbid=LOCAL,
                                         providerAddress=ADDRESS), timeout=5)
    assert answer.status == "ok"
    error = refusal(lambda: stub.Sync(dbsync_pb2.DbSync(originalDbid=LOCAL), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sync_shim_api_saves_reports_leases_and_acks(shim: RunningShim) -> None:
    with ShimClient(shim.address, timeout=5) as client:
        first = client.save_action(local_db_name=NAME, action_name="insert_message_sync",
                                   values=["1", "a", "b"])
        again = client.save_action(local_db_name=NAME, action_name="insert_message_sync",
                                   values=["1", "a", "b"])
        assert (first.sequence, first.repeated, again.repeated) == (1, False, True)
        assert again.item_id == first.item_id and first.url.endswith(first.item_id)
        client.save_action(local_db_name=NAME, action_name="ping", values=[])
        batch = client.lease(1, holder="run-a")
        assert [i.item_id for i in batch.items] == [first.item_id] and batch.remaining == 1
        assert DataItem.parse(batch.items[0].raw).id == first.item_id
        assert client.lease(5, holder="run-b").items[0].sequence == 2
        ack = client.ack([first.item_id, "unknown"])
        assert (ack.acknowledged, ack.unknown_ids) == (1, ["unknown"])
        [status] = client.status()
        assert (status.original_dbid, status.provider, status.pending, status.uploaded,
                status.sequence, status.last_uploaded_id) == (LOCAL, ADDRESS, 1, 1, 2,
                                                               first.item_id)
        error = refusal(lambda: client.save_action(local_db_name=NAME, action_name="nope",
                                                   values=[]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        error = refusal(lambda: client.lease(5000))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_save_action_on_kwild_v010_uses_the_namespace(tmp_path: Path) -> None:
    standin = KwilNodeStandIn.start(version="v0.10")
    try:
        standin.deploy(ADDRESS, NAME, SCHEMA)
        running = start_shim(ShimConfig(port=0, outbox_path=tmp_path / "o.sqlite",
                                        kwil_url=standin.url, kwil_version="auto",
                                        provider_key=SecretStr(KEY), submit=False))
        try:
            with ShimClient(running.address, timeout=5) as client:
                saved = client.save_action(local_db_name=NAME, action_name="ping", values=[])
            record = SyncRecord.from_item(DataItem.parse(running.outbox.pending(1)[0].raw))
            assert (record.local_dbid, record.original_dbid, saved.sequence) == (NAME, NAME, 1)
        finally:
            running.stop(0)
    finally:
        standin.stop()
