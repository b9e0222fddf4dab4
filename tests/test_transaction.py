"""Arweave L1 transactions and Merkle data roots, checked against arweave-js 1.15 under Node."""

import json
import random
import subprocess
import uuid

import pytest

from kwil_sync.arweave.data import GatewayError
from kwil_sync.arweave.gateway import (
    GatewayClient,
    GatewayUnavailable,
    WalletNotFunded,
)
from kwil_sync.arweave.merkle import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    chunk_data,
    chunk_ranges,
    compute_root,
    validate_path,
)
from kwil_sync.arweave.signers import ArweaveSigner, b64url, b64url_decode
from kwil_sync.arweave.transaction import Transaction, TransactionError
from kwil_sync.testing.arlocal import node_dir
from kwil_sync.testing.procs import free_port

KIB = 1024
SIZES = [0, 1, 1000, 262144, 262145, 600000, 1024 * KIB + 7,
         MAX_CHUNK_SIZE + MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + MIN_CHUNK_SIZE, 3 * MAX_CHUNK_SIZE]
ANCHOR = b64url(b"\x01" * 48)


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


@pytest.fixture(scope="module")
def signer() -> ArweaveSigner:
    return ArweaveSigner.generate()


def run_oracle(request: dict) -> dict:
    out = subprocess.run(["node", "oracle_arweave_tx.mjs"], cwd=node_dir(),
                         input=json.dumps(request), capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout)


def python_txs(signer: ArweaveSigner) -> list[Transaction]:
    return [
        Transaction.create(b"hello", [("Content-Type", "text/plain"), ("App", "kwil")], signer,
                           last_tx=ANCHOR, reward="12345"),
        Transaction.create(b"", [("Empty", "yes")], signer, last_tx="", reward="0"),
        Transaction.create(blob(600000), [("Big", "1")], signer, last_tx=ANCHOR, reward="99"),
        Transaction.create(b"pay", [], signer, last_tx=ANCHOR, reward="1",
                           target=b64url(b"\x02" * 32), quantity="1000"),
    ]


@pytest.fixture(scope="module")
def oracle(signer):
    """One Node run for the whole file: roots, verification both ways."""
    txs = python_txs(signer)
    tampered = txs[0].to_json()
    tampered["tags"][0]["value"] = b64url(b"text/html")
    request = {
        "data": [b64url(blob(n)) for n in SIZES],
        "verify": [tx.to_json() for tx in txs] + [tampered],
        "sign": [{"data": b64url(blob(n, 1)), "tags": [["A", "b"], ["Kind", str(n)]],
                  "last_tx": ANCHOR, "reward": "777"} for n in (0, 5, 300000)],
        "jwk": signer.jwk(),
    }
    return {"txs": txs, **run_oracle(request)}


@pytest.mark.node
@pytest.mark.parametrize("index", range(len(SIZES)), ids=[str(n) for n in SIZES])
def test_data_root_and_proofs_match_arweave_js(oracle, index):
    data = blob(SIZES[index])
    ref = oracle["data"][index]
    assert b64url(compute_root(data)) == ref["root_hash"]
    tx_root = b64url(chunk_data(data).data_root) if data else ""
    assert tx_root == ref["data_root"]
    ours = [{"data_path": b64url(c.data_path), "offset": str(c.offset), "size": c.end - c.start}
            for c in chunk_data(data).chunks] if data else []
    assert ours == ref["chunks"]


@pytest.mark.node
def test_python_transactions_verify_in_arweave_js(oracle):
    assert oracle["verify"] == [True, True, True, True, False]


@pytest.mark.node
def test_arweave_js_transactions_verify_in_python(oracle, signer):
    for i, tx_json in enumerate(oracle["sign"]):
        tx = Transaction.from_json(tx_json)
        assert tx.verify(), f"arweave-js tx {i} does not verify"
        assert tx.owner_address == signer.address
        assert tx.tags[0] == ("A", "b")
        bad = dict(tx_json, reward="778")
        assert not Transaction.from_json(bad).verify()


