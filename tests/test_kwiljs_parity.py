"""Kwil transactions agree byte for byte with kwil-js under Node.

kwil-js 0.8.6 is the reference client for kwild v0.9, 0.9.4 for kwild v0.10. The oracle
(tests/node/oracle_kwiljs.mjs) drives kwil-js's public ``kwil.execute`` against a
scripted JSON-RPC endpoint on 127.0.0.1 and returns the transaction kwil-js broadcast:
payload, signature, sender and all. One Node run per test serves every generated case.

Two kinds of case per version:

- records: string/null values as the sync records carry them, turned into arguments by
  ``convert_arguments`` (v0.9: text and null as kwil-js 0.8 sends them; v0.10: typed to
  the declared parameter types, which kwil-js gets as its ``types`` overrides);
- native: JavaScript values for kwil-js to type by itself (numbers, booleans, bytes,
  arrays, UUID-looking strings), with the arguments Python must write for them.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import subprocess
import uuid
from decimal import Decimal

import pytest

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil import build_tx, dbid, decode_action, encode_action, recover_sender
from kwil_sync.kwil.arguments import normalize_argument
from kwil_sync.kwil.values import convert_arguments
from kwil_sync.testing.arlocal import node_dir

pytestmark = pytest.mark.node

KEY = "f1aa5a7966c3863ccde3047f6a1e266cdc0c76b399e256b8fede92b1c69e4f4e"
ADDRESS = EthereumKey(KEY).address
SAFE = (1 << 53) - 1
# uuid 11 `validate` (kwil-js 0.9.4's dependency)
JS_UUID = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$",
    re.IGNORECASE,
)
TEXTS = [
    "", "foo", "héllo wörld", "日本語テキスト", "emoji 🦀🚀", "line\nbreak\ttab", "quote \" ' \\",
    "a" * 300, " leading and trailing ", "NULL", "null", "-0", "1e5",
]


def run_oracle(version: str, chain_id: str, cases: list[dict]) -> list[dict]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = node_dir() / "oracle_kwiljs.mjs"
    if not (node_dir() / "node_modules" / "kwil-js-09").is_dir():
        pytest.skip("npm oracles are not installed (make setup)")
    payload = {"version": version, "private_key_hex": KEY, "chain_id": chain_id, "cases": cases}
    proc = subprocess.run(
        ["node", str(script)], input=json.dumps(payload).encode(), capture_output=True,
        timeout=120, cwd=node_dir(),
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    results = json.loads(proc.stdout.decode().strip().splitlines()[-1])["results"]
    assert len(results) == len(cases)
    return results


def check_parity(version: str, chain_id: str, cases: list[dict]) -> None:
    """Run the oracle and compare each broadcast tx with Python's, field by field."""
    results = run_oracle(version, chain_id, [c["js"] for c in cases])
    for case, res in zip(cases, results, strict=True):
        js = case["js"]
        assert "error" not in res, (case["name"], res.get("error"))
        tx = res["tx"]
        payload = encode_action(version, js["target"], js["action"], case["arguments"])
        assert base64.b64decode(tx["body"]["payload"]).hex() == payload.hex(), case["name"]
        mine = build_tx(
            KEY, payload, description=js["description"], fee=js["fee"], nonce=js["nonce"],
            chain_id=chain_id,
        )
        assert mine == tx, case["name"]  # payload, signature (r, s and v), sender, ...
        assert recover_sender(tx) == ADDRESS
        call = decode_action(version, payload)
        assert (call.target, call.action) == (js["target"], js["action"])
        assert call.arguments == [
            [dict(a) for a in arg_set] for arg_set in canonical(version, case["arguments"])
        ], case["name"]
    assert len(cases) >= 20


def canonical(version, arguments):
    return [[normalize_argument(version, a) for a in s] for s in arguments]


def tx_fields(rng: random.Random, i: int) -> dict:
    fees = ["0", "100", str(rng.randrange(1, 10**6)), "1000000000000000000000"]
    descs = ["", "Kwil sync", "restore héllo 🦀", "d" * 150]
    return {
        "description": descs[i % len(descs)] or "x",
        "fee": fees[i % len(fees)],
        "nonce": rng.randrange(1, 1 << 40),
    }


