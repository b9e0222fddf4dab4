"""Data items and bundles agree with arbundles 0.11.2 (Node) in both directions.

One Node run serves the whole file: it verifies what Python made and makes items
(Ethereum and Arweave signers) and a bundle for Python to verify, with tampered copies.
"""

import json
import subprocess

import pytest

from kwil_sync.arweave.ans104 import DataItem, DataItemError, EthereumSigner
from kwil_sync.arweave.bundle import Bundle, BundleError, encode_bundle
from kwil_sync.arweave.signers import ArweaveSigner, b64url, b64url_decode
from kwil_sync.testing.arlocal import node_dir

pytestmark = pytest.mark.node

ETH_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ANCHOR = "kwil-sync-anchor-0123456789abcde"  # arbundles takes a 32-character string
TARGET = b"\x05" * 32
SPECS = [
    {"data": b"hello arbundles", "tags": [("Content-Type", "text/plain"), ("App", "kwil")]},
    {"data": b"", "tags": []},
    {"data": b"\x00\xff" * 3000, "tags": [("\u00e9t\u00e9", "\u00fcber")],
     "anchor": ANCHOR, "target": TARGET},
]


def flips(item: DataItem) -> dict[str, bytes]:
    """The item with one byte flipped in its signature, its tags and its data."""
    data_start = len(item.raw) - len(item.data)
    offsets = {"signature": 5}
    if item.tag_bytes:
        offsets["tags"] = data_start - len(item.tag_bytes) + 2  # a character of the first name
    if item.data:
        offsets["data"] = data_start
    out = {}
    for part, offset in offsets.items():
        raw = bytearray(item.raw)
        raw[offset] ^= 0x01
        out[part] = bytes(raw)
    return out


def python_verdict(raw: bytes) -> bool:
    try:
        return DataItem.parse(raw).verify()
    except DataItemError:
        return False


@pytest.fixture(scope="module")
def rsa() -> ArweaveSigner:
    return ArweaveSigner.generate()


@pytest.fixture(scope="module")
def python_items(rsa):
    items = []
    for signer in (EthereumSigner(ETH_KEY), rsa):
        for spec in SPECS:
            items.append(DataItem.create(spec["data"], spec["tags"], signer,
                                         anchor=spec.get("anchor", "").encode() or None,
                                         target=spec.get("target")))
    return items


@pytest.fixture(scope="module")
def python_bundles(python_items):
    good = encode_bundle(python_items)
    tampered = bytearray(good)
    tampered[-1] ^= 0x01  # last data byte of the last item
    wrong_id = bytearray(good)
    wrong_id[32 + 32] ^= 0x01  # the first header id
    return {"good": good, "tampered": bytes(tampered), "wrong_id": bytes(wrong_id)}


@pytest.fixture(scope="module")
def oracle(rsa, python_items, python_bundles):
    flipped = [raw for item in python_items for raw in flips(item).values()]
    request = {
        "items": [b64url(item.raw) for item in python_items] + [b64url(raw) for raw in flipped],
        "bundles": [b64url(raw) for raw in python_bundles.values()],
        "make": {
            "eth_key": ETH_KEY, "jwk": rsa.jwk(),
            "items": [{"data": b64url(s["data"]), "tags": s["tags"],
                       **({"anchor": s["anchor"]} if "anchor" in s else {}),
                       **({"target": b64url(s["target"])} if "target" in s else {})}
                      for s in SPECS],
        },
    }
    out = subprocess.run(["node", "oracle_arbundles.mjs"], cwd=node_dir(),
                         input=json.dumps(request), capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout)
    n = len(python_items)
    return {"items": result["items"][:n], "flipped": result["items"][n:],
            "bundles": dict(zip(python_bundles, result["bundles"], strict=True)),
            "made": result["made"]}


def test_python_items_verify_in_arbundles(oracle, python_items):
    assert [v["valid"] for v in oracle["items"]] == [True] * len(python_items)
    assert [v["id"] for v in oracle["items"]] == [item.id for item in python_items]


def test_python_flipped_items_fail_in_both(oracle, python_items):
    flipped = [raw for item in python_items for raw in flips(item).values()]
    assert len(flipped) == len(oracle["flipped"]) >= 3 * 2 * 2
    for raw, verdict in zip(flipped, oracle["flipped"], strict=True):
        assert verdict["valid"] is False
        assert python_verdict(raw) is False


def test_python_bundles_in_arbundles(oracle, python_items):
    good = oracle["bundles"]["good"]
    assert good["verify"] is True
    assert good["ids"] == [item.id for item in python_items]
    assert oracle["bundles"]["tampered"]["verify"] is False


def test_header_id_mismatch_is_refused_here_though_arbundles_accepts_it(oracle, python_items,
                                                                         python_bundles):
    # arbundles 0.11.2 Bundle.verify recomputes each id from the signature and never compares
    # it with the header, yet getIds() (and arlocal's indexing) use the header id. We refuse.
    wrong = oracle["bundles"]["wrong_id"]
    assert wrong["verify"] is True
    assert wrong["ids"][0] != python_items[0].id and wrong["ids"][1:] == \
        [item.id for item in python_items[1:]]
    assert not Bundle.parse(python_bundles["wrong_id"]).verify()


def test_arbundles_items_verify_in_python(oracle):
    made = oracle["made"]["items"]
    assert [m["signer"] for m in made] == ["ethereum"] * 3 + ["arweave"] * 3
    for m, spec in zip(made, SPECS * 2, strict=True):
        item = DataItem.parse(b64url_decode(m["raw"]))
        assert item.verify(), m["signer"]
        assert item.id == m["id"]
        assert item.signature_type == (3 if m["signer"] == "ethereum" else 1)
        assert item.tags == spec["tags"] and item.data == spec["data"]
        assert item.anchor == (spec["anchor"].encode() if "anchor" in spec else None)
        assert item.target == spec.get("target")
    assert DataItem.parse(b64url_decode(made[0]["raw"])).owner_address == \
        EthereumSigner(ETH_KEY).address


def test_arbundles_flipped_items_fail_in_both(oracle):
    seen = set()
    for m in oracle["made"]["items"]:
        for part, bad in m["flipped"].items():
            seen.add(part)
            assert bad["valid"] is False, (m["signer"], part)
            assert python_verdict(b64url_decode(bad["raw"])) is False, (m["signer"], part)
    assert seen == {"signature", "tags", "data"}


def test_arbundles_bundle_verifies_in_python(oracle):
    made = oracle["made"]
    assert made["bundle"]["verify"] is True
    bundle = Bundle.parse(b64url_decode(made["bundle"]["raw"]))
    assert bundle.verify()
    assert bundle.ids == made["bundle"]["ids"] == [m["id"] for m in made["items"]]
    assert made["tampered_bundle"]["verify"] is False
    tampered = Bundle.parse(b64url_decode(made["tampered_bundle"]["raw"]))
    assert not tampered.verify()
    with pytest.raises(BundleError, match="ends"):
        Bundle.parse(b64url_decode(made["bundle"]["raw"])[:-1])
