"""Properties of the ANS-104 parsers (tags, data items, bundles): round trips for arbitrary
valid inputs, only the module's own error for arbitrary or mutated bytes, and no mutated
signed item that still verifies."""

from __future__ import annotations

import functools
import hashlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kwil_sync.arweave.ans104 import ArweaveSigner, DataItem, DataItemError, EthereumSigner
from kwil_sync.arweave.bundle import Bundle, BundleError, encode_bundle
from kwil_sync.arweave.tags import (
    MAX_NAME_BYTES,
    MAX_TAG_BYTES,
    MAX_TAGS,
    MAX_VALUE_BYTES,
    Tag,
    TagError,
    decode_tags,
    encode_tags,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(SETTINGS, max_examples=25)  # RSA-4096 signing costs milliseconds per example
ETH = EthereumSigner("3f" * 32)
V_OFFSET = 2 + 64  # an Ethereum item's recovery id byte: after the type and r|s


@functools.cache
def rsa() -> ArweaveSigner:
    return ArweaveSigner.generate()


# Avro, written independently of the module: zigzag varints and blocks of items.

def varint(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    return bytes([*out, z])


def avro_text(text: str) -> bytes:
    raw = text.encode()
    return varint(len(raw)) + raw


def avro_size(tags: list[Tag]) -> int:
    """Bytes of the canonical encoding (one block, then the 0 terminator)."""
    if not tags:
        return 0
    return len(varint(len(tags))) + sum(len(avro_text(n)) + len(avro_text(v))
                                        for n, v in tags) + 1


def breaks_a_limit(tags: list[Tag]) -> bool:
    return (len(tags) > MAX_TAGS or avro_size(tags) > MAX_TAG_BYTES or any(
        not 1 <= len(n.encode()) <= MAX_NAME_BYTES or not 1 <= len(v.encode()) <= MAX_VALUE_BYTES
        for n, v in tags))


SHORT = st.text(min_size=1, max_size=24)


@st.composite
def valid_tags(draw: st.DrawFn) -> list[Tag]:
    """Tags within every ANS-104 limit: few and long, or many and short."""
    long_value = st.integers(1, 1200).map(lambda k: "\u00e9" * k)  # 2 bytes a character
    tags = draw(st.one_of(
        st.lists(st.tuples(SHORT, st.one_of(SHORT, long_value)), max_size=12),
        st.lists(st.tuples(st.text(min_size=1, max_size=2), st.text(min_size=1, max_size=2)),
                 max_size=MAX_TAGS)))
    while avro_size(tags) > MAX_TAG_BYTES:  # trim from the end: shrinks well
        tags.pop()
    return tags


def settings_for(signer_kind: str) -> settings:
    return FEW if signer_kind == "rsa" else SETTINGS


def signer_of(kind: str) -> EthereumSigner | ArweaveSigner:
    return rsa() if kind == "rsa" else ETH


OPTIONAL_32 = st.one_of(st.none(), st.binary(min_size=32, max_size=32))


# Tags

@SETTINGS
@given(valid_tags())
def test_tags_round_trip_within_the_limits(tags: list[Tag]) -> None:
    encoded = encode_tags(tags)
    assert len(encoded) == avro_size(tags) <= MAX_TAG_BYTES
    assert decode_tags(encoded) == tags


@SETTINGS
@given(valid_tags().filter(bool), st.data())
def test_tags_decode_from_any_avro_block_layout(tags: list[Tag], data: st.DataObject) -> None:
    out, rest = bytearray(), list(tags)
    while rest:
        size = data.draw(st.integers(1, len(rest)))
        block, rest = rest[:size], rest[size:]
        body = b"".join(avro_text(n) + avro_text(v) for n, v in block)
        if data.draw(st.booleans()):  # a negative count announces the block's byte size
            out += varint(-len(block)) + varint(len(body)) + body
        else:
            out += varint(len(block)) + body
    out += b"\x00"
    assert decode_tags(bytes(out)) == tags


NEAR_LIMIT_NAME = st.integers(MAX_NAME_BYTES - 2, MAX_NAME_BYTES + 2).map(lambda k: "n" * k)
NEAR_LIMIT_VALUE = st.one_of(
    st.integers(MAX_VALUE_BYTES - 2, MAX_VALUE_BYTES + 2).map(lambda k: "v" * k),
    st.integers(MAX_VALUE_BYTES // 2 - 1, MAX_VALUE_BYTES // 2 + 1).map(lambda k: "\u00e9" * k))


@SETTINGS
@given(st.one_of(
    st.lists(st.tuples(st.one_of(st.text(max_size=8), NEAR_LIMIT_NAME),
                       st.one_of(st.text(max_size=8), NEAR_LIMIT_VALUE)), max_size=4),
    st.lists(st.tuples(st.text(max_size=3), st.text(max_size=3)), min_size=120, max_size=135)))
def test_encode_tags_refuses_exactly_what_breaks_a_limit(tags: list[Tag]) -> None:
    if breaks_a_limit(tags):
        with pytest.raises(TagError):
            encode_tags(tags)
    else:
        assert decode_tags(encode_tags(tags)) == tags


@st.composite
def avro_like(draw: st.DrawFn) -> bytes:
    """Avro-shaped tag bytes: counts and length prefixes mostly right, contents random."""
    out = bytearray()
    skews = st.sampled_from([0, 0, 0, 1, -1]) if draw(st.booleans()) else st.just(0)
    for _ in range(draw(st.integers(0, 3))):
        pairs = draw(st.lists(st.tuples(*[st.one_of(st.text(max_size=4).map(str.encode),
                                                    st.binary(max_size=6))] * 2),
                              min_size=1, max_size=4))
        texts = [t for pair in pairs for t in pair]
        body = b"".join(varint(len(t) + draw(skews)) + t for t in texts)
        count = len(pairs) + draw(skews)
        negative = draw(st.booleans())
        out += (varint(-count) + varint(len(body)) if negative else varint(count)) + body
    return bytes(out) + draw(st.sampled_from([b"\x00", b"\x00", b"", b"\x00\x00", b"\x02"]))


@SETTINGS
@given(st.one_of(st.binary(max_size=300), avro_like()))
def test_tag_bytes_raise_only_tag_error(data: bytes) -> None:
    try:
        tags = decode_tags(data)
    except TagError:
        event("refused")
        return
    event("decoded")
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in tags)
    if not breaks_a_limit(tags):  # what decodes re-encodes (canonically) to the same tags
        assert decode_tags(encode_tags(tags)) == tags


def test_a_lone_surrogate_in_a_tag_is_a_tag_error() -> None:
    with pytest.raises(TagError):
        encode_tags([("Name", "\ud800")])


# Data items

@pytest.mark.parametrize("kind", ["ethereum", "rsa"])
def test_data_items_round_trip(kind: str) -> None:
    signer = signer_of(kind)

    @settings_for(kind)
    @given(st.binary(max_size=2048), valid_tags(), OPTIONAL_32, OPTIONAL_32)
    def check(data: bytes, tags: list[Tag], target: bytes | None, anchor: bytes | None) -> None:
        item = DataItem.create(data, tags, signer, target=target, anchor=anchor)
        parsed = DataItem.parse(item.raw)
        assert (parsed.signature_type, parsed.owner, parsed.target, parsed.anchor) == \
            (signer.signature_type, signer.owner, target, anchor)
        assert (parsed.tags, parsed.data, parsed.raw, parsed.id) == \
            (tags, data, item.raw, item.id)
        assert parsed.verify()

    check()


def header(sig_type: int) -> st.SearchStrategy[bytes]:
    """Random bytes shaped like a data item's head, so parsing gets past the fixed fields."""
    sig_len = 512 if sig_type == 1 else 65
    flag_and = st.one_of(st.just(b"\x00"), st.binary(min_size=32, max_size=32).map(
        lambda b: b"\x01" + b), st.binary(min_size=1, max_size=1))
    return st.tuples(st.binary(min_size=2 * sig_len, max_size=2 * sig_len), flag_and, flag_and,
                     st.integers(0, 4), st.integers(0, 40), st.binary(max_size=80)).map(
        lambda p: sig_type.to_bytes(2, "little") + p[0] + p[1] + p[2]
        + p[3].to_bytes(8, "little") + p[4].to_bytes(8, "little") + p[5])


@SETTINGS
@given(st.one_of(st.binary(max_size=400), header(3), header(1)))
def test_arbitrary_bytes_raise_only_data_item_error(raw: bytes) -> None:
    try:
        item = DataItem.parse(raw)
    except DataItemError:
        event("refused")
        return
    event("parsed")
    assert item.raw == raw and item.data == raw[len(raw) - len(item.data):]
    assert not verifies(item)  # random bytes are never validly signed


def mutate(raw: bytes, data: st.DataObject) -> bytes:
    """One random edit: flip a bit, set a byte, insert, delete a range, or truncate."""
    out = bytearray(raw)
    at = data.draw(st.integers(0, len(out) - 1), label="at")
    how = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), label="how")
    if how == "flip":
        out[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "set":
        out[at] = data.draw(st.integers(0, 255))
    elif how == "insert":
        out[at:at] = data.draw(st.binary(min_size=1, max_size=40))
    elif how == "delete":
        del out[at:at + data.draw(st.integers(1, 40))]
    else:
        del out[at:]
    return bytes(out)


def verifies(item: DataItem) -> bool:
    """item.verify(), with the known ValueError for an invalid RSA owner counted as False
    (see test_an_rsa_item_with_an_impossible_owner_does_not_verify)."""
    try:
        return item.verify()
    except ValueError:
        if item.signature_type == 1:
            return False
        raise


def recovery_id_alias(original: bytes, mutated: bytes) -> bool:
    """True when only an Ethereum item's v byte changed to its other spelling (0<->27, 1<->28)."""
    if len(original) != len(mutated) or original[:2] != b"\x03\x00":
        return False
    changed = [i for i in range(len(original)) if original[i] != mutated[i]]
    return changed == [V_OFFSET] and {original[V_OFFSET], mutated[V_OFFSET]} in (
        {0, 27}, {1, 28})


@pytest.mark.parametrize("kind", ["ethereum", "rsa"])
def test_a_mutated_item_never_verifies_unless_unchanged(kind: str) -> None:
    signer = signer_of(kind)
    item = DataItem.create(b"the signed document " * 8, [("App", "kwil-sync"), ("N", "1")],
                           signer, anchor=bytes(range(32)))

    @settings(SETTINGS, max_examples=200)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        raw = mutate(item.raw, data)
        try:
            mutated = DataItem.parse(raw)
        except DataItemError:
            event("refused")
            return
        event("parsed")
        if raw == item.raw:
            assert verifies(mutated)
        elif not recovery_id_alias(item.raw, raw):  # see the test below
            assert not verifies(mutated)

    check()


def test_an_ethereum_v_byte_respelling_verifies_under_another_id() -> None:
    """Characterises a malleability: v = 27/28 and 0/1 name the same recovery id, so the same
    signed content verifies under two ids (arbundles ignores v entirely). Deduplicate
    Ethereum items by content, not by id alone."""
    item = DataItem.create(b"doc", [("N", "1")], ETH)
    raw = bytearray(item.raw)
    raw[V_OFFSET] = raw[V_OFFSET] - 27 if raw[V_OFFSET] >= 27 else raw[V_OFFSET] + 27
    twin = DataItem.parse(bytes(raw))
    assert twin.verify() and twin.id != item.id and twin.signing_message() == \
        item.signing_message()


def test_an_rsa_item_with_an_impossible_owner_does_not_verify() -> None:
    raw = b"\x01\x00" + bytes(512) + bytes(512) + b"\x00\x00" + bytes(16) + b"data"
    assert DataItem.parse(raw).verify() is False


# Bundles

def signed_items(min_size: int = 0) -> st.SearchStrategy[list[DataItem]]:
    return st.lists(st.tuples(st.binary(max_size=300), valid_tags()), min_size=min_size,
                    max_size=6).map(lambda specs: [DataItem.create(d, t, ETH) for d, t in specs])


@SETTINGS
@given(signed_items())
def test_bundles_round_trip(items: list[DataItem]) -> None:
    raw = encode_bundle(items)
    bundle = Bundle.parse(raw)
    assert bundle.ids == [item.id for item in items]
    assert [i.raw for i in bundle.items] == [i.raw for i in items] and bundle.raw == raw
    assert bundle.header_ids == [hashlib.sha256(i.signature).digest() for i in items]
    assert bundle.verify()


def bundle_head() -> st.SearchStrategy[bytes]:
    """A small item count and random header entries and body: past the first checks."""
    return st.tuples(st.integers(0, 3), st.lists(st.integers(0, 300), max_size=3),
                     st.binary(max_size=400)).map(
        lambda p: p[0].to_bytes(32, "little")
        + b"".join(n.to_bytes(32, "little") + bytes(32) for n in p[1]) + p[2])


def with_random_header_ids() -> st.SearchStrategy[bytes]:
    """Well-formed bundles of real items whose header ids are wrong (sha256 of the whole
    item instead of its signature)."""
    return signed_items(min_size=1).map(lambda items: len(items).to_bytes(32, "little") + b"".join(
        len(i.raw).to_bytes(32, "little") + hashlib.sha256(i.raw).digest() for i in items)
        + b"".join(i.raw for i in items))


@SETTINGS
@given(st.one_of(st.binary(max_size=300), bundle_head(), with_random_header_ids()))
def test_arbitrary_bytes_raise_only_bundle_error(raw: bytes) -> None:
    try:
        bundle = Bundle.parse(raw)
    except BundleError:
        event("refused")
        return
    event(f"parsed {len(bundle.items)} items")
    assert bundle.raw == raw and len(bundle.items) == len(bundle.header_ids)
    assert not bundle.items or not bundle.verify()


@SETTINGS
@given(signed_items(min_size=1), st.data())
def test_a_mutated_bundle_never_verifies_unless_unchanged(items: list[DataItem],
                                                         data: st.DataObject) -> None:
    original = encode_bundle(items)
    raw = mutate(original, data)
    try:
        bundle = Bundle.parse(raw)
    except BundleError:
        event("refused")
        return
    event("parsed")
    # The header pins each id, so even a re-spelt v byte (see above) fails here.
    assert bundle.verify() == (raw == original)


def test_helpers_are_sound() -> None:
    """The independent Avro writer agrees with the module on a fixed case."""
    tags = [("Content-Type", "application/json"), ("N", "\u00e9" * 70)]
    assert encode_tags(tags) == varint(2) + b"".join(
        avro_text(n) + avro_text(v) for n, v in tags) + b"\x00"
    assert varint(-1) == b"\x01" and varint(64) == b"\x80\x01"