# ---------------------------------------------------------------------------
# v0.9 / kwil-js 0.8.6


def js08_number_text(x: int | float) -> tuple[str, list[int] | None]:
    """kwil-js 0.8 sends a JS number as text ``toString()``; decimals get metadata
    [total digits, index of the point]."""
    s = repr(x) if isinstance(x, float) else str(x)
    if isinstance(x, float) and s.endswith(".0"):
        s = s[:-2]
    mag = s.lstrip("-")
    if "." in mag:
        return s, [len(mag) - 1, mag.index(".")]
    return s, None


def js08_arg(v) -> dict:
    """What kwil-js 0.8 (utils/rlp.js encodeSingleArguments) writes for a JS value."""
    if isinstance(v, list):
        first = js08_arg(v[0])
        data = []
        for e in v:
            if e is None:
                data.append("")
            elif isinstance(e, bool):
                data.append("true" if e else "false")
            elif isinstance(e, (int, float)):
                data.append(js08_number_text(e)[0])
            else:
                data.append(e)
        out = {"type": first["type"], "value": data, "is_array": True}
        if "metadata" in first:
            out["metadata"] = first["metadata"]
        return out
    if v is None:
        return {"type": "null", "value": None}
    if isinstance(v, dict) and "$bytes" in v:
        return {"type": "blob", "value": bytes.fromhex(v["$bytes"])}
    if isinstance(v, bool):
        return {"type": "text", "value": "true" if v else "false"}
    if isinstance(v, (int, float)):
        s, meta = js08_number_text(v)
        return {"type": "text", "value": s} | ({"metadata": meta} if meta else {})
    return {"type": "text", "value": v}


def v09_cases() -> list[dict]:
    rng = random.Random(909)
    cases = []
    for i in range(24):
        n_params = [0, 1, 3, 6][i % 4] if i else 0
        n_sets = 0 if n_params == 0 else 1 + (i % 3 == 0)  # no params: no argument sets
        target = dbid(ADDRESS, f"db_{i}")
        action = f"act_{i}"
        base = {"target": target, "action": action, **tx_fields(rng, i)}
        if i % 2 == 0:
            # records: strings and nulls through convert_arguments
            rows = []
            for _ in range(n_sets):
                rows.append([
                    rng.choice([None, rng.choice(TEXTS), str(rng.randrange(-SAFE, SAFE)),
                                str(-(1 << 63)), "3.14159", "true"])
                    for _ in range(n_params)
                ])
            params = [(f"$p{j}", None) for j in range(n_params)]
            arguments = [convert_arguments("v0.9", params, row) for row in rows]
            cases.append({"name": f"v09-record-{i}", "arguments": arguments,
                          "js": base | {"inputs": rows}})
        else:
            pool = [
                lambda: rng.choice(TEXTS),
                lambda: rng.randrange(-SAFE, SAFE),
                lambda: rng.choice([0, 1, -1, SAFE, -SAFE]),
                lambda: rng.choice([True, False]),
                lambda: None,
                lambda: rng.choice([1.25, -3.5, 0.001, 123.456, -99.9]),
                lambda: {"$bytes": rng.randbytes(rng.randrange(0, 40)).hex()},
                lambda: [rng.choice(TEXTS[1:]) for _ in range(rng.randrange(1, 4))],
                lambda: [rng.randrange(-1000, 1000), None, 7],
                lambda: [2.5, 1.75],
            ]
            rows = [[rng.choice(pool)() for _ in range(n_params)] for _ in range(n_sets)]
            arguments = [[js08_arg(v) for v in row] for row in rows]
            cases.append({"name": f"v09-native-{i}", "arguments": arguments,
                          "js": base | {"inputs": rows}})
    # edges, as records: negative and 64-bit ints, unicode, empty text, null
    row = ["-1", str(-(1 << 63)), str((1 << 63) - 1), "", "日本 🦀", None, "-0.5", "false"]
    params = [(f"$p{j}", None) for j in range(len(row))]
    cases.append({
        "name": "v09-edges", "arguments": [convert_arguments("v0.9", params, row)],
        "js": {"target": dbid(ADDRESS, "Edges"), "action": "edges", "inputs": [row],
               **tx_fields(rng, 99)},
    })
    return cases


