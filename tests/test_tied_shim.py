"""The shim's tied form over real gRPC: what Execute save_action_tx accepts and refuses,
view calls (no @txid) that store nothing, and a version 1 outbox upgraded in place."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from test_tied_capture import World, start_world

from kwil_sync.outbox import Outbox
from kwil_sync.proto import extension_pb2, extension_pb2_grpc

TX = "ab" * 32


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = start_world(tmp_path)
    yield w
    w.client.close()
    w.workload.close()
    w.node.stop()
    w.shim.stop()


def execute(world: World, *args: object) -> str:
    metadata = world.node.chain.databases[world.target].extension_metadata["db_sync"]
    with grpc.insecure_channel(world.shim.address) as channel:
        stub = extension_pb2_grpc.ExtensionServiceStub(channel)
        answer = stub.Execute(extension_pb2.ExecuteRequest(
            name="save_action_tx", metadata=metadata,
            args=[extension_pb2.ScalarValue(value=json.dumps(a).encode()) for a in args]),
            timeout=5)
    return str(json.loads(answer.outputs[0].value))


def test_a_tied_call_is_answered_with_its_action_id_and_stored_once(world: World) -> None:
    author = "0x" + "12" * 20
    first = execute(world, TX, 7, "post_message_sync", 1, "hi", author, 5)
    again = execute(world, TX, 7, "post_message_sync", 1, "hi", author, 5)
    other_tx = execute(world, "cd" * 32, 7, "post_message_sync", 1, "hi", author, 5)
    assert first == again != other_tx and len(first) == 32
    calls = world.client.calls()
    assert [(c.action_id, c.tx_hash, c.height, c.call_index, c.state) for c in calls] == [
        (first, TX, 7, 0, "waiting"), (other_tx, "cd" * 32, 7, 0, "waiting")]


def test_a_view_call_without_txid_stores_nothing(world: World) -> None:
    answer = execute(world, "", 0, "post_message_sync", 1, "hi", "0x" + "12" * 20, 5)
    assert len(answer) == 32 and world.client.calls() == []


@pytest.mark.parametrize("args,words", [
    (("post_message_sync",), "@txid, @height"),
    (("zz", 7, "post_message_sync", 1, "hi", "a", 5), "64 hex digits"),
    ((TX, "later", "post_message_sync", 1, "hi", "a", 5), "@height"),
    ((TX, 7, "post_message_sync", 1), "takes 4 argument"),
    ((TX, 7, "no_such_action", 1), "no action"),
])
def test_malformed_tied_calls_fail_the_transaction(world: World, args: tuple[object, ...],
                                                   words: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        execute(world, *args)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert words in info.value.details()  # type: ignore[attr-defined]
    assert world.client.calls() == []


def test_a_version_1_outbox_is_upgraded_and_its_items_count_as_untied(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE items (id INTEGER PRIMARY KEY, action_id TEXT NOT NULL UNIQUE,
            item_id TEXT NOT NULL UNIQUE, provider TEXT NOT NULL, original_dbid TEXT NOT NULL,
            sequence INTEGER NOT NULL, raw BLOB NOT NULL, created_at_ms INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending', lease_holder TEXT, lease_until_ms INTEGER,
            receipt TEXT, uploaded_at_ms INTEGER, UNIQUE (provider, original_dbid, sequence));
        CREATE TABLE chains (provider TEXT NOT NULL, original_dbid TEXT NOT NULL,
            sequence INTEGER NOT NULL, last_action_id TEXT NOT NULL, last_uploaded_id TEXT,
            PRIMARY KEY (provider, original_dbid));
        INSERT INTO items (action_id, item_id, provider, original_dbid, sequence, raw,
            created_at_ms) VALUES ('a1', 'i1', 'p', 'xdb', 1, x'00', 1);
        INSERT INTO chains VALUES ('p', 'xdb', 1, 'a1', NULL);
        PRAGMA user_version = 1;
    """)
    db.close()
    outbox = Outbox(path)
    try:
        [status] = outbox.status()
        assert (status.sequence, status.pending, status.untied, status.voided) == (1, 1, 1, 0)
        assert outbox.calls() == []
    finally:
        outbox.close()
