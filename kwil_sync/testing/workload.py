"""A realistic workload for the demo, benches and end-to-end tests: a messages database.

The schema follows the private-twin convention of the 2023 extension: each public
action writes its rows and records a private twin through `db_sync.save_action`, with
the caller and the time passed as values, so a replay reproduces them instead of
recomputing them. In Kuneiform (kwild v0.9):

    database messages;
    use db_sync {local_db_name: 'messages'} as db_sync;
    table messages { id int primary key, body text notnull, author text notnull,
                     created_at int notnull }
    action post_message($id, $body, $created_at) public {
        INSERT INTO messages VALUES ($id, $body, @caller, $created_at);
        $r = db_sync.save_action('post_message_sync', $id, $body, @caller, $created_at);
    }
    action post_message_sync($id, $body, $author, $created_at) private {
        INSERT INTO messages VALUES ($id, $body, $author, $created_at);
    }
    (edit_message / edit_message_sync likewise, with an UPDATE)

The Kwil node stand-in has no Kuneiform and no extensions, so `MessagesWorkload` plays
kwild's part: it commits each public action on the node, then makes the extension
call kwild would make, `Execute save_action(...)` over gRPC to the shim, with the
metadata the shim returned from `Initialize`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.pipeline import NoncePipeline
from kwil_sync.kwil.values import convert_arguments
from kwil_sync.testing.kwil_node_schema import ActionDef, Schema
from proto import extension_pb2, extension_pb2_grpc

__all__ = ["MESSAGES_SCHEMA", "MessagesWorkload", "SyncedCall"]

_INSERT = "INSERT INTO messages (id, body, author, created_at) VALUES ($id, $body, {author}, " \
          "$created_at)"
_UPDATE = "UPDATE messages SET body = $body WHERE id = $id AND author = {author}"

MESSAGES_SCHEMA = Schema(
    tables=["CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT NOT NULL, "
            "author TEXT NOT NULL, created_at INTEGER NOT NULL)"],
    actions=[
        ActionDef("post_message", [("$id", "int"), ("$body", "text"), ("$created_at", "int")],
                  True, _INSERT.format(author="@caller")),
        ActionDef("post_message_sync", [("$id", "int"), ("$body", "text"), ("$author", "text"),
                                        ("$created_at", "int")],
                  False, _INSERT.format(author="$author")),
        ActionDef("edit_message", [("$id", "int"), ("$body", "text")], True,
                  _UPDATE.format(author="@caller")),
        ActionDef("edit_message_sync", [("$id", "int"), ("$body", "text"), ("$author", "text")],
                  False, _UPDATE.format(author="$author")),
    ])


@dataclass(frozen=True)
class SyncedCall:
    """One public action and the values of its private twin."""

    action: str
    values: list[str]

    @property
    def twin(self) -> str:
        return f"{self.action}_sync"


class MessagesWorkload:
    """Write posts and edits on a provider the way kwild with the db_sync extension would.

    Args:
        client: The provider's node (the stand-in).
        target: The database's dbid (v0.9) or namespace (v0.10) on that node.
        user_key_hex: The key of the user who posts (becomes `@caller`).
        shim_address: host:port of the shim serving the db_sync extension.
        metadata: What the shim's `Initialize` returned for this database.
    """

    def __init__(self, client: KwilClient, target: str, user_key_hex: str, shim_address: str,
                 metadata: dict[str, str], *, seed: int = 7) -> None:
        self.client, self.target, self.metadata = client, target, metadata
        self.user = EthereumKey(user_key_hex).address
        self._pipeline = NoncePipeline(client, user_key_hex, client.chain_info().chain_id)
        self._channel = grpc.insecure_channel(shim_address)
        self._extension = extension_pb2_grpc.ExtensionServiceStub(self._channel)
        self._params = {a.name: list(a.parameters) for a in client.actions(target)}
        self._random = random.Random(seed)
        self._next_id = 1
        self._planned = 0

    @staticmethod
    def initialize(shim_address: str, local_db_name: str,
                   original_dbid: str | None = None) -> dict[str, str]:
        """Call the shim's Initialize as kwild does when the database is deployed."""
        metadata = {"local_db_name": local_db_name}
        if original_dbid:
            metadata["original_dbid"] = original_dbid
        with grpc.insecure_channel(shim_address) as channel:
            stub = extension_pb2_grpc.ExtensionServiceStub(channel)
            answer = stub.Initialize(extension_pb2.InitializeRequest(metadata=metadata),
                                     timeout=5)
        return dict(answer.metadata)

    def plan(self, count: int) -> list[SyncedCall]:
        """`count` actions: mostly new posts, some edits of earlier posts."""
        calls = []
        for _ in range(count):
            self._planned += 1
            now = str(int(time.time() * 1000))
            if self._next_id > 5 and self._random.random() < 0.2:
                post = self._random.randrange(1, self._next_id)
                calls.append(SyncedCall("edit_message",
                                        [str(post), f"edit {self._planned} at {now}"]))
            else:
                body = f"message {self._next_id}: " + self._random.choice(
                    ["hello", "gm", "ünïcode ✓", "quote ' and \" marks", "a; DROP TABLE x"])
                calls.append(SyncedCall("post_message", [str(self._next_id), body, now]))
                self._next_id += 1
        return calls

    def run(self, calls: Sequence[SyncedCall]) -> list[str]:
        """Commit each action on the node, then save its twin through the shim.

        Returns:
            What save_action answered for each call (the record's Arweave URL).

        Raises:
            RuntimeError: If the node refused an action.
        """
        txs = [(self.target, c.action, [convert_arguments(self.client.version,
                                                          self._params[c.action], c.values)])
               for c in calls]
        for outcome in self._pipeline.execute(txs):
            if not outcome.ok:
                raise RuntimeError(f"{calls[outcome.index].action} failed on the node: "
                                   f"{outcome.log}")
        return [self.save_action(c.twin, self._twin_values(c)) for c in calls]

    def _twin_values(self, call: SyncedCall) -> list[str]:
        if call.action == "post_message":
            post_id, body, created_at = call.values
            return [post_id, body, self.user, created_at]
        post_id, body = call.values
        return [post_id, body, self.user]

    def save_action(self, action_name: str, values: Sequence[str]) -> str:
        """The extension call kwild makes: Execute save_action(action_name, ...values)."""
        args = [extension_pb2.ScalarValue(value=json.dumps(v).encode())
                for v in [action_name, *values]]
        answer = self._extension.Execute(extension_pb2.ExecuteRequest(
            name="save_action", args=args, metadata=self.metadata), timeout=5)
        return str(json.loads(answer.outputs[0].value))

    def close(self) -> None:
        self._channel.close()