def test_v09_matches_kwiljs_08():
    check_parity("v0.9", "kwil-chain-09", v09_cases())


# ---------------------------------------------------------------------------
# v0.10 / kwil-js 0.9.4


def js_value(base: str, v):
    """A Python argument value as the JS value kwil-js's override path takes."""
    if isinstance(v, list):
        return [js_value(base, e) for e in v]
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, int):
        # kwil-js numberToBytes takes non-negative numbers up to 2**53 - 1, or BigInts up
        # to 2**64 - 1: a negative int8 is its two's complement as a BigInt.
        return v if 0 <= v <= SAFE else {"$bigint": str(v % (1 << 64))}
    raise AssertionError(v)


def js_types(arguments: list[dict]) -> list[dict]:
    return [
        {"name": a["type"], "is_array": bool(a.get("is_array")),
         "metadata": a.get("metadata", [0, 0])}
        for a in arguments
    ]


def js09_arg(v) -> dict:
    """What kwil-js 0.9 (utils/parameterEncoding.js) writes for a JS value, no override."""
    def scalar(x):
        if x is None:
            return "null", None, [0, 0]
        if isinstance(x, bool):
            return "bool", x, [0, 0]
        if isinstance(x, dict):
            return "bytea", bytes.fromhex(x["$bytes"]), [0, 0]
        if isinstance(x, (int, float)):
            s = repr(x) if isinstance(x, float) else str(x)
            mag = s.lstrip("-")
            if "." in mag:
                return "numeric", s, [len(mag) - 1, len(mag) - mag.index(".") - 1]
            return "int8", x, [len(mag), 0]
        if JS_UUID.match(x):  # kwil-js sends a string that looks like a UUID as uuid
            return "uuid", str(uuid.UUID(x)), [0, 0]
        return "text", x, [0, 0]

    if isinstance(v, list):
        name, _, meta = scalar(v[0])
        out = {"type": name, "value": [scalar(e)[1] for e in v], "is_array": True}
    else:
        name, value, meta = scalar(v)
        out = {"type": name, "value": value}
    if meta != [0, 0]:
        out["metadata"] = meta
    return out


PARAM_TYPES = [
    ("int8", lambda r: str(r.choice([0, 1, -1, 32, r.randrange(-SAFE, SAFE),
                                     (1 << 63) - 1, -(1 << 63), r.randrange(1 << 62)]))),
    ("text", lambda r: r.choice(TEXTS)),
    ("bool", lambda r: r.choice(["true", "false", "TRUE", "f", "1", "no"])),
    ("numeric(10,2)", lambda r: r.choice(["0", "1.5", "-1.25", "12345678.99", "-0.01", "7"])),
    ("numeric(38,18)", lambda r: r.choice(["3.141592653589793238", "-1", "0.000000000000000001"])),
    # kwil-js's uuid parser takes only RFC versions 1-8 (Go takes any 16 bytes)
    ("uuid", lambda r: str(uuid.UUID(bytes=r.randbytes(16), version=4)).upper()),
    ("bytea", lambda r: r.choice(["0x", "0x00ff10", base64.b64encode(r.randbytes(20)).decode()])),
    ("int8[]", lambda r: json.dumps([r.randrange(-(1 << 63), 1 << 63), None, -5])),
    ("text[]", lambda r: json.dumps([r.choice(TEXTS), None, ""], ensure_ascii=False)),
    ("bool[]", lambda r: json.dumps([True, False, None])),
    ("numeric(6,3)[]", lambda r: json.dumps([1.5, "-2.125", None])),
    ("uuid[]", lambda r: json.dumps([str(uuid.UUID(bytes=r.randbytes(16), version=4)), None])),
    ("bytea[]", lambda r: json.dumps(["0xdead", None, ""])),
]


