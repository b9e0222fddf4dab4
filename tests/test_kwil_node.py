"""The kwild stand-in checks and executes transactions as kwild does, on the wire.

Wire-level: raw JSON-RPC over httpx, so codes, messages and shapes are checked as
kwild v0.9.4 / v0.10.2 send them (kwil-db usersvc, abci CheckTx, txapp).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import build_tx, dbid, encode_action, tx_hash
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.testing.procs import free_port, stop_process, wait_until

OWNER_KEY = "f1aa5a7966c3863ccde3047f6a1e266cdc0c76b399e256b8fede92b1c69e4f4e"
OTHER_KEY = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
OWNER = EthereumKey(OWNER_KEY).address
OTHER = EthereumKey(OTHER_KEY).address
CHAIN = "standin-test"
SCHEMA = Schema(
    ["CREATE TABLE msgs (id INTEGER PRIMARY KEY, body TEXT, author TEXT, height INTEGER)"],
    [ActionDef("insert_msg", [("$id", "int8"), ("$body", "text")], True,
               "INSERT INTO msgs VALUES ($id, $body, @caller, @height)"),
     ActionDef("owner_note", [("$id", "int8"), ("$body", "text")], False,
               "INSERT INTO msgs VALUES ($id, $body, 'owner', @height)"),
     ActionDef("list_msgs", [], True, "SELECT id, body, author FROM msgs ORDER BY id", view=True)],
)
UNKNOWN = {"v0.9": 0xFFFFFFFF, "v0.10": 0xFFFF}


@pytest.fixture(params=["v0.9", "v0.10"])
def node(request: pytest.FixtureRequest) -> Iterator[KwilNodeStandIn]:
    """A stand-in that makes blocks only when the test says so."""
    with KwilNodeStandIn.start(version=request.param, chain_id=CHAIN, block_interval=0) as n:
        n.deploy(OWNER, "testdb", SCHEMA)
        yield n


def target(node: KwilNodeStandIn) -> str:
    """Where `testdb` lives: its dbid on v0.9, its namespace on v0.10."""
    return dbid(OWNER, "testdb") if node.version == "v0.9" else "testdb"


def rpc(node: KwilNodeStandIn, method: str, **params: Any) -> dict[str, Any]:
    answer = httpx.post(f"{node.url}/rpc/v1", json={"jsonrpc": "2.0", "id": 7,
                                                   "method": method, "params": params})
    body: dict[str, Any] = answer.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 7
    return body


def tx(node: KwilNodeStandIn, nonce: int, action: str = "insert_msg", row: int = 1, *,
       key: str = OWNER_KEY, chain_id: str = CHAIN) -> dict[str, Any]:
    int_type = "int" if node.version == "v0.9" else "int8"
    payload = encode_action(node.version, target(node), action,
                            [[{"type": int_type, "value": row},
                              {"type": "text", "value": f"row {row}"}]])
    return build_tx(key, payload, description="test", fee="0", nonce=nonce, chain_id=chain_id)


def broadcast(node: KwilNodeStandIn, signed: dict[str, Any], mode: str = "mempool",
              ) -> dict[str, Any]:
    sync = {"v0.9": {"mempool": 1, "commit": 2}, "v0.10": {"mempool": 0, "commit": 1}}
    return rpc(node, "user.broadcast", tx=signed, sync=sync[node.version][mode])


def hash_param(node: KwilNodeStandIn, digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode() if node.version == "v0.9" else digest


def rejection(node: KwilNodeStandIn, answer: dict[str, Any]) -> tuple[int, str]:
    """(tx code, log) of a refused broadcast, checking kwild's error envelope."""
    error = answer["error"]
    assert error["code"] == -201 and error["message"] == "broadcast error"
    code_key = "tx_code" if node.version == "v0.9" else "code"
    return error["data"][code_key], error["data"]["message"]


def test_accepts_a_correct_transaction_and_executes_it_in_the_next_block(node):
    signed = tx(node, 1)
    answer = broadcast(node, signed)["result"]
    digest = tx_hash(signed, node.version)
    expected = base64.b64encode(bytes.fromhex(digest)).decode() if node.version == "v0.9" \
        else digest
    assert answer["tx_hash"] == expected
    pending = rpc(node, "user.tx_query", tx_hash=hash_param(node, digest))["result"]
    assert pending["height"] == -1
    assert node.rows(target(node), "SELECT * FROM msgs") == []
    node.make_block()
    done = rpc(node, "user.tx_query", tx_hash=hash_param(node, digest))["result"]
    assert done["height"] == node.chain.height and done["tx_result"]["code"] == 0
    assert done["tx"]["body"]["nonce"] == 1
    assert node.rows(target(node), "SELECT id, body, author, height FROM msgs") == [
        {"id": 1, "body": "row 1", "author": OWNER, "height": node.chain.height}]
    account = rpc(node, "user.account", **_account_params(node, OWNER))["result"]
    assert account["nonce"] == 1


