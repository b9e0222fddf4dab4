"""Action payloads: decode(encode(x)) == x for both versions; malformed bytes raise
PayloadError and nothing else."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwil_sync.kwil import PayloadError, decode_action, decode_call, encode_action, encode_call
from kwil_sync.kwil.arguments import normalize_argument

INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
UINT16 = st.integers(0, 0xFFFF)
DECIMALS = st.decimals(allow_nan=False, allow_infinity=False).map(str)
UUIDS = st.uuids().map(str)

V09_VALUES = {
    "text": st.text(),
    "int": INT64,
    "bool": st.booleans(),
    "blob": st.binary(max_size=64),
    "uuid": UUIDS,
    "uint256": st.integers(0, (1 << 256) - 1),
    "decimal": DECIMALS,
}
V010_VALUES = {
    "text": st.text(),
    "string": st.text(),
    "int8": INT64,
    "int": INT64,
    "bigint": INT64,
    "bool": st.booleans(),
    "boolean": st.booleans(),
    "bytea": st.binary(max_size=64),
    "blob": st.binary(max_size=64),
    "uuid": UUIDS,
    "numeric": DECIMALS,
    "decimal": DECIMALS,
}


@st.composite
def metadata(draw):
    meta = draw(st.one_of(st.none(), st.tuples(UINT16, UINT16)))
    return {} if meta is None or meta == (0, 0) else {"metadata": list(meta)}


@st.composite
def v09_arg(draw):
    name = draw(st.sampled_from([*V09_VALUES, "null"]))
    if name == "null":
        return {"type": "null", "value": None} | draw(metadata())
    values = V09_VALUES[name]
    if draw(st.booleans()):
        return {"type": name, "value": draw(st.lists(values, max_size=4)), "is_array": True} | draw(
            metadata()
        )
    return {"type": name, "value": draw(values)} | draw(metadata())


@st.composite
def v010_arg(draw):
    name = draw(st.sampled_from([*V010_VALUES, "null"]))
    values = st.none() if name == "null" else st.one_of(st.none(), V010_VALUES[name])
    if draw(st.booleans()):
        return {"type": name, "value": draw(st.lists(values, max_size=4)), "is_array": True} | draw(
            metadata()
        )
    return {"type": name, "value": draw(values)} | draw(metadata())


ARGS = {"v0.9": v09_arg(), "v0.10": v010_arg()}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("version", ["v0.9", "v0.10"])
def test_round_trip(version):
    @SETTINGS
    @given(
        target=st.text(max_size=70),
        action=st.text(max_size=30),
        arguments=st.lists(st.lists(ARGS[version], max_size=5), max_size=3),
    )
    def check(target, action, arguments):
        payload = encode_action(version, target, action, arguments)
        call = decode_action(version, payload)
        assert (call.target, call.action, call.arguments) == (target, action, arguments)
        assert encode_action(version, call.target, call.action, call.arguments) == payload
        view = encode_call(version, target, action, arguments[0] if arguments else [])
        assert decode_call(version, view).arguments == (arguments[0] if arguments else [])

    check()


def fuzz_decodes(version: str, data: bytes) -> None:
    for decode in (decode_action, decode_call):
        with contextlib.suppress(PayloadError):
            decode(version, data)


@pytest.mark.parametrize("version", ["v0.9", "v0.10"])
def test_random_bytes_raise_payload_error_only(version):
    @SETTINGS
    @given(st.binary(max_size=200))
    def check(data):
        fuzz_decodes(version, data)
        fuzz_decodes(version, (b"\x00\x01" if version == "v0.9" else b"\x00\x00") + data)

    check()


@pytest.mark.parametrize("version", ["v0.9", "v0.10"])
def test_mutated_payloads_raise_payload_error_only(version):
    @SETTINGS
    @given(
        arguments=st.lists(st.lists(ARGS[version], min_size=1, max_size=4), min_size=1, max_size=2),
        data=st.data(),
    )
    def check(arguments, data):
        payload = bytearray(encode_action(version, "ns", "act", arguments))
        how = data.draw(st.sampled_from(["flip", "truncate", "extend", "set"]))
        i = data.draw(st.integers(0, len(payload) - 1))
        if how == "flip":
            payload[i] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "truncate":
            del payload[i:]
        elif how == "extend":
            payload[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            payload[i] = data.draw(st.integers(0, 255))
        fuzz_decodes(version, bytes(payload))

    check()


def test_not_bytes():
    with pytest.raises(PayloadError):
        decode_action("v0.10", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="unknown Kwil payload version"):
        decode_action("v1.0", b"")


# ---------------------------------------------------------------------------
# specific malformations, v0.10


def v010(args) -> bytes:
    return encode_action("v0.10", "ns", "act", [args])


def test_v010_trailing_bytes():
    with pytest.raises(PayloadError, match="trailing"):
        decode_action("v0.10", v010([{"type": "text", "value": "a"}]) + b"\x00")


def test_v010_version():
    with pytest.raises(PayloadError, match="unknown version 1"):
        decode_action("v0.10", b"\x01\x00" + v010([])[2:])


def test_v010_truncated_names_the_field():
    with pytest.raises(PayloadError, match="namespace needs 2 bytes"):
        decode_action("v0.10", v010([])[:7])


def test_v010_bad_datum_prefix():
    good = v010([{"type": "int8", "value": 1}])
    i = good.rindex(b"\x01\x00\x00\x00\x00\x00\x00\x00\x01")
    bad = good[:i] + b"\x02" + good[i + 1 :]
    with pytest.raises(PayloadError, match=r"must start with 00 \(null\) or 01"):
        decode_action("v0.10", bad)


def test_v010_wrong_int_size():
    ev = (
        struct.pack("<H", 0) + struct.pack("<I", 15) + struct.pack(">HI", 0, 4) + b"int8"
        + b"\x00\x00\x00\x00\x00" + struct.pack("<H", 1) + struct.pack("<I", 3) + b"\x01\x00\x01"
    )
    payload = (
        b"\x00\x00" + struct.pack("<I", 2) + b"ns" + struct.pack("<I", 1) + b"a"
        + struct.pack("<HH", 1, 1) + struct.pack("<I", len(ev)) + ev
    )
    with pytest.raises(PayloadError, match="int datum has 8 bytes, got 2"):
        decode_action("v0.10", payload)


def test_v010_unknown_type():
    with pytest.raises(PayloadError, match="unknown v0.10 type 'money'"):
        encode_action("v0.10", "ns", "a", [[{"type": "money", "value": "1"}]])


def test_v010_go_style_null_decodes():
    """Go writes a null with no datum (kwil-js writes one 00 datum); both decode."""
    dt = struct.pack(">HI", 0, 4) + b"null" + b"\x00\x00\x00\x00\x00"
    ev = struct.pack("<H", 0) + struct.pack("<I", len(dt)) + dt + struct.pack("<H", 0)
    payload = (
        b"\x00\x00" + struct.pack("<I", 2) + b"ns" + struct.pack("<I", 1) + b"a"
        + struct.pack("<HH", 1, 1) + struct.pack("<I", len(ev)) + ev
    )
    assert decode_action("v0.10", payload).arguments == [[{"type": "null", "value": None}]]


# ---------------------------------------------------------------------------
# v0.9


def test_v09_prefix():
    with pytest.raises(PayloadError, match="must start with 00 01"):
        decode_action("v0.9", b"\x00\x02\xc0")


def test_v09_not_rlp():
    with pytest.raises(PayloadError, match="not valid RLP"):
        decode_action("v0.9", b"\x00\x01\xf8")


def test_v09_go_style_null_and_int():
    """Go (EncodeValue) omits the data of a null; kwil-js writes one empty datum."""
    import rlp

    values = [[[b"null", b""]], [[b"int", b""], [b"\xff" * 8]]]
    go = b"\x00\x01" + rlp.encode([b"xdb", b"act", [values]])
    assert decode_action("v0.9", go).arguments == [
        [{"type": "null", "value": None}, {"type": "int", "value": -1}]
    ]


def test_v09_rejects_null_inside_a_type():
    with pytest.raises(PayloadError, match="v0.9 cannot carry a null inside type 'text'"):
        encode_action("v0.9", "x", "a", [[{"type": "text", "value": None}]])
    with pytest.raises(PayloadError, match="no arrays of type 'null'"):
        encode_action("v0.9", "x", "a", [[{"type": "null", "value": [None], "is_array": True}]])


# ---------------------------------------------------------------------------
# argument checks


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ({"type": "int8", "value": 1 << 63}, "signed 64-bit"),
        ({"type": "int8", "value": True}, "takes an int, got bool"),
        ({"type": "bool", "value": 1}, "takes a bool"),
        ({"type": "uuid", "value": "nope"}, "takes a UUID"),
        ({"type": "bytea", "value": "00"}, "takes bytes"),
        ({"type": "text", "value": "\ud800"}, "not valid UTF-8"),
        ({"type": "text", "value": "a", "metadata": [1, 70000]}, "pair of uint16"),
        ({"type": "text", "value": "a", "is_array": True}, "needs a list"),
        ({"type": "null", "value": 0}, "only takes None"),
        ({"type": "text"}, "has no 'value'"),
    ],
)
def test_bad_arguments(arg, message):
    with pytest.raises(PayloadError, match=message):
        encode_action("v0.10", "ns", "a", [[arg]])


def test_arguments_must_be_sets():
    with pytest.raises(PayloadError, match="wrap one call's arguments in a list"):
        encode_action("v0.10", "ns", "a", [{"type": "text", "value": "x"}])


def test_typed_objects_and_canonical_forms():
    class Arg:
        def __init__(self, type, value, metadata=None, is_array=False):
            self.type, self.value, self.metadata, self.is_array = type, value, metadata, is_array

    arg = Arg("uuid", "7C9E6679-7425-40DE-944B-E07FC1F90AE7", metadata=(0, 0))
    assert normalize_argument("v0.10", arg) == {
        "type": "uuid", "value": "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    }
    payload = encode_action("v0.10", "ns", "a", [[arg, Arg("numeric", 5, (3, 1))]])
    assert decode_action("v0.10", payload).arguments == [[
        {"type": "uuid", "value": "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
        {"type": "numeric", "value": "5", "metadata": [3, 1]},
    ]]
