"""ANS-104 bundles: encode, parse, verify, and clear errors for broken bundles."""

import hashlib

import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.bundle import BUNDLE_TAGS, Bundle, BundleError, encode_bundle

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture(scope="module")
def items():
    signer = EthereumSigner(KEY)
    return [DataItem.create(f"doc {i}".encode() * (i + 1), [("N", str(i))], signer)
            for i in range(3)]


def test_layout(items):
    raw = encode_bundle(items)
    assert int.from_bytes(raw[:32], "little") == 3
    for i, item in enumerate(items):
        entry = raw[32 + 64 * i : 32 + 64 * (i + 1)]
        assert int.from_bytes(entry[:32], "little") == len(item.raw)
        assert entry[32:] == hashlib.sha256(item.signature).digest()
    assert raw[32 + 64 * 3 :] == b"".join(item.raw for item in items)
    assert BUNDLE_TAGS == [("Bundle-Format", "binary"), ("Bundle-Version", "2.0.0")]


def test_round_trip(items):
    bundle = Bundle.parse(encode_bundle(items))
    assert bundle.ids == [item.id for item in items]
    assert [item.raw for item in bundle.items] == [item.raw for item in items]
    assert bundle.verify()
    assert Bundle.from_items(items).raw == bundle.raw


def test_empty_bundle():
    bundle = Bundle.parse(encode_bundle([]))
    assert bundle.items == [] and bundle.verify()


def test_flipped_data_byte_fails_verify(items):
    raw = bytearray(encode_bundle(items))
    raw[-1] ^= 0x01  # last byte of the last item's data
    bundle = Bundle.parse(bytes(raw))
    assert not bundle.verify()


def test_header_id_mismatch_fails_verify(items):
    raw = bytearray(encode_bundle(items))
    raw[32 + 32] ^= 0x01  # first header id
    bundle = Bundle.parse(bytes(raw))
    assert all(item.verify() for item in bundle.items)
    assert not bundle.verify()


@pytest.mark.parametrize(
    ("cut", "match"),
    [(10, "shorter than its 32-byte item count"), (100, "ends inside the header"),
     (-5, "item 2 of 3 is stated as")],
)
def test_truncated(items, cut, match):
    raw = encode_bundle(items)
    with pytest.raises(BundleError, match=match):
        Bundle.parse(raw[:cut])


def test_inconsistent(items):
    raw = encode_bundle(items)
    with pytest.raises(BundleError, match="3 stray bytes"):
        Bundle.parse(raw + b"abc")
    huge = (10**9).to_bytes(32, "little") + raw[32:]
    with pytest.raises(BundleError, match="1000000000 items"):
        Bundle.parse(huge)
    bad = bytearray(raw)
    bad[32 + 64 * 3] = 9  # first item's signature type
    with pytest.raises(BundleError, match="item 0 of 3 is not a data item"):
        Bundle.parse(bytes(bad))
    assert issubclass(BundleError, ValueError)