def _account_params(node: KwilNodeStandIn, address: str, status: int = 1) -> dict[str, Any]:
    ident = address.lower()[2:]
    if node.version == "v0.9":
        return {"identifier": ident, "status": status}
    return {"id": {"identifier": ident, "key_type": "secp256k1"}, "status": status}


def test_refuses_a_wrong_chain_id(node):
    code, log = rejection(node, broadcast(node, tx(node, 1, chain_id="other-chain")))
    assert code == 5
    assert log == ("wrong chain ID" if node.version == "v0.9" else "wrong chain ID: other-chain")


def test_refuses_a_reused_nonce(node):
    assert "result" in broadcast(node, tx(node, 1, row=1))
    node.make_block()
    code, log = rejection(node, broadcast(node, tx(node, 1, row=2)))
    assert code == 4
    assert log == f"invalid nonce for account {OWNER.lower()[2:]}: got 1, expected 2"


def test_refuses_a_skipped_nonce_counting_the_mempool(node):
    assert "result" in broadcast(node, tx(node, 1, row=1))  # pending, not in a block yet
    code, log = rejection(node, broadcast(node, tx(node, 3, row=3)))
    assert (code, log) == (4, f"invalid nonce for account {OWNER.lower()[2:]}: got 3, "
                              f"expected 2")
    assert "result" in broadcast(node, tx(node, 2, row=2))


def test_refuses_a_bad_signature(node):
    signed = tx(node, 1)
    signed["body"]["desc"] = "changed after signing"  # the signature now recovers elsewhere
    code, log = rejection(node, broadcast(node, signed))
    if node.version == "v0.9":
        assert code == 3 and log.startswith("invalid signature: expected address ")
    else:
        assert code == UNKNOWN["v0.10"]
        assert log.startswith("failed to verify the transaction: invalid signature: expected "
                              f"address {OWNER.lower()[2:]}, received ")
    assert node.chain.nonce(OWNER, pending=True) == 0


def test_refuses_a_private_action_from_a_non_owner_and_runs_it_for_the_owner(node):
    stranger = tx(node, 1, "owner_note", row=5, key=OTHER_KEY)
    owner = tx(node, 1, "owner_note", row=6)
    for signed in (stranger, owner):
        assert "result" in broadcast(node, signed)
    node.make_block()
    refused = rpc(node, "user.tx_query",
                  tx_hash=hash_param(node, tx_hash(stranger, node.version)))["result"]
    message = ("cannot call owner action, not owner" if node.version == "v0.9" else
               "action is owner-only: action owner_note can only be executed by the owner")
    assert refused["tx_result"]["code"] == UNKNOWN[node.version]
    assert refused["tx_result"]["log"] == message
    ran = rpc(node, "user.tx_query", tx_hash=hash_param(node, tx_hash(owner, node.version)))
    assert ran["result"]["tx_result"]["code"] == 0
    assert node.rows(target(node), "SELECT id, author FROM msgs") == [{"id": 6,
                                                                      "author": "owner"}]
    assert node.chain.nonce(OTHER, pending=False) == 1  # a failed transaction uses its nonce


def test_a_failed_action_rolls_back_and_reports_the_sqlite_error(node):
    first, again = tx(node, 1, row=9), tx(node, 2, row=9)  # same primary key twice
    broadcast(node, first)
    broadcast(node, again)
    node.make_block()
    failed = rpc(node, "user.tx_query", tx_hash=hash_param(node, tx_hash(again, node.version)))
    assert failed["result"]["tx_result"]["code"] == UNKNOWN[node.version]
    assert "UNIQUE constraint failed" in failed["result"]["tx_result"]["log"]
    assert len(node.rows(target(node), "SELECT * FROM msgs")) == 1


def test_unknown_transaction_is_error_202(node):
    error = rpc(node, "user.tx_query", tx_hash=hash_param(node, "ab" * 32))["error"]
    assert error == {"code": -202, "message": "transaction not found"}


def test_duplicate_transaction(node):
    signed = tx(node, 1)
    broadcast(node, signed)
    error = broadcast(node, signed)["error"]
    if node.version == "v0.9":  # CometBFT's cache refuses it before kwild sees it
        assert error == {"code": -200, "message": "failed to broadcast transaction"}
    else:
        assert rejection(node, {"error": error}) == (0xFFFF, "transaction already exists")


def test_commit_mode_waits_for_the_block(node):
    with KwilNodeStandIn.start(version=node.version, chain_id=CHAIN, block_interval=0.05) as live:
        live.deploy(OWNER, "testdb", SCHEMA)
        answer = broadcast(live, tx(live, 1), "commit")
        assert live.rows(target(live), "SELECT id FROM msgs") == [{"id": 1}]
        if live.version == "v0.10":
            assert answer["result"]["result"] == {"code": 0, "gas": 0, "log": ""}
        failed = broadcast(live, tx(live, 2), "commit")
        if live.version == "v0.9":  # a failed execution comes back as a broadcast error
            assert rejection(live, failed)[0] == UNKNOWN["v0.9"]
        else:
            assert failed["result"]["result"]["code"] == UNKNOWN["v0.10"]