def v010_cases() -> list[dict]:
    rng = random.Random(1010)
    cases = []
    for i in range(26):
        n_params = [0, 2, 4, 7][i % 4] if i else 0
        n_sets = 0 if n_params == 0 else 1 + (i % 3 == 0)  # no params: no argument sets
        base = {"target": f"ns_{i}", "action": f"act_{i}", **tx_fields(rng, i)}
        if i % 2 == 0:
            declared = [rng.choice(PARAM_TYPES) for _ in range(n_params)]
            params = [(f"$p{j}", t) for j, (t, _) in enumerate(declared)]
            rows = [[None if rng.random() < 0.12 else gen(rng) for _, gen in declared]
                    for _ in range(n_sets)]
            arguments = [convert_arguments("v0.10", params, row) for row in rows]
            # kwil-js takes one positional type per parameter for every row; nulls of a
            # declared array type are sent as typed scalars, so type each row's values.
            js = base | {
                "inputs": [[js_value("", a["value"]) for a in args] for args in arguments],
                "types": js_types(arguments[0]) if arguments else [],
            }
            if any(js_types(a) != js["types"] for a in arguments):
                arguments = arguments[:1]
                js["inputs"] = js["inputs"][:1]
            cases.append({"name": f"v010-record-{i}", "arguments": arguments, "js": js})
        else:
            pool = [
                lambda: rng.choice(TEXTS),
                lambda: rng.randrange(0, SAFE),
                lambda: rng.choice([0, 32, SAFE]),
                lambda: rng.choice([True, False]),
                lambda: None,
                lambda: rng.choice([1.25, -3.5, 0.5, 123.456]),
                lambda: {"$bytes": rng.randbytes(rng.randrange(0, 40)).hex()},
                lambda: str(uuid.UUID(bytes=rng.randbytes(16), version=4)).upper(),
                lambda: str(uuid.UUID(bytes=rng.randbytes(16))),  # often not a valid version
                lambda: [rng.choice(TEXTS[1:]) for _ in range(rng.randrange(1, 4))],
                lambda: [rng.randrange(0, 1000), None, 7],
                lambda: [True, None],
            ]
            rows = [[rng.choice(pool)() for _ in range(n_params)] for _ in range(n_sets)]
            arguments = [[js09_arg(v) for v in row] for row in rows]
            cases.append({"name": f"v010-native-{i}", "arguments": arguments,
                          "js": base | {"inputs": rows}})
    # edges, as records: every declared type, negative and 64-bit ints, unicode, empty
    # text, typed nulls, negative numerics, empty bytea and arrays with nulls
    edges = [
        ("int8", "-1"), ("int8", str(-(1 << 63))), ("int8", str((1 << 63) - 1)),
        ("int8", " 42 "), ("text", ""), ("text", "日本 🦀"), ("text", None), ("int8", None),
        ("bool", "false"), ("bool", None), ("numeric(10,2)", "-12345678.9"),
        ("numeric(10,2)", None), ("uuid", "00000000-0000-0000-0000-000000000000"),
        ("bytea", ""), ("bytea", "0xFF00"), ("int8[]", "[-1, null, 9223372036854775807]"),
        ("text[]", '["", null, "é"]'), ("numeric(5,2)[]", '[-1.5, null, "999.99"]'),
        ("bool[]", "[]"), ("int8[]", None),
    ]
    params = [(f"$p{j}", t) for j, (t, _) in enumerate(edges)]
    args = convert_arguments("v0.10", params, [v for _, v in edges])
    cases.append({
        "name": "v010-edges", "arguments": [args],
        "js": {"target": "edges", "action": "edges", **tx_fields(rng, 99),
               "inputs": [[js_value("", a["value"]) for a in args]], "types": js_types(args)},
    })
    return cases


def test_v010_matches_kwiljs_09():
    check_parity("v0.10", "kwil-testnet", v010_cases())


def test_positive_int_metadata_matches_kwiljs_inference():
    """convert_arguments gives an int8 the metadata kwil-js infers for a JS number."""
    for n in [0, 7, 32, 12345, SAFE]:
        assert convert_arguments("v0.10", [("$n", "int8")], [str(n)]) == [js09_arg(n)]
    assert Decimal("1.25") == Decimal(js09_arg(1.25)["value"])
