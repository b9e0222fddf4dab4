"""Argument strings match what the 2023 (JavaScript) extension wrote: `value.toString()`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwil_sync.shim.values import ArgumentError, js_number_string, scalar_to_string

NODE_DIR = Path(__file__).parent / "node"
EDGES = [0.0, -0.0, 7.0, 1.5, -2.25, 0.1, 0.1 + 0.2, 1e21, 1e20, 123456789012345680000.0,
         1e-6, 1e-7, 1.2345e-10, 5e-324, 1.7976931348623157e308, 2.0**53, 2.0**53 + 2,
         100.25, 1e16, 12345678.9, -1e-7, 3e100]


def js_strings(numbers: list[float]) -> list[str]:
    script = "console.log(JSON.stringify(JSON.parse(process.argv[1]).map(String)))"
    out = subprocess.run(["node", "-e", script, json.dumps(numbers)], cwd=NODE_DIR,
                         capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


@pytest.mark.node
def test_edge_numbers_match_javascript() -> None:
    assert [js_number_string(x) for x in EDGES] == js_strings(EDGES)


@pytest.mark.node
@settings(max_examples=5, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=50, max_size=50))
def test_random_numbers_match_javascript(numbers: list[float]) -> None:
    assert [js_number_string(x) for x in numbers] == js_strings(numbers)


@pytest.mark.parametrize(("raw", "text"), [
    (b'"hi"', "hi"), (b'""', ""), (b'"\\u00e9"', "é"), (b"7", "7"), (b"-12", "-12"),
    (b"7.0", "7"), (b"2.5e1", "25"), (b"true", "true"), (b"false", "false"),
    (b"123456789012345678901234567890", "123456789012345678901234567890"),
])
def test_scalar_strings(raw: bytes, text: str) -> None:
    assert scalar_to_string(raw, position=1) == text


@pytest.mark.parametrize(("raw", "words"), [
    (b"null", "null"), (b"[1]", "list"), (b'{"a":1}', "dict"), (b"NaN", "NaN"),
    (b"1e400", "range"), (b"nope", "not JSON"), (b"\xff", "not JSON"),
])
def test_scalar_refusals(raw: bytes, words: str) -> None:
    with pytest.raises(ArgumentError, match=words):
        scalar_to_string(raw, position=3)