def test_chain_info_and_schema_shapes(node):
    info = rpc(node, "user.chain_info")["result"]
    assert info["chain_id"] == CHAIN and info["block_height"] == 0
    assert ("gas" in info) == (node.version == "v0.10")
    if node.version == "v0.9":
        assert target(node) == dbid(OWNER, "testdb")
        schema = rpc(node, "user.schema", dbid=target(node))["result"]["schema"]
        assert schema["owner"] == OWNER.lower()[2:]
        assert [(a["name"], a["parameters"], a["modifiers"]) for a in schema["actions"]] == [
            ("insert_msg", ["$id", "$body"], []), ("owner_note", ["$id", "$body"], ["OWNER"]),
            ("list_msgs", [], ["VIEW"])]
        assert rpc(node, "user.schema", dbid="xnope")["error"]["code"] == -301
    else:
        assert target(node) == "testdb"
        assert rpc(node, "user.schema", dbid="x")["error"]["code"] == -32601


def test_view_call_returns_rows_and_refuses_a_mutating_action(node):
    broadcast(node, tx(node, 1, row=4))
    node.make_block()
    payload = base64.b64encode(_call_payload(node, "list_msgs")).decode()
    params: dict[str, Any] = {
        "body": {"payload": payload, "challenge": ""}, "auth_type": "", "sender": "",
        "signature": {"sig": "", "type": ""} if node.version == "v0.9" else ""}
    result = rpc(node, "user.call", **params)["result"]
    if node.version == "v0.9":
        rows = json.loads(base64.b64decode(result["result"]))
    else:
        qr = result["query_result"]
        rows = [dict(zip(qr["column_names"], v, strict=True)) for v in qr["values"]]
    assert rows == [{"id": 4, "body": "row 4", "author": OWNER}]
    params["body"]["payload"] = base64.b64encode(_call_payload(node, "insert_msg")).decode()
    assert rpc(node, "user.call", **params)["error"]["code"] == -300


def _call_payload(node: KwilNodeStandIn, action: str) -> bytes:
    from kwil_sync.kwil import encode_call

    args = [] if action == "list_msgs" else [{"type": "text", "value": "1"},
                                             {"type": "text", "value": "x"}]
    return encode_call(node.version, target(node), action, args)


def test_faults_down_slow_and_reject(node):
    node.go_down()
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{node.url}/rpc/v1", json={})
    node.come_up()
    node.reject_broadcasts(1, code=-200, message="failed to broadcast transaction")
    assert broadcast(node, tx(node, 1))["error"]["code"] == -200
    assert "result" in broadcast(node, tx(node, 1))  # the rejection queued nothing
    node.restart()
    assert node.chain.lookup(tx_hash(tx(node, 1), node.version)) is None
    node.set_delay(0.2)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{node.url}/rpc/v1", json={"jsonrpc": "2.0", "id": 1,
                                              "method": "user.ping", "params": {}}, timeout=0.05)


def test_state_survives_a_restart_with_a_data_dir(tmp_path):
    with KwilNodeStandIn.start(version="v0.10", chain_id=CHAIN, block_interval=0,
                               data_dir=tmp_path) as first:
        first.deploy(OWNER, "testdb", SCHEMA)
        broadcast(first, tx(first, 1))
        first.make_block()
        height = first.chain.height
    with KwilNodeStandIn.start(version="v0.10", chain_id=CHAIN, block_interval=0,
                               data_dir=tmp_path) as second:
        assert second.chain.height == height
        assert second.chain.nonce(OWNER, pending=False) == 1
        assert second.rows("testdb", "SELECT id FROM msgs") == [{"id": 1}]


def test_runs_as_a_separate_process_driven_over_rpc():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kwil_sync.testing.kwil_node", "--version", "v0.9", "--port",
         str(port), "--chain-id", CHAIN, "--block-interval", "0"],
        stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready == {"url": f"http://127.0.0.1:{port}", "version": "v0.9", "chain_id": CHAIN}

        def call(method: str, **params: Any) -> Any:
            return httpx.post(f"{ready['url']}/rpc/v1", json={
                "jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()

        wait_until(lambda: "result" in call("user.ping"), timeout=10, what="stand-in")
        deployed = call("standin.deploy", owner=OWNER, name="procdb", schema=json.loads(
            SCHEMA.to_json()))["result"]["target"]
        assert deployed == dbid(OWNER, "procdb")
        payload = encode_action("v0.9", deployed, "insert_msg", [[{"type": "int", "value": 3},
                                                                 {"type": "text", "value": "x"}]])
        signed = build_tx(OWNER_KEY, payload, description="", fee="0", nonce=1, chain_id=CHAIN)
        assert "result" in call("user.broadcast", tx=signed, sync=1)
        assert call("standin.make_block")["result"]["txs"] == 1
        rows = call("standin.rows", target=deployed, sql="SELECT id, author FROM msgs")
        assert rows["result"]["rows"] == [{"id": 3, "author": OWNER}]
    finally:
        stop_process(process)
    assert process.returncode == 0  # SIGTERM stops it cleanly
