"""Record values (strings) become typed Kwil arguments; bad values fail clearly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwil_sync.kwil import decode_action, encode_action
from kwil_sync.kwil.values import ValueConversionError, convert_arguments, convert_value, parse_type


def one(declared: str, value):
    return convert_value("v0.10", "$x", declared, value)


@pytest.mark.parametrize(
    ("declared", "value", "want"),
    [
        ("int8", "42", {"type": "int8", "value": 42, "metadata": [2, 0]}),
        ("INT8", " -7 ", {"type": "int8", "value": -7, "metadata": [1, 0]}),
        ("bigint", "+0", {"type": "int8", "value": 0, "metadata": [1, 0]}),
        ("int", str(-(1 << 63)), {"type": "int8", "value": -(1 << 63), "metadata": [19, 0]}),
        ("bool", "TRUE", {"type": "bool", "value": True}),
        ("boolean", "f", {"type": "bool", "value": False}),
        ("bool", "0", {"type": "bool", "value": False}),
        ("text", "", {"type": "text", "value": ""}),
        ("string", "日本", {"type": "text", "value": "日本"}),
        ("numeric(10,2)", "1.5", {"type": "numeric", "value": "1.5", "metadata": [10, 2]}),
        ("decimal(10,2)", "-3", {"type": "numeric", "value": "-3", "metadata": [10, 2]}),
        ("numeric(10,2)", "1.500", {"type": "numeric", "value": "1.50", "metadata": [10, 2]}),
        ("numeric(5,0)", "1e3", {"type": "numeric", "value": "1000", "metadata": [5, 0]}),
        ("numeric", "12.345", {"type": "numeric", "value": "12.345", "metadata": [5, 3]}),
        ("numeric", "-0.5", {"type": "numeric", "value": "-0.5", "metadata": [1, 1]}),
        ("uuid", "7C9E6679-7425-40DE-944B-E07FC1F90AE7",
         {"type": "uuid", "value": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}),
        ("bytea", "0x00FF", {"type": "bytea", "value": b"\x00\xff"}),
        ("bytea", "\\x0a", {"type": "bytea", "value": b"\n"}),
        ("blob", "AAE=", {"type": "bytea", "value": b"\x00\x01"}),
        ("bytea", "", {"type": "bytea", "value": b""}),
        ("int8", None, {"type": "int8", "value": None}),
        ("numeric(4,1)", None, {"type": "numeric", "value": None, "metadata": [4, 1]}),
        ("int8[]", "[1, null, -2]", {"type": "int8", "value": [1, None, -2], "is_array": True}),
        ("int8[]", '["3"]', {"type": "int8", "value": [3], "is_array": True}),
        ("text[]", '["a", null, ""]', {"type": "text", "value": ["a", None, ""], "is_array": True}),
        ("bool[]", "[true, false]", {"type": "bool", "value": [True, False], "is_array": True}),
        ("numeric(6,2)[]", '[1.5, "2.25", null]',
         {"type": "numeric", "value": ["1.5", "2.25", None], "is_array": True, "metadata": [6, 2]}),
        ("numeric[]", "[1.5, 123]",
         {"type": "numeric", "value": ["1.5", "123"], "is_array": True, "metadata": [4, 1]}),
        ("uuid[]", '["00000000-0000-0000-0000-000000000000"]',
         {"type": "uuid", "value": ["00000000-0000-0000-0000-000000000000"], "is_array": True}),
        ("bytea[]", '["0x01", "AQ=="]', {"type": "bytea", "value": [b"\x01", b"\x01"],
                                         "is_array": True}),
        ("text[]", "[]", {"type": "text", "value": [], "is_array": True}),
        ("int8[]", None, {"type": "int8", "value": None}),
    ],
)
def test_conversions(declared, value, want):
    got = one(declared, value)
    assert got == want
    payload = encode_action("v0.10", "ns", "a", [[got]])
    assert decode_action("v0.10", payload).arguments == [[want]]


@pytest.mark.parametrize(
    ("declared", "value", "reason"),
    [
        ("int8", "1.5", "not a base-10 integer"),
        ("int8", "", "not a base-10 integer"),
        ("int8", "9223372036854775808", "out of the signed 64-bit range"),
        ("int8", "0x10", "not a base-10 integer"),
        ("bool", "maybe", "not a boolean"),
        ("numeric(4,2)", "123.4", "more than 2 digits before the point"),
        ("numeric(4,2)", "1.234", "more than 2 digits after the point"),
        ("numeric(10,2)", "NaN", "not a decimal number"),
        ("numeric(10,2)", "Infinity", "not a decimal number"),
        ("numeric(10,2)", "1,5", "not a decimal number"),
        ("uuid", "7c9e6679742540de944be07fc1f90ae7", "not a UUID"),
        ("uuid", "not-a-uuid", "not a UUID"),
        ("bytea", "0xabc", "bad hex after 0x"),
        ("bytea", "AAE", "neither 0x-hex nor standard base64"),
        ("int8[]", "1,2", "not a JSON array"),
        ("int8[]", '{"a": 1}', "not a JSON array"),
        ("int8[]", "[1, 2.5]", "element 1: not a base-10 integer"),
        ("bool[]", "[1]", "element 0: not a boolean"),
        ("money", "1", "unknown type 'money'"),
        ("text(1,2)", "a", "only numeric takes"),
        ("numeric(2,3)", "1", "bad numeric precision/scale"),
    ],
)
def test_conversion_errors(declared, value, reason):
    with pytest.raises(ValueConversionError) as info:
        one(declared, value)
    err = info.value
    assert reason in str(err)
    assert err.param == "$x" and err.type == declared and err.value == value
    assert str(err).startswith(f"parameter $x ({declared}): cannot convert {value!r}")


def test_error_truncates_long_values():
    with pytest.raises(ValueConversionError) as info:
        one("int8", "9" * 500)
    message = str(info.value)
    assert "..." in message and len(message) < 200


def test_convert_arguments_in_order_and_counts():
    params = [("$id", "uuid"), ("$n", "int8"), ("$msg", "text")]
    args = convert_arguments("v0.10", params, ["00000000-0000-0000-0000-000000000001", "5", "hi"])
    assert [a["type"] for a in args] == ["uuid", "int8", "text"]
    counts = r"2 values for 3 parameters \(\$id, \$n, \$msg\)"
    with pytest.raises(ValueConversionError, match=counts):
        convert_arguments("v0.10", params, ["a", "b"])
    with pytest.raises(ValueConversionError, match="needs the declared type"):
        convert_arguments("v0.10", [("$a", None)], ["1"])


def test_v09_sends_text_like_kwiljs_08():
    params = [("$a", None), ("$b", "int"), ("$c", None), ("$d", None)]
    assert convert_arguments("v0.9", params, ["1", "-2", None, ""]) == [
        {"type": "text", "value": "1"},
        {"type": "text", "value": "-2"},
        {"type": "null", "value": None},
        {"type": "text", "value": ""},
    ]
    assert convert_value("v0.9", "$a", None, True) == {"type": "text", "value": "true"}
    with pytest.raises(ValueConversionError, match="a record value is a string"):
        convert_value("v0.9", "$a", None, 1.5)


def test_parse_type():
    t = parse_type(" NUMERIC( 10 , 2 )[] ")
    assert (t.name, t.is_array, t.precision, t.scale) == ("numeric", True, 10, 2)
    assert repr(t) == "numeric(10,2)[]"
    assert repr(parse_type("integer")) == "int8"


@settings(max_examples=200, deadline=None)
@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_any_int64_string_converts(n):
    assert one("int8", str(n))["value"] == n


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=-(10**7), max_value=10**7, places=2, allow_nan=False))
def test_numeric_strings_keep_their_value(d):
    got = one("numeric(12,2)", str(d))
    assert Decimal(got["value"]) == d and got["metadata"] == [12, 2]
    assert "E" not in got["value"]
