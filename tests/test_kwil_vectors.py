"""The Kwil vectors (tests/vectors/kwil_*.json) reproduced byte for byte."""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import (
    SignatureError,
    build_tx,
    dbid,
    decode_action,
    encode_action,
    parse_tx,
    recover_sender,
    sign_tx,
    tx_hash,
)
from kwil_sync.kwil.tx import payload_digest, serialize_tx, signed_text

VECTORS = Path(__file__).parent / "vectors"
V09 = json.loads((VECTORS / "kwil_v09_tx.json").read_text())
V010 = json.loads((VECTORS / "kwil_v010_tx.json").read_text())
DBID = json.loads((VECTORS / "kwil_dbid.json").read_text())

CASES = [("v0.9", V09, V09["dbid"]), ("v0.10", V010, V010["namespace"])]
IDS = ["v0.9", "v0.10"]


@pytest.mark.parametrize("case", DBID["cases"], ids=lambda c: c["name"])
def test_dbid(case):
    assert dbid(case["owner"], case["name"]) == case["dbid"]
    assert dbid(case["owner"].lower().removeprefix("0x"), case["name"].upper()) == case["dbid"]


def test_v09_dbid_is_the_vector_signers():
    assert EthereumKey(V09["private_key_hex"]).address == V09["address"]


@pytest.mark.parametrize(("version", "vec", "target"), CASES, ids=IDS)
def test_payload_bytes(version, vec, target):
    payload = encode_action(version, target, vec["action"], vec["arguments"])
    assert payload.hex() == vec["payload_hex"]
    call = decode_action(version, payload)
    assert (call.target, call.action, call.arguments) == (target, vec["action"], vec["arguments"])


def test_v09_digest():
    assert payload_digest(bytes.fromhex(V09["payload_hex"])).hex() == V09["payload_digest_hex"]


@pytest.mark.parametrize(("version", "vec", "target"), CASES, ids=IDS)
def test_signature(version, vec, target):
    payload = bytes.fromhex(vec["payload_hex"])
    sig = sign_tx(
        vec["private_key_hex"], payload, description=vec["description"], fee=vec["fee"],
        nonce=vec["nonce"], chain_id=vec["chain_id"], payload_type=vec["payload_type"],
    )
    want = bytes.fromhex(vec["signature_hex"])
    assert len(sig) == 65
    assert sig[:64] == want[:64]  # r and s
    assert sig[64] in (27, 28) and sig[64] - 27 == want[64] % 27  # same recovery id, v 27/28


@pytest.mark.parametrize(("version", "vec", "target"), CASES, ids=IDS)
def test_transaction_json_verifies(version, vec, target):
    payload = bytes.fromhex(vec["payload_hex"])
    tx = build_tx(
        vec["private_key_hex"], payload, description=vec["description"], fee=vec["fee"],
        nonce=vec["nonce"], chain_id=vec["chain_id"],
    )
    address = EthereumKey(vec["private_key_hex"]).address
    assert tx["sender"] == address[2:].lower()
    assert tx["signature"]["type"] == vec["signature_type"]
    assert tx["serialization"] == "concat"
    assert tx["body"]["fee"] == vec["fee"] and tx["body"]["nonce"] == vec["nonce"]
    assert recover_sender(tx) == address
    # The vector's own signature (v 0/1 or 27/28) verifies as well.
    parsed = parse_tx(tx)
    text = signed_text(
        vec["description"], "execute", payload, vec["fee"], vec["nonce"], vec["chain_id"]
    )
    assert parsed.signed_text() == text
    assert f"PayloadDigest: {hashlib.sha256(payload).digest()[:20].hex()}\n" in text
    tx["signature"]["sig"] = base64.b64encode(bytes.fromhex(vec["signature_hex"])).decode()
    assert recover_sender(tx) == address


# ---------------------------------------------------------------------------
# transaction hashes and verification

