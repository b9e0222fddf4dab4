"""@kwilteam/kwil-js, the reference client, works against the kwild stand-in.

kwil-js 0.8.6 (for kwild v0.9) and 0.9.4 (for v0.10) build, sign and broadcast execute
transactions with their own code (tests/node/kwiljs_client.mjs, NodeKwil and an
ethers Wallet); the stand-in must accept them, apply them, and answer kwil-js's reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import dbid
from kwil_sync.kwil.client import KwilClient
from kwil_sync.testing.arlocal import node_dir
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema

pytestmark = pytest.mark.node

KEY = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"
OWNER = EthereumKey(KEY).address
CHAIN = "kwiljs-standin"
SCHEMA = Schema(
    ["CREATE TABLE msgs (id INTEGER PRIMARY KEY, body TEXT, author TEXT)"],
    [ActionDef("insert_msg", [("$id", "int8"), ("$body", "text")], True,
               "INSERT INTO msgs VALUES ($id, $body, @caller)"),
     ActionDef("owner_note", [("$id", "int8"), ("$body", "text")], False,
               "INSERT INTO msgs VALUES ($id, $body, 'owner')"),
     ActionDef("list_msgs", [], True, "SELECT id, body, author FROM msgs ORDER BY id",
               view=True)],
)


def run_kwiljs(request: dict[str, Any]) -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (node_dir() / "node_modules" / "kwil-js-09").is_dir():
        pytest.skip("npm oracles are not installed (make setup)")
    done = subprocess.run(["node", "kwiljs_client.mjs"], input=json.dumps(request),
                          capture_output=True, text=True, timeout=120, cwd=node_dir(),
                          check=True)
    answer: dict[str, Any] = json.loads(done.stdout)
    assert "error" not in answer, answer.get("error")
    return answer


@pytest.mark.parametrize("version", ["v0.9", "v0.10"])
def test_kwiljs_executes_and_reads_back_through_the_stand_in(version):
    with KwilNodeStandIn.start(version=version, chain_id=CHAIN, block_interval=0.05) as node:
        target = node.deploy(OWNER, "jsdb", SCHEMA)
        answer = run_kwiljs({
            "version": version, "url": node.url, "chain_id": CHAIN, "private_key_hex": KEY,
            "target": target, "inserts": [{"id": 1, "body": "hello"}, {"id": 2, "body": "you"}],
            "owner_note": {"id": 3, "body": "from the owner"}})
        expected = [{"id": 1, "body": "hello", "author": OWNER},
                    {"id": 2, "body": "you", "author": OWNER},
                    {"id": 3, "body": "from the owner", "author": "owner"}]
        assert node.rows(target, "SELECT id, body, author FROM msgs ORDER BY id") == expected
        assert answer["selected"] == expected and answer["called"] == expected
        assert answer["chain_id"] == CHAIN and answer["nonce"] == 3
        assert [info["code"] for info in answer["tx_infos"]] == [0, 0]
        assert "code: -201" in answer["refusal"] and "wrong chain ID" in answer["refusal"]
        with KwilClient(node.url) as client:  # kwil-js's hashes are the node's hashes
            statuses = [client.tx_query(h) for h in answer["tx_hashes"]]
        assert all(s is not None and s.ok for s in statuses)
        if version == "v0.9":
            assert target == dbid(OWNER, "jsdb")
            assert node.method_counts["user.schema"] >= 1  # kwil-js 0.8 reads the schema
        else:
            assert node.method_counts["user.query"] >= 1  # kwil-js 0.9 reads info.actions
        for method in ("user.chain_info", "user.account", "user.estimate_price",
                       "user.broadcast", "user.tx_query", "user.call", "user.health"):
            assert node.method_counts[method] >= 1, method
