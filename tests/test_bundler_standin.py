"""The Irys-style bundler stand-in, driven by the project's own IrysUploader, pager and
data client, bundling into a real arlocal."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.gateway import GatewayUnavailable
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.signers import ArweaveSigner, b64url
from kwil_sync.arweave.uploaders import IrysUploader, verify_irys_receipt
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.bundler import BundlerStandIn, BundlingFailed
from kwil_sync.testing.procs import free_port, stop_process, wait_until

SIGNER = EthereumSigner("7c" * 32)


def make_items(n: int) -> tuple[str, list[DataItem]]:
    run = uuid.uuid4().hex
    return run, [DataItem.create(json.dumps({"n": i}).encode(),
                                 [("Test-Run", run), ("Content-Type", "application/json"),
                                  ("N", str(i))], SIGNER) for i in range(n)]


def gateway_ids(arlocal: Arlocal, tags: dict[str, list[str]], **filters: Any) -> list[str]:
    pager = GraphQLPager(arlocal.url + "/graphql", "gateway")
    return [record.id for record in pager.records(tags, **filters)]


@pytest.fixture(scope="module")
def wallet() -> ArweaveSigner:
    return ArweaveSigner.generate()


@pytest.fixture
def standin(arlocal: Arlocal, wallet: ArweaveSigner, tmp_path: Path
            ) -> Iterator[BundlerStandIn]:
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path,
                              bundle_interval=0, signer=wallet) as bundler:
        yield bundler


def test_upload_answers_200_then_201_with_verifiable_receipts(standin: BundlerStandIn,
                                                              wallet: ArweaveSigner) -> None:
    _, items = make_items(5)
    uploader = IrysUploader(standin.url, "ethereum", trusted_keys=[b64url(wallet.owner)])
    receipts = uploader.upload(items)
    assert [r.id for r in receipts] == [i.id for i in items]
    assert not any(r.duplicate for r in receipts)
    stamps = {r.id: r.timestamp_ms or 0 for r in receipts}
    assert len(set(stamps.values())) == 5  # strictly increasing, so never shared
    listed = GraphQLPager(standin.url + "/graphql", "irys").records(ids=list(stamps))
    assert [(r.id, r.timestamp_ms) for r in listed] == sorted(stamps.items(), key=lambda x: x[1])
    for receipt in receipts:
        assert receipt.signed_receipt is not None and verify_irys_receipt(receipt.signed_receipt)
        assert receipt.signed_receipt["version"] == "1.0.0"
    assert all(r.duplicate for r in uploader.upload(items))
    repeat = httpx.post(f"{standin.url}/tx/ethereum", content=items[0].raw)
    assert repeat.status_code == 201 and repeat.json() == receipts[0].signed_receipt


def test_tampered_or_malformed_items_are_refused(standin: BundlerStandIn) -> None:
    _, items = make_items(1)
    tampered = items[0].raw[:-1] + bytes([items[0].raw[-1] ^ 1])
    answer = httpx.post(f"{standin.url}/tx/ethereum", content=tampered)
    assert answer.status_code == 400 and "invalid signature" in answer.text
    garbage = httpx.post(f"{standin.url}/tx/ethereum", content=b"\x03\x00" + b"\x01" * 40)
    assert garbage.status_code == 400 and "not a data item" in garbage.text
    pager = GraphQLPager(standin.url + "/graphql", "irys")
    assert list(pager.records(ids=[items[0].id])) == []


def test_items_reach_arlocal_as_a_bundle(standin: BundlerStandIn, arlocal: Arlocal,
                                         wallet: ArweaveSigner) -> None:
    run, items = make_items(20)
    IrysUploader(standin.url, "ethereum").upload(items)
    with GatewayDataClient(standin.url, expected_content_type="application/json") as docs:
        assert docs.fetch(items[3].id) == b'{"n": 3}'
    assert httpx.get(f"{standin.url}/tx/{items[4].id}/data").content == b'{"n": 4}'
    assert gateway_ids(arlocal, {"Test-Run": [run]}) == []
    [bundle_id] = standin.flush()
    assert sorted(gateway_ids(arlocal, {"Test-Run": [run]})) == sorted(i.id for i in items)
    [bundle] = GraphQLPager(arlocal.url + "/graphql", "gateway").records(ids=[bundle_id])
    assert bundle.tag("Bundle-Format") == "binary" and bundle.tag("Bundle-Version") == "2.0.0"
    assert bundle.owner_address == wallet.address and bundle.height is not None
    with GatewayDataClient(arlocal.url) as docs:
        fetched = list(docs.fetch_many(i.id for i in items))
    assert [r.data for r in fetched] == [i.data for i in items]
    assert standin.flush() == []


def test_fault_switches(standin: BundlerStandIn) -> None:
    _, items = make_items(2)
    standin.set_fault(402, retry_after=1, count=1)
    refused = httpx.post(f"{standin.url}/tx/ethereum", content=items[0].raw)
    assert refused.status_code == 402 and refused.headers["retry-after"] == "1"
    waits: list[float] = []
    standin.set_fault(402, retry_after=1, count=1)
    [receipt] = IrysUploader(standin.url, "ethereum", sleep=waits.append).upload(items[1:])
    assert receipt.id == items[1].id and waits == [1.0]
    standin.set_fault(503, route="graphql", count=2)
    pager = GraphQLPager(standin.url + "/graphql", "irys", backoff=0.01)
    assert [r.id for r in pager.records(ids=[items[1].id])] == [items[1].id]


def test_failed_rounds_lose_nothing_and_restarts_never_double_post(
        arlocal: Arlocal, wallet: ArweaveSigner, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run, items = make_items(12)
    bundles_before = len(gateway_ids(arlocal, {"Bundle-Format": ["binary"]},
                                     owners=[wallet.address]))
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path, bundle_interval=0,
                              signer=wallet) as first:
        IrysUploader(first.url, "ethereum").upload(items[:8])
        first.fail_bundling()
        with pytest.raises(BundlingFailed):
            first.flush()
        assert first.info()["unbundled"] == 8
        assert first.poster is not None

        def gateway_down(tx: Any) -> None:
            raise GatewayUnavailable("arlocal went away (simulated)")

        monkeypatch.setattr(first.poster.gateway, "post_transaction", gateway_down)
        with pytest.raises(GatewayUnavailable):
            first.flush()  # signed and recorded, never posted
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path, bundle_interval=0,
                              signer=wallet) as second:
        [recovered] = second.flush()
        assert second.flush() == []
        IrysUploader(second.url, "ethereum").upload(items)  # 8 repeats, 4 new
        [fresh] = second.flush()
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path, bundle_interval=0,
                              signer=wallet) as third:
        assert third.flush() == []
    found = gateway_ids(arlocal, {"Test-Run": [run]})
    assert sorted(found) == sorted(i.id for i in items)
    bundles = gateway_ids(arlocal, {"Bundle-Format": ["binary"]}, owners=[wallet.address])
    assert len(bundles) == bundles_before + 2 and {recovered, fresh} <= set(bundles)


def test_background_rounds_bundle_without_flush(arlocal: Arlocal, wallet: ArweaveSigner,
                                                tmp_path: Path) -> None:
    run, items = make_items(3)
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path,
                              bundle_interval=0.2, signer=wallet) as bundler:
        IrysUploader(bundler.url, "ethereum").upload(items)
        wait_until(lambda: len(gateway_ids(arlocal, {"Test-Run": [run]})) == 3, timeout=30,
                   what="background bundling")


def test_irys_graphql_details(standin: BundlerStandIn) -> None:
    run, items = make_items(3)
    for item in items:
        standin.accept(item, "ethereum")
    query = """query Q($tags: [TagFilter!], $n: Int) {
      transactions(tags: $tags, limit: $n, order: DESC) {
        edges { cursor node { id address token timestamp receipt { version deadlineHeight } } }
        pageInfo { hasNextPage endCursor } } }"""
    body = {"query": query, "variables": {"tags": [{"name": "Test-Run", "values": [run]}],
                                          "n": 2}}
    answer = httpx.post(f"{standin.url}/graphql", json=body).json()["data"]["transactions"]
    nodes = [edge["node"] for edge in answer["edges"]]
    assert [n["id"] for n in nodes] == [items[2].id, items[1].id]
    assert nodes[0]["address"] == SIGNER.address and nodes[0]["token"] == "ethereum"
    assert nodes[0]["receipt"]["version"] == "1.0.0"
    assert answer["pageInfo"] == {"hasNextPage": True, "endCursor": answer["edges"][1]["cursor"]}
    too_many = httpx.post(f"{standin.url}/graphql",
                          json={"query": "{ transactions(first: 101) { edges { cursor } } }"})
    assert too_many.json()["errors"][0]["message"] == "first/limit must be 0..100, got 101"
    bad_cursor = httpx.post(f"{standin.url}/graphql",
                            json={"query": '{ transactions(after: "!!") { edges { cursor } } }'})
    assert "not a cursor" in bad_cursor.json()["errors"][0]["message"]
    invalid = httpx.post(f"{standin.url}/graphql", json={"query": "{ transactions(x: 1) }"})
    assert invalid.status_code == 400 and "errors" in invalid.json()


def test_runs_as_a_process_on_loopback(arlocal: Arlocal, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kwil_sync.testing.bundler", "--arlocal", arlocal.url,
         "--port", str(port), "--data-dir", str(tmp_path), "--interval", "0"],
        stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["url"] == f"http://127.0.0.1:{port}"
        assert httpx.get(started["url"] + "/info").json()["gateway"] == arlocal.url
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        lines = [line for line in listening.splitlines() if f":{port} " in line]
        assert lines and all("127.0.0.1:" in line for line in lines)
        run, items = make_items(2)
        IrysUploader(started["url"], "ethereum").upload(items)
        bundles = httpx.post(started["url"] + "/_standin/flush", timeout=60).json()["bundles"]
        assert len(bundles) == 1
        assert sorted(gateway_ids(arlocal, {"Test-Run": [run]})) == sorted(i.id for i in items)
    finally:
        stop_process(process)
    assert process.returncode == 0
