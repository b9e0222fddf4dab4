"""Data items reproduce the arbundles vector byte for byte, and reject tampering."""

import json
from pathlib import Path

import pytest

from kwil_sync.arweave.ans104 import DataItem, DataItemError, EthereumSigner
from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.tags import TagError, decode_tags, encode_tags
from kwil_sync.ethkeys import personal_digest

VECTOR = json.loads((Path(__file__).parent / "vectors" / "ans104_ethereum.json").read_text())


def vector_item() -> DataItem:
    signer = EthereumSigner(VECTOR["private_key_hex"])
    tags = [tuple(t) for t in VECTOR["tags"]]
    return DataItem.create(VECTOR["data_utf8"].encode(), tags, signer)


def test_vector_byte_for_byte():
    item = vector_item()
    assert encode_tags(item.tags).hex() == VECTOR["avro_tags_hex"]
    assert item.signing_message().hex() == VECTOR["deep_hash_hex"]
    assert personal_digest(item.signing_message()).hex() == VECTOR["eip191_digest_hex"]
    assert item.signature.hex() == VECTOR["signature_hex"]
    assert item.id == VECTOR["id"]
    assert len(item.raw) == VECTOR["length"]
    assert item.raw.hex() == VECTOR["data_item_hex"]
    assert item.verify()


def test_parse_vector_round_trip():
    item = DataItem.parse(bytes.fromhex(VECTOR["data_item_hex"]))
    assert item.verify()
    assert item.id == VECTOR["id"]
    assert item.tags == [tuple(t) for t in VECTOR["tags"]]
    assert item.data == VECTOR["data_utf8"].encode()
    assert item.owner_address == EthereumSigner(VECTOR["private_key_hex"]).address


@pytest.mark.parametrize("offset", [10, 70, 140, 150, 200])
def test_flipped_byte_fails(offset):
    raw = bytearray.fromhex(VECTOR["data_item_hex"])
    raw[offset] ^= 0x01
    try:
        item = DataItem.parse(bytes(raw))
    except DataItemError:
        return
    assert not item.verify()


def test_rsa_item_round_trip():
    signer = ArweaveSigner.generate()
    item = DataItem.create(b"hello", [("A", "b")], signer, anchor=b"\x07" * 32)
    parsed = DataItem.parse(item.raw)
    assert parsed.verify()
    assert parsed.anchor == b"\x07" * 32
    assert parsed.owner_address == signer.address


def test_deep_hash_nested_is_stable():
    assert deep_hash([b"a", [b"b", b"c"]]) != deep_hash([b"a", b"b", b"c"])


def test_tag_limits():
    with pytest.raises(TagError, match="at most 128"):
        encode_tags([("a", "b")] * 129)
    with pytest.raises(TagError, match="name is 0 bytes"):
        encode_tags([("", "b")])
    with pytest.raises(TagError, match="value is 3073 bytes"):
        encode_tags([("a", "x" * 3073)])
    with pytest.raises(TagError, match="4096"):
        encode_tags([("n" * 1000, "v" * 1000)] * 3)
    assert decode_tags(encode_tags([("é", "ü")])) == [("é", "ü")]


def test_truncated_item_errors_clearly():
    with pytest.raises(DataItemError, match="ends inside"):
        DataItem.parse(bytes.fromhex(VECTOR["data_item_hex"])[:100])
    with pytest.raises(DataItemError, match="signature type"):
        DataItem.parse(b"\x09\x00" + b"\x00" * 200)


@pytest.mark.parametrize("size", [0, 1, 9, 10, 48, 99, 100, 1000])
def test_personal_digest_matches_eth_account(size: int) -> None:
    from eth_account.messages import defunct_hash_message

    message = bytes(range(256)) * 4
    assert personal_digest(message[:size]) == bytes(defunct_hash_message(primitive=message[:size]))