def test_chunk_ranges_rebalance_and_trailing_empty_chunk():
    assert chunk_ranges(0) == [(0, 0)]
    assert chunk_ranges(MAX_CHUNK_SIZE) == [(0, MAX_CHUNK_SIZE), (MAX_CHUNK_SIZE, MAX_CHUNK_SIZE)]
    n = MAX_CHUNK_SIZE + 1
    assert chunk_ranges(n) == [(0, (n + 1) // 2), ((n + 1) // 2, n)]
    n = MAX_CHUNK_SIZE + MIN_CHUNK_SIZE
    assert chunk_ranges(n) == [(0, MAX_CHUNK_SIZE), (MAX_CHUNK_SIZE, n)]


@pytest.mark.parametrize("size", [1, 262144, 600000, 1024 * KIB + 7])
def test_every_proof_validates_and_bounds_the_chunk(size):
    data = blob(size)
    chunked = chunk_data(data)
    for c in chunked.chunks:
        assert validate_path(chunked.data_root, c.offset, size, c.data_path) == (c.start, c.end)
        assert validate_path(chunked.data_root, c.start, size, c.data_path) == (c.start, c.end)
        broken = bytearray(c.data_path)
        broken[0] ^= 1
        assert validate_path(chunked.data_root, c.offset, size, bytes(broken)) is None


def test_json_round_trip_and_inline_rule(signer):
    small, empty, big, pay = python_txs(signer)
    assert small.to_json()["data"] == b64url(b"hello")
    assert small.data_root and small.data_size == 5
    assert empty.data_root == "" and empty.to_json()["data"] == "" and empty.chunks() == []
    assert big.to_json()["data"] == "" and not big.inline
    assert len(big.chunks()) == 3
    assert b"".join(b64url_decode(c["chunk"]) for c in big.chunks()) == big.data
    for tx in (small, empty, big, pay):
        again = Transaction.from_json(tx.to_json())
        assert again.id == tx.id and again.verify()
    header_only = Transaction.from_json(big.to_json())
    assert header_only.data is None and header_only.verify()
    with pytest.raises(TransactionError, match="without its data"):
        header_only.chunks()
    assert Transaction.from_json(big.to_json(with_data=True)).data == big.data


def test_tampering_is_detected(signer):
    small = python_txs(signer)[0]
    body = small.to_json()
    assert not Transaction.from_json(dict(body, data=b64url(b"hellO"))).verify()
    assert not Transaction.from_json(dict(body, last_tx="")).verify()
    with pytest.raises(TransactionError, match="not sha256 of its signature"):
        Transaction.from_json(dict(body, id=b64url(b"\x00" * 32)))


def test_bad_input_errors():
    with pytest.raises(TransactionError, match="format-2"):
        Transaction.from_json({"format": 1})
    with pytest.raises(TransactionError, match="lacks field 'owner'"):
        Transaction.from_json({"format": 2, "reward": "0", "signature": ""})
    with pytest.raises(TransactionError, match="malformed"):
        Transaction.from_json({"format": 2, "owner": "", "reward": "0", "signature": "",
                               "data_size": "x"})


# --- against a real gateway (arlocal) ---------------------------------------------------


def find_by_tag(arlocal, name: str, value: str) -> list[str]:
    query = ('query($tags: [TagFilter!]) { transactions(tags: $tags) '
             '{ edges { node { id } } } }')
    body = arlocal.http.post("/graphql", json={
        "query": query, "variables": {"tags": [{"name": name, "values": [value]}]}}).json()
    return [edge["node"]["id"] for edge in body["data"]["transactions"]["edges"]]


@pytest.fixture(scope="module")
def gateway(arlocal, signer):
    arlocal.mint(signer.address)
    with GatewayClient(arlocal.url) as gw:
        yield gw


def signed(gw: GatewayClient, data: bytes, tags, signer: ArweaveSigner) -> Transaction:
    return Transaction.create(data, tags, signer, last_tx=gw.tx_anchor(),
                              reward=gw.price(len(data)))


@pytest.mark.arlocal
@pytest.mark.parametrize("size", [11, 600000], ids=["inline", "chunked"])
def test_post_mine_find_and_serve(arlocal, gateway, signer, size):
    data, marker = blob(size, 7), uuid.uuid4().hex
    tx = signed(gateway, data, [("Content-Type", "application/octet-stream"),
                                ("Test-Run", marker)], signer)
    assert tx.inline == (size <= MAX_CHUNK_SIZE)
    gateway.post_transaction(tx)
    assert gateway.tx_status(tx.id).state == "pending"
    arlocal.mine()
    status = gateway.tx_status(tx.id)
    assert status.state == "confirmed" and status.block_height == arlocal.height()
    assert find_by_tag(arlocal, "Test-Run", marker) == [tx.id]
    served = arlocal.http.get(f"/{tx.id}")
    assert served.status_code == 200 and served.content == data


@pytest.mark.arlocal
def test_gateway_errors_are_typed(arlocal, gateway, signer):
    assert gateway.tx_status(b64url(b"\x09" * 32)).state == "not_found"
    tx = signed(gateway, b"x", [("A", "b")], signer)
    forged = dict(tx.to_json(), reward=str(int(tx.reward) + 1))  # signature no longer matches
    with pytest.raises(GatewayError, match="HTTP 400") as err:
        gateway.post_transaction(Transaction.from_json(forged))
    assert err.value.status == 400
    poor = ArweaveSigner.generate(2048)  # never minted
    with pytest.raises(WalletNotFunded, match="mint first") as err:
        gateway.post_transaction(signed(gateway, b"y", [("A", "b")], poor))
    assert err.value.status == 410
    with GatewayClient(f"http://127.0.0.1:{free_port()}", timeout=2) as down, \
            pytest.raises(GatewayUnavailable, match="unreachable"):
        down.tx_anchor()
