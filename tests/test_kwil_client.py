"""KwilClient speaks both kwild versions and turns kwild's answers into typed errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from kwil_sync.appliers import KwilApplier
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import build_tx, dbid, encode_action
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.errors import (
    BroadcastRejected,
    DuplicateTx,
    InvalidSignature,
    KwilError,
    NodeUnavailable,
    NonceError,
    NotOwner,
    RpcError,
    TxFailed,
    UnknownAction,
    WrongChainId,
    error_from_rpc,
    error_from_tx_result,
)
from kwil_sync.kwil.rpc_results import ActionInfo
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.testing.procs import free_port

KEY = "f1aa5a7966c3863ccde3047f6a1e266cdc0c76b399e256b8fede92b1c69e4f4e"
OTHER_KEY = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
OWNER = EthereumKey(KEY).address
CHAIN = "client-test"
SCHEMA = Schema(
    ["CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"],
    [ActionDef("add_note", [("$id", "int8"), ("$body", "text")], True,
               "INSERT INTO notes VALUES ($id, $body)"),
     ActionDef("admin_add", [("$id", "int8")], False, "INSERT INTO notes VALUES ($id, 'admin')"),
     ActionDef("get_note", [("$id", "int8")], True, "SELECT body FROM notes WHERE id = $id",
               view=True)],
)


@pytest.fixture(scope="module", params=["v0.9", "v0.10"])
def node(request: pytest.FixtureRequest) -> Iterator[KwilNodeStandIn]:
    with KwilNodeStandIn.start(version=request.param, chain_id=CHAIN,
                               block_interval=0.02) as n:
        n.deploy(OWNER, "notes", SCHEMA)
        yield n


@pytest.fixture
def client(node: KwilNodeStandIn) -> Iterator[KwilClient]:
    with KwilClient(node.url) as c:
        yield c


def target(node: KwilNodeStandIn) -> str:
    return dbid(OWNER, "notes") if node.version == "v0.9" else "notes"


def signed(client: KwilClient, action: str, args: list[Any], *, key: str = KEY,
           nonce: int | None = None, chain_id: str = CHAIN) -> dict[str, Any]:
    address = EthereumKey(key).address
    if nonce is None:
        nonce = client.account_nonce(address) + 1
    int_type = "int" if client.version == "v0.9" else "int8"
    typed = [{"type": int_type if isinstance(v, int) else "text", "value": v} for v in args]
    payload = encode_action(client.version, target_of(client), action, [typed])
    return build_tx(key, payload, description="", fee="0", nonce=nonce, chain_id=chain_id)


def target_of(client: KwilClient) -> str:
    return dbid(OWNER, "notes") if client.version == "v0.9" else "notes"


def test_detects_the_version_and_reads_chain_info(node, client):
    info = client.chain_info()
    assert client.version == node.version
    assert info.chain_id == CHAIN and info.height >= 0
    assert info.gas is (False if node.version == "v0.10" else None)


def test_lists_actions_with_parameters_and_access(node, client):
    actions = {a.name: a for a in client.actions(target(node))}
    typed = node.version == "v0.10"  # v0.9 actions carry no parameter types
    assert actions["add_note"] == ActionInfo(
        "add_note", [("$id", "int8" if typed else None), ("$body", "text" if typed else None)],
        True, ["PUBLIC"] if typed else [])
    assert not actions["admin_add"].public and "OWNER" in actions["admin_add"].modifiers
    assert actions["get_note"].view and not actions["add_note"].view


def test_commit_reports_success_and_failure_without_raising(client):
    first = client.broadcast(signed(client, "add_note", [1, "one"]), "commit")
    assert first.result is not None and first.result.ok and first.result.height > 0
    again = client.broadcast(signed(client, "add_note", [1, "dup"]), "commit")
    assert again.result is not None and again.result.code != 0
    assert "UNIQUE" in again.result.log
    status = client.tx_query(again.tx_hash)
    assert status is not None and status.code == again.result.code


def test_mempool_broadcast_then_tx_query(node, client):
    sent = client.broadcast(signed(client, "add_note", [2, "two"]), "mempool")
    status = client.tx_query(sent.tx_hash)
    assert status is not None  # pending (-1) or already in a block
    assert client.tx_query("00" * 32) is None
    assert client.account_nonce(OWNER, pending=True) >= client.account_nonce(OWNER,
                                                                              pending=False)


def test_typed_refusals(node, client):
    with pytest.raises(WrongChainId):
        client.broadcast(signed(client, "add_note", [3, "x"], chain_id="elsewhere"))
    nonce = client.account_nonce(OWNER)
    with pytest.raises(NonceError) as reused:
        client.broadcast(signed(client, "add_note", [3, "x"], nonce=nonce))
    assert (reused.value.got, reused.value.expected) == (nonce, nonce + 1)
    with pytest.raises(NonceError) as skipped:
        client.broadcast(signed(client, "add_note", [3, "x"], nonce=nonce + 5))
    assert skipped.value.expected == nonce + 1
    tampered = signed(client, "add_note", [3, "x"])
    tampered["body"]["desc"] = "not what was signed"
    with pytest.raises(InvalidSignature):
        client.broadcast(tampered)
    tx = signed(client, "add_note", [3, "x"])
    client.broadcast(tx)
    duplicate = DuplicateTx if node.version == "v0.10" else RpcError
    with pytest.raises(duplicate):
        client.broadcast(tx)


def test_private_action_from_a_stranger_fails_as_not_owner(client):
    stranger = signed(client, "admin_add", [50], key=OTHER_KEY)
    result = client.broadcast(stranger, "commit").result
    assert result is not None and result.code != 0
    assert isinstance(error_from_tx_result(result.code, result.log), NotOwner)


def test_view_call_and_its_errors(node, client):
    client.broadcast(signed(client, "add_note", [7, "seven"]), "commit")
    int_type = "int" if node.version == "v0.9" else "int8"
    rows = client.call(target(node), "get_note", [{"type": int_type, "value": 7}])
    assert rows == [{"body": "seven"}]
    with pytest.raises(UnknownAction):
        client.call(target(node), "no_such_action", [])
    with pytest.raises(UnknownAction):
        client.call("nowhere" if node.version == "v0.10" else "x" + "0" * 56, "get_note", [])
    assert client.estimate_price(signed(client, "add_note", [8, "x"])) == "0"


def test_read_query_on_both_versions(node, client):
    client.broadcast(signed(client, "add_note", [40, "queried"]), "commit")
    if node.version == "v0.9":
        rows = client.query("SELECT id, body FROM notes WHERE id = 40", dbid=target(node))
        with pytest.raises(ValueError, match="give its dbid"):
            client.query("SELECT id FROM notes")
    else:
        rows = client.query("SELECT id, body FROM notes.notes WHERE id = 40")
        with pytest.raises(ValueError, match="takes no dbid"):
            client.query("SELECT id FROM notes.notes", dbid="notes")
    assert rows == [{"id": 40, "body": "queried"}]
    dbid_arg = {"dbid": target(node)} if node.version == "v0.9" else {}
    with pytest.raises(RpcError):  # kwild runs user.query read-only
        client.query(f"DELETE FROM {'notes' if dbid_arg else 'notes.notes'}", **dbid_arg)


def test_the_2023_history_is_read_through_the_client(node, client):
    applier = KwilApplier(client, KEY, target(node), db_sync_history=True)
    if node.version == "v0.10":
        with pytest.raises(KwilError, match="v0.9 convention"):
            applier.applied_elsewhere()
        return
    # this database has no db_sync_history table: kwild's words, in a KwilError
    with pytest.raises(KwilError, match=f"cannot read db_sync_history on {target(node)}: "
                                        "no such table"):
        applier.applied_elsewhere()
    down = KwilClient(f"http://127.0.0.1:{free_port()}", version="v0.9", timeout=2)
    with pytest.raises(NodeUnavailable):
        KwilApplier(down, KEY, target(node), db_sync_history=True).applied_elsewhere()


def test_node_not_running_is_node_unavailable():
    url = f"http://127.0.0.1:{free_port()}"
    with KwilClient(url, version="v0.10", timeout=2) as client, \
            pytest.raises(NodeUnavailable, match="is kwild running at"):
        client.chain_info()


def _answer(path: str) -> tuple[int, str]:
    if path.startswith("/down"):
        return 503, "<html>upstream unavailable</html>"
    if path.startswith("/auth"):
        return 200, '{"jsonrpc": "2.0", "id": 1, "result": {"chain_id": "ok"}}'
    return 200, "not json"


@pytest.fixture
def odd_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A 127.0.0.1 server answering like a proxy in front of kwild would (by path)."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers))
            status, text = _answer(self.path)
            self.send_response(status)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_gateway_errors_are_node_unavailable_and_garbage_is_an_rpc_error(odd_server):
    url, _ = odd_server
    with pytest.raises(NodeUnavailable):
        KwilClient(f"{url}/down", version="v0.9").chain_info()
    with pytest.raises(RpcError, match="not a JSON-RPC answer: not json"):
        KwilClient(f"{url}/odd", version="v0.9").chain_info()

    def answer(request: httpx.Request) -> httpx.Response:  # the same through httpx
        status, text = _answer(request.url.path)
        return httpx.Response(status, text=text)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with pytest.raises(NodeUnavailable):
        KwilClient("http://proxy.test/down", version="v0.9", http=http).chain_info()
    with pytest.raises(RpcError, match="not a JSON-RPC answer"):
        KwilClient("http://proxy.test/odd", version="v0.9", http=http).chain_info()


def test_user_and_password_in_the_url_are_basic_auth(odd_server):
    url, seen = odd_server
    authed = url.replace("http://", "http://kwil:s%3Acret@") + "/auth"
    assert KwilClient(authed, version="v0.9").chain_info().chain_id == "ok"
    assert seen[-1]["Authorization"] == "Basic a3dpbDpzOmNyZXQ="  # kwil:s:cret
    with pytest.raises(ValueError, match="http:// or https://"):
        KwilClient("ftp://127.0.0.1:1/", version="v0.9")


def test_error_mapping_from_kwild_payloads():
    v09_nonce = error_from_rpc(-201, "broadcast error", {
        "tx_code": 4, "hash": "ab", "message": "invalid nonce for account 00: got 3, expected 5"})
    assert isinstance(v09_nonce, NonceError) and (v09_nonce.got, v09_nonce.expected) == (3, 5)
    v010_signature = error_from_rpc(-201, "broadcast error", {
        "code": 65535, "hash": "ab",
        "message": "failed to verify the transaction: invalid signature: expected address"})
    assert isinstance(v010_signature, InvalidSignature)
    assert isinstance(error_from_rpc(-201, "broadcast error", {"code": 6, "message": "x"}),
                      BroadcastRejected)
    commit_failure = error_from_rpc(-201, "broadcast error", {
        "tx_code": 4294967295, "hash": "cd", "message": 'action "nope" not found'})
    assert isinstance(commit_failure, UnknownAction) and commit_failure.tx_hash == "cd"
    sql_failure = error_from_rpc(-201, "broadcast error", {
        "tx_code": 4294967295, "hash": "ef", "message": "ERROR: relation already exists"})
    assert type(sql_failure) is TxFailed  # an execution failure, not a duplicate tx
    assert isinstance(error_from_rpc(-300, "cannot call owner action, not owner"), NotOwner)
    assert isinstance(error_from_rpc(-301, "dataset not found"), UnknownAction)
    plain = error_from_rpc(-32602, "invalid params")
    assert type(plain) is RpcError and plain.code == -32602
    assert type(error_from_tx_result(65535, "ERROR: division by zero")) is TxFailed

