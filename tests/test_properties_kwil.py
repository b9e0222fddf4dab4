"""Properties of the Kwil action payload codecs beyond tests/test_kwil_payload.py (which has
canonical round trips, random bytes and single-byte mutations): every accepted spelling
of a value decodes to its canonical form, arbitrary argument objects are refused only
with PayloadError, whatever decodes re-encodes to the same call, and one version's
payload never decodes as the other's. Every wire type name of both versions is drawn."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kwil_sync.kwil.arguments import PayloadError
from kwil_sync.kwil.payload import (
    decode_action,
    decode_call,
    encode_action,
    encode_call,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
VERSIONS = ("v0.9", "v0.10")
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)

# (canonical value, accepted spelling) per base type.
Spelled = tuple[Any, Any]


def same(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Spelled]:
    return values.map(lambda v: (v, v))


def uuid_spellings(u: uuid.UUID) -> st.SearchStrategy[Spelled]:
    return st.sampled_from([u, str(u), str(u).upper(), u.hex, "{" + str(u) + "}",
                            "urn:uuid:" + str(u), u.bytes]).map(lambda s: (str(u), s))


def blob_spellings(b: bytes) -> st.SearchStrategy[Spelled]:
    return st.sampled_from([b, bytearray(b), memoryview(b)]).map(lambda s: (b, s))


DECIMAL = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(lambda d: (str(d), d)),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: (str(d), str(d))),
    INT64.map(lambda n: (str(n), n)))

BASE_VALUES: dict[str, st.SearchStrategy[Spelled]] = {
    "text": same(st.text(max_size=40)),
    "int": same(INT64),
    "bool": same(st.booleans()),
    "blob": st.binary(max_size=64).flatmap(blob_spellings),
    "uuid": st.uuids().flatmap(uuid_spellings),
    "uint256": same(st.integers(0, (1 << 256) - 1)),
    "decimal": DECIMAL,
}
# Every wire name of each version and its base type (kwil-db core/types).
WIRE_NAMES = {
    "v0.9": {"text": "text", "int": "int", "bool": "bool", "blob": "blob", "uuid": "uuid",
             "uint256": "uint256", "decimal": "decimal", "null": "null"},
    "v0.10": {"string": "text", "text": "text", "int": "int", "integer": "int",
              "bigint": "int", "int8": "int", "bool": "bool", "boolean": "bool",
              "blob": "blob", "bytea": "blob", "uuid": "uuid", "decimal": "decimal",
              "numeric": "decimal", "null": "null"},
}


class TypedArgument:
    """The attribute-style argument kwil-sync's own value types use."""

    def __init__(self, type: str, value: Any, metadata: Any = None,
                 is_array: bool = False) -> None:
        self.type, self.value, self.metadata, self.is_array = type, value, metadata, is_array


@st.composite
def spelled_argument(draw: st.DrawFn, version: str) -> tuple[dict[str, Any], Any]:
    """(canonical dict decode returns, an equivalent argument as a caller may spell it)."""
    name = draw(st.sampled_from(sorted(WIRE_NAMES[version])))
    base = WIRE_NAMES[version][name]
    nulls_inside = version == "v0.10"  # v0.9 cannot mark a null inside a typed value
    if base == "null":
        element: st.SearchStrategy[Spelled] = st.just((None, None))
    elif nulls_inside:
        element = st.one_of(st.just((None, None)), BASE_VALUES[base])
    else:
        element = BASE_VALUES[base]
    is_array = draw(st.booleans()) and not (base == "null" and version == "v0.9")
    if is_array:
        pairs = draw(st.lists(element, max_size=4))
        canonical: dict[str, Any] = {"type": name, "value": [c for c, _ in pairs],
                                     "is_array": True}
        value: Any = draw(st.sampled_from([list, tuple]))(s for _, s in pairs)
    else:
        canonical_value, value = draw(element)
        canonical = {"type": name, "value": canonical_value}
    pair = draw(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
    metadata = draw(st.sampled_from([None, (0, 0), [0, 0], pair, list(pair)]))
    if metadata is not None and tuple(metadata) != (0, 0):
        canonical["metadata"] = list(metadata)
    if draw(st.booleans()):
        return canonical, TypedArgument(name, value, metadata, is_array)
    spelled: dict[str, Any] = {"type": name, "value": value}
    if metadata is not None:
        spelled["metadata"] = metadata
    if is_array or draw(st.booleans()):
        spelled["is_array"] = is_array
    return canonical, spelled


@pytest.mark.parametrize("version", VERSIONS)
def test_every_accepted_spelling_decodes_to_its_canonical_form(version: str) -> None:
    @SETTINGS
    @given(st.lists(st.lists(spelled_argument(version), max_size=4), max_size=3),
           st.text(max_size=20), st.text(max_size=20))
    def check(sets: list[list[tuple[dict[str, Any], Any]]], target: str, action: str) -> None:
        canonical = [[c for c, _ in s] for s in sets]
        spelled = [[a for _, a in s] for s in sets]
        payload = encode_action(version, target, action, spelled)
        assert payload == encode_action(version, target, action, canonical)
        call = decode_action(version, payload)
        assert (call.target, call.action, call.arguments) == (target, action, canonical)
        first = spelled[0] if spelled else []
        view = decode_call(version, encode_call(version, target, action, first))
        assert view.arguments == (canonical[0] if canonical else [])

    check()


JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(1 << 300), 1 << 300), st.floats(),
              st.text(max_size=8), st.binary(max_size=8), st.decimals(),
              st.sampled_from(["\ud800", "NaN", "1e9999", str(uuid.UUID(int=5))])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)
