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

With the tied form (`messages_schema("tied")`, docs/SHIM.md "Commit-tied capture") the
actions call `db_sync.save_action_tx(@txid, @height, 'post_message_sync', ...)`, and the
Kwil node stand-in, started with the shim as its extension endpoint, makes that call
itself while it executes the block, as kwild v0.9 does: `MessagesWorkload(...,
node_calls_extension=True)` only sends the transactions. Without it (the 2023 form on a
node without extensions) the workload plays kwild's part: it commits each public action,
then makes the extension call `Execute save_action(...)` over gRPC to the shim, with the
metadata the shim returned from `Initialize`; those records are untied.
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
from kwil_sync.kwil.pipeline import NoncePipeline, TxOutcome
from kwil_sync.kwil.values import convert_arguments
from kwil_sync.proto import extension_pb2, extension_pb2_grpc
from kwil_sync.testing.kwil_node_schema import ActionDef, ExtensionUse, Schema

__all__ = ["MESSAGES_SCHEMA", "MessagesWorkload", "SyncedCall", "messages_schema"]

_INSERT = "INSERT INTO messages (id, body, author, created_at) VALUES ($id, $body, {author}, " \
          "$created_at)"
_UPDATE = "UPDATE messages SET body = $body WHERE id = $id AND author = {author}"

_SAVES = {
    "none": "",
    "untied": "; $r = db_sync.save_action('{twin}', {values})",
    "tied": "; $r = db_sync.save_action_tx(@txid, @height, '{twin}', {values})",
}


def messages_schema(sync: str = "none", local_db_name: str = "messages") -> Schema:
    """The messages schema; `sync` says how its public actions reach the shim.

    Args:
        sync: "none" (no extension: a restore target, or a node the workload calls the
            shim for), "untied" (the 2023 `save_action` form) or "tied"
            (`save_action_tx(@txid, @height, ...)`).
        local_db_name: The `local_db_name` of the `use db_sync {...}` metadata.
    """
    save = _SAVES[sync]
    post = save.format(twin="post_message_sync", values="$id, $body, @caller, $created_at")
    edit = save.format(twin="edit_message_sync", values="$id, $body, @caller")
    uses = [ExtensionUse("db_sync", "db_sync", {"local_db_name": local_db_name})] if save else []
    return Schema(
        tables=["CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT NOT NULL, "
                "author TEXT NOT NULL, created_at INTEGER NOT NULL)"],
        actions=[
            ActionDef("post_message", [("$id", "int"), ("$body", "text"),
                                       ("$created_at", "int")],
                      True, _INSERT.format(author="@caller") + post),
            ActionDef("post_message_sync", [("$id", "int"), ("$body", "text"),
                                            ("$author", "text"), ("$created_at", "int")],
                      False, _INSERT.format(author="$author")),
            ActionDef("edit_message", [("$id", "int"), ("$body", "text")], True,
                      _UPDATE.format(author="@caller") + edit),
            ActionDef("edit_message_sync", [("$id", "int"), ("$body", "text"),
                                            ("$author", "text")],
                      False, _UPDATE.format(author="$author")),
        ],
        extensions=uses)


MESSAGES_SCHEMA = messages_schema("none")


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
        metadata: What the shim's `Initialize` returned for this database (unused when
            the node calls the extension).
        node_calls_extension: The node runs `save_action_tx` itself (a schema from
            `messages_schema("tied")` on a stand-in with the shim as its extension);
            the workload then only sends the transactions.
    """

    def __init__(self, client: KwilClient, target: str, user_key_hex: str, shim_address: str,
                 metadata: dict[str, str], *, seed: int = 7,
                 node_calls_extension: bool = False) -> None:
        self.client, self.target, self.metadata = client, target, metadata
        self.node_calls_extension = node_calls_extension
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
        """Commit each action on the node, and save its twin through the shim unless the
        node does (`node_calls_extension`).

        Returns:
            What save_action answered for each call (the record's Arweave URL), or, when
            the node calls the extension, each call's transaction hash.

        Raises:
            RuntimeError: If the node refused an action.
        """
        outcomes = self.execute([[c] for c in calls])
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"{calls[failed[0].index].action} failed on the node: "
                               f"{failed[0].log}")
        if self.node_calls_extension:
            return [o.tx_hash for o in sorted(outcomes, key=lambda o: o.index)]
        return [self.save_action(c.twin, self._twin_values(c)) for c in calls]

    def execute(self, transactions: Sequence[Sequence[SyncedCall]]) -> list[TxOutcome]:
        """One transaction per entry, each with one argument set per call (same action)."""
        txs = [(self.target, group[0].action,
                [convert_arguments(self.client.version, self._params[c.action], c.values)
                 for c in group]) for group in transactions]
        return list(self._pipeline.execute(txs))

    def run_rolled_back(self) -> TxOutcome:
        """One transaction of two posts whose second argument set fails (its id exists).

        The first set runs, and with the tied form kwild (the stand-in) calls the shim
        for it, before the second set fails and rolls the whole transaction back.

        Raises:
            RuntimeError: If no post exists yet to collide with, or the node committed it.
        """
        if self._next_id <= 1:
            raise RuntimeError("run some posts first: the failing set reuses post id 1")
        now = str(int(time.time() * 1000))
        fresh = SyncedCall("post_message", [str(self._next_id), "never committed", now])
        clash = SyncedCall("post_message", ["1", "clashes with post 1", now])
        [outcome] = self.execute([[fresh, clash]])
        if outcome.ok:
            raise RuntimeError("the node committed a transaction whose second set had to fail")
        return outcome

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
