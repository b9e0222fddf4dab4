"""GraphQLPager: both dialects on real servers (arlocal, the bundler stand-in), and its
retry, prefetch and loop guards against a scripted GraphQL server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.bundle import BUNDLE_TAGS, encode_bundle
from kwil_sync.arweave.gateway import GatewayClient
from kwil_sync.arweave.graphql import GraphQLError, GraphQLPager, TxRecord
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.transaction import Transaction
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.bundler import BundlerStandIn

N = 1000
SIGNER = EthereumSigner("5a" * 32)
OTHER = EthereumSigner("6b" * 32)


def make_items(run: str, n: int, signer: EthereumSigner = SIGNER) -> list[DataItem]:
    return [DataItem.create(json.dumps({"n": i}).encode(),
                            [("Test-Run", run), ("Content-Type", "application/json"),
                             ("N", str(i)), ("Parity", "even" if i % 2 == 0 else "odd")],
                            signer) for i in range(n)]


def walk(pager: GraphQLPager, tags: dict[str, list[str]], **filters: Any) -> list[TxRecord]:
    pages = list(pager.pages(tags, **filters))
    assert all(len(page.records) <= pager.page_size for page in pages)
    return [record for page in pages for record in page.records]


@pytest.fixture(scope="module")
def gateway_run(arlocal: Arlocal) -> tuple[str, list[DataItem], int]:
    """1,000 items posted to arlocal as one bundle and mined: (run tag, items, height)."""
    run = uuid.uuid4().hex
    items = make_items(run, N)
    wallet = ArweaveSigner.generate()
    arlocal.mint(wallet.address)
    data = encode_bundle(items)
    with GatewayClient(arlocal.url) as gw:
        tx = Transaction.create(data, list(BUNDLE_TAGS), wallet, last_tx=gw.tx_anchor(),
                                reward=gw.price(len(data)))
        gw.post_transaction(tx)
    arlocal.mine()
    return run, items, arlocal.height()


@pytest.fixture(scope="module")
def irys_run() -> Iterator[tuple[BundlerStandIn, str, list[DataItem]]]:
    """The bundler stand-in (no arlocal) holding 1,000 items of one run, 10 of another signer."""
    run = uuid.uuid4().hex
    items = make_items(run, N)
    with BundlerStandIn.start(bundle_interval=0) as standin:
        for item in items + make_items(run, 10, OTHER):
            standin.accept(item, "ethereum")
        yield standin, run, items


@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_gateway_walk_sees_every_record_once(arlocal: Arlocal, gateway_run: Any,
                                             order: str) -> None:
    run, items, height = gateway_run
    pager = GraphQLPager(arlocal.url + "/graphql", "gateway", page_size=100)
    records = walk(pager, {"Test-Run": [run]}, order=order)
    assert len(records) == N
    assert {r.id for r in records} == {item.id for item in items}
    first = next(r for r in records if r.id == items[0].id)
    assert first.tags == items[0].tags and first.tag("N") == "0"
    assert first.owner_key == SIGNER.owner and first.signature == items[0].signature
    assert first.owner_address == items[0].arweave_address
    assert first.height == height and first.timestamp_ms and first.timestamp_ms % 1000 == 0


def test_gateway_filters_and_resume(arlocal: Arlocal, gateway_run: Any) -> None:
    run, items, height = gateway_run
    pager = GraphQLPager(arlocal.url + "/graphql", "gateway", page_size=100)
    evens = walk(pager, {"Test-Run": [run], "Parity": ["even"]})
    assert {r.id for r in evens} == {item.id for item in items[::2]}
    some = walk(pager, {"Test-Run": [run], "N": ["3", "7", "11"]})
    assert {r.tag("N") for r in some} == {"3", "7", "11"}
    assert walk(pager, {"Test-Run": [run]}, min_block=height + 1) == []
    assert len(walk(pager, {"Test-Run": [run]}, min_block=height, max_block=height)) == N
    ids = walk(pager, {}, ids=[items[5].id, items[6].id])
    assert {r.id for r in ids} == {items[5].id, items[6].id}
    first_page = next(iter(pager.pages({"Test-Run": [run]})))
    rest = walk(pager, {"Test-Run": [run]}, after=first_page.end_cursor)
    assert len(rest) == N - 100
    assert not {r.id for r in rest} & {r.id for r in first_page.records}
    with pytest.raises(ValueError, match="min_block"):
        list(pager.pages({"Test-Run": [run]}, since_ms=0))


@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_irys_walk_sees_every_record_once_in_timestamp_order(irys_run: Any, order: str) -> None:
    standin, run, items = irys_run
    pager = GraphQLPager(standin.url + "/graphql", "irys", page_size=100)
    records = walk(pager, {"Test-Run": [run]}, owners=[SIGNER.address], order=order)
    assert [r.id for r in records] == [i.id for i in (items if order == "ASC" else items[::-1])]
    stamps = [r.timestamp_ms or 0 for r in records]
    assert stamps == sorted(stamps, reverse=order == "DESC") and len(set(stamps)) == N
    assert records[0].owner_address == SIGNER.address and records[0].owner_key is None
    assert records[0].signature in {items[0].signature, items[-1].signature}


def test_irys_filters_window_and_resume(irys_run: Any) -> None:
    standin, run, items = irys_run
    pager = GraphQLPager(standin.url + "/graphql", "irys", page_size=100)
    everyone = walk(pager, {"Test-Run": [run]})
    assert len(everyone) == N + 10
    others = walk(pager, {"Test-Run": [run]}, owners=[OTHER.address.lower()])
    assert len(others) == 10 and {r.owner_address for r in others} == {OTHER.address}
    mine = everyone[:N]
    lo, hi = mine[100].timestamp_ms, mine[349].timestamp_ms
    window = walk(pager, {"Test-Run": [run]}, since_ms=lo, until_ms=hi)
    assert [r.id for r in window] == [r.id for r in mine[100:350]]
    resumed = walk(pager, {"Test-Run": [run]}, owners=[SIGNER.address], after=mine[499].cursor)
    assert [r.id for r in resumed] == [r.id for r in mine[500:]]
    odd_few = walk(pager, {"Test-Run": [run], "Parity": ["odd"], "N": ["1", "2", "3"]})
    assert {r.tag("N") for r in odd_few} == {"1", "3"}
    older_nodes = GraphQLPager(standin.url + "/graphql", "irys", page_size=7,
                               size_argument="limit")
    twenty = {"Test-Run": [run], "N": [str(n) for n in range(1, 21)]}
    pages = list(older_nodes.pages(twenty, owners=[SIGNER.address]))
    assert [len(page.records) for page in pages] == [7, 7, 6]
    assert [r.id for page in pages for r in page.records] == [i.id for i in items[1:21]]
    with pytest.raises(ValueError, match="since_ms"):
        list(pager.pages({"Test-Run": [run]}, min_block=1))


class ScriptedGraphQL:
    """Answers POST /graphql from a script of (status, body); counts requests."""

    def __init__(self, script: list[tuple[int, Any]]) -> None:
        self.script = deque(script)
        self.hits = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                served.hits += 1
                status, body = served.script.popleft() if served.script else (500, "empty")
                raw = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def gateway_page(ids: list[str], has_next: bool) -> dict[str, Any]:
    edges = [{"cursor": f"c-{id}", "node": {
        "id": id, "anchor": "", "signature": "", "recipient": "",
        "owner": {"address": "addr", "key": ""}, "tags": [], "block": None}} for id in ids]
    return {"data": {"transactions": {"pageInfo": {"hasNextPage": has_next}, "edges": edges}}}


@pytest.fixture
def scripted() -> Iterator[list[ScriptedGraphQL]]:
    servers: list[ScriptedGraphQL] = []
    yield servers
    for server in servers:
        server.stop()


def test_pages_are_requested_ahead_but_boundedly(scripted: list[ScriptedGraphQL]) -> None:
    server = ScriptedGraphQL([(200, gateway_page([f"a{i}"], True)) for i in range(8)])
    scripted.append(server)
    pages = GraphQLPager(server.url, "gateway", pages_ahead=2).pages({"X": ["y"]})
    first = next(pages)
    assert [r.id for r in first.records] == ["a0"] and first.records[0].timestamp_ms is None

    def settled(hits: int) -> None:
        deadline = time.monotonic() + 10
        while server.hits < hits and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # one more request would have been sent by now
        assert server.hits == hits

    settled(4)  # a0 taken; a1 and a2 waiting; a3 made, waiting for room
    assert [r.id for r in next(pages).records] == ["a1"]
    settled(5)
    pages.close()
    assert server.hits == 5


def test_transient_failures_are_retried(scripted: list[ScriptedGraphQL]) -> None:
    server = ScriptedGraphQL([(503, "busy"), (502, "<html>bad gateway</html>"),
                              (200, gateway_page(["a", "b"], False))])
    scripted.append(server)
    pager = GraphQLPager(server.url, "gateway", backoff=0.01)
    assert [r.id for r in pager.records({"X": ["y"]})] == ["a", "b"]
    assert server.hits == 3


def test_failures_end_in_a_clear_error(scripted: list[ScriptedGraphQL]) -> None:
    down = ScriptedGraphQL([(500, "down")] * 3)
    refused = ScriptedGraphQL([(400, {"errors": [{"message": "Unknown argument"}]})])
    looping = ScriptedGraphQL([(200, gateway_page(["a"], True))] * 2)
    scripted.extend([down, refused, looping])
    with pytest.raises(GraphQLError, match="failed 3 times"):
        list(GraphQLPager(down.url, "gateway", retries=3, backoff=0.01).pages())
    assert down.hits == 3
    with pytest.raises(GraphQLError, match="refused the query.*Unknown argument"):
        list(GraphQLPager(refused.url, "gateway", retries=3, backoff=0.01).pages())
    assert refused.hits == 1
    with pytest.raises(GraphQLError, match="cursor did not move"):
        list(GraphQLPager(looping.url, "gateway").pages(after="c-a"))