ANY_NAME = st.one_of(st.sampled_from(sorted({*WIRE_NAMES["v0.9"], *WIRE_NAMES["v0.10"]})),
                     JUNK)


JUNK_OBJECT = object()  # neither a mapping nor typed


@st.composite
def junk_argument(draw: st.DrawFn, version: str) -> Any:
    """Junk, or a valid argument with one field replaced by junk (often still valid)."""
    if draw(st.booleans()):
        _, spelled = draw(spelled_argument(version))
        if isinstance(spelled, dict):
            spelled[draw(st.sampled_from(["type", "value", "metadata", "is_array"]))] = \
                draw(st.one_of(JUNK, ANY_NAME))
        return spelled
    fields: dict[str, Any] = {"type": draw(ANY_NAME), "value": draw(JUNK)}
    for key in ("metadata", "is_array"):
        if draw(st.booleans()):
            fields[key] = draw(st.one_of(JUNK, st.booleans(), st.just([1, 2])))
    if draw(st.booleans()):
        del fields[draw(st.sampled_from(sorted(fields)))]
    return draw(st.sampled_from([fields, JUNK_OBJECT]))


@pytest.mark.parametrize("version", VERSIONS)
def test_arbitrary_arguments_are_refused_only_with_payload_error(version: str) -> None:
    @SETTINGS
    @given(st.one_of(JUNK, st.lists(st.lists(junk_argument(version), max_size=3), max_size=2)),
           st.one_of(st.text(max_size=6), JUNK), st.one_of(st.text(max_size=6), JUNK))
    def check(arguments: Any, target: Any, action: Any) -> None:
        try:
            payload = encode_action(version, target, action, arguments)
        except PayloadError:
            event("refused")
            return
        event("accepted")
        call = decode_action(version, payload)  # anything accepted decodes and is stable
        assert (call.target, call.action) == (target, action)
        assert encode_action(version, call.target, call.action, call.arguments) == payload

    check()


@st.composite
def decodable_candidates(draw: st.DrawFn, version: str) -> bytes:
    """A valid action or view call payload with one random edit: often still decodable."""
    sets = draw(st.lists(st.lists(spelled_argument(version), min_size=1, max_size=3),
                         min_size=1, max_size=2))
    arguments = [[c for c, _ in s] for s in sets]
    if draw(st.booleans()):
        raw = bytearray(encode_action(version, "ns", "act", arguments))
    else:
        raw = bytearray(encode_call(version, "ns", "act", arguments[0]))
    at = draw(st.integers(0, len(raw) - 1))
    how = draw(st.sampled_from(["set", "insert", "delete"]))
    if how == "set":
        raw[at] = draw(st.integers(0, 255))
    elif how == "insert":
        raw[at:at] = draw(st.binary(min_size=1, max_size=4))
    else:
        del raw[at:at + draw(st.integers(1, 4))]
    return bytes(raw)


@pytest.mark.parametrize("version", VERSIONS)
def test_whatever_decodes_re_encodes_to_the_same_call(version: str) -> None:
    @settings(SETTINGS, max_examples=200)
    @given(decodable_candidates(version))
    def check(payload: bytes) -> None:
        for decode, encode in ((decode_action, encode_action), (decode_call, encode_call)):
            try:
                call = decode(version, payload)
            except PayloadError:
                event(f"{decode.__name__} refused")
                continue
            event(f"{decode.__name__} decoded")
            again = decode(version, encode(version, call.target, call.action, call.arguments))
            assert again == call

    check()


@pytest.mark.parametrize(("written", "read"), [("v0.9", "v0.10"), ("v0.10", "v0.9")])
def test_one_versions_payload_never_decodes_as_the_other(written: str, read: str) -> None:
    @SETTINGS
    @given(st.lists(st.lists(spelled_argument(written), max_size=3), max_size=2),
           st.text(max_size=10), st.text(max_size=10))
    def check(sets: list[list[tuple[dict[str, Any], Any]]], target: str, action: str) -> None:
        arguments = [[c for c, _ in s] for s in sets]
        with pytest.raises(PayloadError):
            decode_action(read, encode_action(written, target, action, arguments))
        with pytest.raises(PayloadError):
            decode_call(read, encode_call(written, target, action, arguments[0] if arguments
                                          else []))

    check()


def test_spellings_cover_every_form() -> None:
    """The strategies above do produce the non-canonical forms they promise."""
    u = uuid.UUID(int=7)
    assert encode_action("v0.10", "ns", "a", [[{"type": "uuid", "value": u.bytes}]]) == \
        encode_action("v0.10", "ns", "a", [[{"type": "uuid", "value": str(u).upper()}]])
    assert decode_action("v0.9", encode_action("v0.9", "d", "a", [[
        {"type": "decimal", "value": Decimal("1.50")}]])).arguments == [[
            {"type": "decimal", "value": "1.50"}]]