SIG = b"\x11" * 65
SENDER = b"\x22" * 20
PAYLOAD = b"\x00\x01\xc0"
TINY = {
    "signature": {"sig": base64.b64encode(SIG).decode(), "type": "secp256k1_ep"},
    "body": {"desc": "d", "payload": base64.b64encode(PAYLOAD).decode(), "type": "execute",
             "fee": "100", "nonce": 7, "chain_id": "c"},
    "serialization": "concat",
    "sender": SENDER.hex(),
}


def test_tx_hash_v010_layout():
    """kwil-db v0.10 Transaction.MarshalBinary, assembled by hand from its Go source."""
    sig = b"\x41" + SIG + b"\x0c" + b"secp256k1_ep"  # uvarint lengths
    body = (
        b"\x01d"  # desc: uvarint length
        + b"\x06" + PAYLOAD  # payload: zigzag varint length (3 -> 6)
        + b"\x07execute"
        + b"\x01" + b"\x03100"  # fee: not-nil flag, then its decimal string
        + (7).to_bytes(8, "little")  # nonce
        + b"\x01c"  # chain id
    )
    assert len(sig) == 79 and len(body) == 29
    want = (
        b"\x00\x00"  # version
        + b"\x9e\x01" + sig  # zigzag varint 79 -> 158
        + b"\x3a" + body  # zigzag varint 29 -> 58
        + b"\x06concat"
        + b"\x28" + SENDER  # zigzag varint 20 -> 40
    )
    assert serialize_tx(TINY, "v0.10") == want
    assert tx_hash(TINY, "v0.10") == hashlib.sha256(want).hexdigest()


def test_tx_hash_v09_layout():
    """kwil-db v0.9: 00 01 + RLP of the Transaction struct, assembled by hand."""
    sig = b"\xb8\x41" + SIG + b"\x8csecp256k1_ep"  # 80 bytes
    body = b"\x64" + b"\x83" + PAYLOAD + b"\x87execute" + b"\x64" + b"\x07" + b"\x63"  # 16
    rest = b"\xf8\x50" + sig + b"\xd0" + body + b"\x86concat" + b"\x94" + SENDER
    want = b"\x00\x01" + b"\xf8" + bytes([len(rest)]) + rest
    assert serialize_tx(TINY, "v0.9") == want
    assert tx_hash(TINY, "v0.9") == hashlib.sha256(want).hexdigest()
    assert len(tx_hash(TINY, "v0.9")) == 64


def signed(**body) -> dict:
    fields = {"description": "t", "fee": "0", "nonce": 3, "chain_id": "c"} | body
    return build_tx(V010["private_key_hex"], b"\x00\x00payload", **fields)


def test_parse_tx_round_trip():
    tx = signed(fee=10**30, nonce=(1 << 64) - 1)
    parsed = parse_tx(json.dumps(tx))
    assert parsed.fee == str(10**30) and parsed.nonce == (1 << 64) - 1
    assert parsed.to_json() == tx
    assert parsed.payload == b"\x00\x00payload"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["body"].update(payload=base64.b64encode(b"x").decode()), "not by the sender"),
        (lambda t: t["body"].update(nonce=4), "not by the sender"),
        (lambda t: t.update(sender="00" * 20), "not by the sender"),
        (lambda t: t["signature"].update(type="ed25519"), "unsupported signature type"),
        (lambda t: t.update(serialization="eip712"), "unsupported serialization"),
        (lambda t: t["signature"].update(sig=base64.b64encode(b"\x01" * 64).decode()), "65 bytes"),
        (lambda t: t["signature"].update(sig="!!"), "not valid base64"),
        (lambda t: t.update(sender="abcd"), "20 address bytes"),
        (lambda t: t["body"].update(fee="-1"), "fee"),
    ],
)
def test_recover_sender_rejects(change, message):
    tx = signed()
    change(tx)
    with pytest.raises(SignatureError, match=message):
        recover_sender(tx)


def test_signed_text_rejects_long_description():
    with pytest.raises(ValueError, match="longer than 200"):
        signed_text("x" * 201, "execute", b"", 0, 1, "c")
