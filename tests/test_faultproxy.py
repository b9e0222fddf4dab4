"""FaultProxy: each fault at its seeded rate against a tiny local upstream, runtime switches and
bounds, the command line, and this project's clients recovering through it (arlocal, the
bundler stand-in)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.bundle import BUNDLE_TAGS, encode_bundle
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.gateway import GatewayClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.signers import ArweaveSigner, b64url
from kwil_sync.arweave.transaction import Transaction
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.faultproxy import FaultPlan, FaultProxy, FaultRates
from kwil_sync.testing.procs import free_port, stop_process, wait_until

SIGNER = EthereumSigner("7c" * 32)
BIG = bytes(range(256)) * 8192  # 2 MiB, several relay blocks


class Upstream:
    """A tiny HTTP service on 127.0.0.1 that records what reaches it.

    `GET /doc/N` answers N bytes with a Content-Length, `GET /chunked` answers in chunks
    without one, `POST /echo` answers the request body.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self, size: int) -> None:
                with outer.lock:
                    outer.seen.append((self.command, self.path, size))

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._record(0)
                if self.path == "/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"alpha-", b"beta-", b"gamma"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                size = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/doc/") else 2
                self._send(BIG[:size] if self.path.startswith("/doc/") else b"ok")

            def do_HEAD(self) -> None:  # noqa: N802
                self._record(0)
                self.send_response(200)
                self.send_header("Content-Length", "1234")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._record(len(body))
                self._send(body)

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Upstream", "yes")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


def outcome(client: httpx.Client, url: str) -> str:
    """What one GET looked like from the client's side."""
    try:
        response = client.get(url)
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        return "truncated" if "incomplete" in str(exc) or "complete message" in str(exc) \
            else "dropped"
    if response.status_code == 429:
        return f"429:{response.headers['retry-after']}"
    return str(response.status_code)


MIXED = FaultRates(latency=0.1, server_error=0.1, rate_limit=0.1, reset=0.1, truncate=0.1,
                   latency_seconds=0.002, retry_after_seconds=3)


def test_each_fault_happens_as_the_seeded_plan_says(upstream: Upstream) -> None:
    n, seed = 400, 11
    replay = FaultPlan(MIXED, seed)
    plan = [replay.next() for _ in range(n)]
    before = len(upstream.seen)
    with FaultProxy.start(upstream.url, MIXED, seed) as proxy, httpx.Client() as client:
        seen = [outcome(client, f"{proxy.url}/doc/1000") for _ in range(n)]
        stats = proxy.stats()
    expected = {None: "200", "server_error": "5xx", "rate_limit": "429:3", "reset": "dropped",
                "truncate": "truncated"}
    for i, (decision, got) in enumerate(zip(plan, seen, strict=True)):
        want = expected[decision.fault]
        assert (got[0] == "5" if want == "5xx" else got == want), f"request {i}: {got} != {want}"
        if decision.fault == "server_error":
            assert got == str(decision.status)
    planned = Counter(d.fault for d in plan)
    assert stats.requests == n and stats.passed == planned[None]
    for kind in ("server_error", "rate_limit", "reset", "truncate"):
        assert stats.faults[kind] == planned[kind]
        assert 0.06 <= planned[kind] / n <= 0.14, kind  # the seed gives about the 10 % asked
    assert stats.faults["latency"] == sum(1 for d in plan if d.delay)
    assert 0.06 <= stats.faults["latency"] / n <= 0.14
    assert Counter(s for d, s in zip(plan, seen, strict=True) if d.fault == "server_error"
                   ).keys() <= {"500", "502", "503", "504"}
    # 5xx, 429 and resets never reach the upstream; truncations do (the answer is lost later).
    assert len(upstream.seen) - before == planned[None] + planned["truncate"]


def test_same_seed_same_run_other_seed_other_run(upstream: Upstream) -> None:
    runs = []
    for seed in (5, 5, 6):
        with FaultProxy.start(upstream.url, MIXED, seed) as proxy, httpx.Client() as client:
            runs.append([outcome(client, f"{proxy.url}/doc/10") for _ in range(60)])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_bodies_and_headers_stream_through_unchanged(upstream: Upstream) -> None:
    with FaultProxy.start(upstream.url + "/", seed=1) as proxy, httpx.Client() as client:
        echoed = client.post(f"{proxy.url}/echo", content=BIG)
        assert echoed.content == BIG and echoed.headers["x-upstream"] == "yes"
        assert echoed.headers["connection"] == "close"
        streamed = client.post(f"{proxy.url}/echo", content=iter([b"a" * 70_000, b"b" * 10]))
        assert streamed.content == b"a" * 70_000 + b"b" * 10  # a chunked request body
        assert client.get(f"{proxy.url}/doc/{len(BIG)}").content == BIG
        assert client.get(f"{proxy.url}/chunked").content == b"alpha-beta-gamma"
        head = client.head(f"{proxy.url}/doc/5")
        assert head.status_code == 200 and head.headers["content-length"] == "1234"
        assert proxy.stats().passed == 5 and proxy.stats().injected == 0


def test_truncation_of_an_answer_without_length_still_breaks_it(upstream: Upstream) -> None:
    with FaultProxy.start(upstream.url, {"truncate": 1.0}) as proxy, httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{proxy.url}/chunked")
        assert proxy.stats().faults == {"truncate": 1}


def test_runtime_switches_rates_and_down(upstream: Upstream) -> None:
    with FaultProxy.start(upstream.url) as proxy, httpx.Client() as client:
        assert outcome(client, f"{proxy.url}/x") == "200"
        proxy.set_rates(server_error=1.0, server_error_statuses=(503,))
        assert outcome(client, f"{proxy.url}/x") == "503"
        proxy.set_rates(FaultRates(rate_limit=1.0, retry_after_seconds=0))
        assert outcome(client, f"{proxy.url}/x") == "429:0"
        proxy.set_rates(FaultRates())
        proxy.down(600)
        assert outcome(client, f"{proxy.url}/x") == "dropped"
        proxy.down(600, status=503)
        assert outcome(client, f"{proxy.url}/x") == "503"
        proxy.up()
        assert outcome(client, f"{proxy.url}/x") == "200"
        stats = proxy.stats()
    assert stats.faults == {"server_error": 1, "rate_limit": 1, "down": 2}
    assert stats.requests == 6 and stats.passed == 2
    with pytest.raises(ValueError, match="at most 1"):
        FaultRates(reset=0.6, truncate=0.6)


def test_answers_lost_after_the_upstream_did_the_work(upstream: Upstream) -> None:
    rates = FaultRates(reset=1.0, reset_after_upstream=True)
    with FaultProxy.start(upstream.url, rates) as proxy, httpx.Client() as client:
        before = len(upstream.seen)
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            client.post(f"{proxy.url}/echo", content=b"side effect")
        assert upstream.seen[before:] == [("POST", "/echo", 11)]


def test_bounds_make_it_stop_by_itself(upstream: Upstream) -> None:
    proxy = FaultProxy.start(upstream.url, max_requests=2)
    with httpx.Client() as client:
        assert [outcome(client, f"{proxy.url}/x") for _ in range(3)] == ["200", "200", "dropped"]
    wait_until(lambda: not proxy.running, timeout=10, what="the proxy stopping after 2 requests")
    assert proxy.stats().over_limit == 1
    proxy = FaultProxy.start(upstream.url, max_lifetime=0.2)
    wait_until(lambda: not proxy.running, timeout=10, what="the proxy stopping at its lifetime")
    with pytest.raises(httpx.ConnectError):
        httpx.get(proxy.url)


def test_unreachable_upstream_is_a_502_and_only_loopback_is_relayed() -> None:
    with FaultProxy.start(f"http://127.0.0.1:{free_port()}") as proxy:
        response = httpx.get(f"{proxy.url}/x")
        assert response.status_code == 502 and "is it running?" in response.text
        assert proxy.stats().upstream_errors == 1
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy.start("http://192.0.2.1:80")


def test_command_line_serves_steers_and_reports(upstream: Upstream) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kwil_sync.testing.faultproxy", "--upstream", upstream.url,
         "--control", "--seed", "3", "--max-lifetime", "120"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        url = started["url"]
        assert httpx.get(f"{url}/x").status_code == 200
        steer = httpx.post(f"{url}/_faultproxy/rates", json={"server_error": 1.0})
        assert steer.status_code == 200
        assert httpx.get(f"{url}/x").status_code >= 500
        assert httpx.post(f"{url}/_faultproxy/rates", json={"nope": 1}).status_code == 400
        assert json.loads(httpx.get(f"{url}/_faultproxy/stats").text)["requests"] == 2
    finally:
        stop_process(process)  # type: ignore[arg-type]
    assert process.stdout is not None
    final = json.loads(process.stdout.read().strip().splitlines()[-1])
    assert final["requests"] == 2 and final["faults"] == {"server_error": 1}


# Clients of this project, recovering through 20 % faults.


@pytest.fixture(scope="module")
def bundler_key() -> ArweaveSigner:
    """The stand-ins' receipt key: 2048 bits is quicker to make, and these stand-ins only
    sign receipts (no arlocal, so no L1 bundles needing a 4096-bit owner)."""
    return ArweaveSigner.generate(2048)

FAULTY = FaultRates(latency=0.1, server_error=0.05, rate_limit=0.05, reset=0.05, truncate=0.05,
                    latency_seconds=0.005, retry_after_seconds=0)


@pytest.fixture(scope="module")
def documents(arlocal: Arlocal) -> tuple[str, list[DataItem]]:
    """120 JSON documents of one run, bundled into arlocal and mined: (run tag, items)."""
    run = uuid.uuid4().hex
    items = [DataItem.create(json.dumps({"n": i, "pad": "x" * (i * 37)}).encode(),
                             [("Test-Run", run), ("Content-Type", "application/json"),
                              ("N", str(i))], SIGNER) for i in range(120)]
    wallet = ArweaveSigner.generate()
    arlocal.mint(wallet.address)
    data = encode_bundle(items)
    with GatewayClient(arlocal.url) as gw:
        gw.post_transaction(Transaction.create(data, list(BUNDLE_TAGS), wallet,
                                               last_tx=gw.tx_anchor(),
                                               reward=gw.price(len(data))))
    arlocal.mine()
    return run, items


def test_gateway_data_client_loses_nothing_through_faults(
        arlocal: Arlocal, documents: tuple[str, list[DataItem]]) -> None:
    _, items = documents
    with FaultProxy.start(arlocal.url, FAULTY, seed=21) as proxy, \
            GatewayDataClient(proxy.url, concurrency=8, retries=12, backoff=0.01) as docs:
        results = list(docs.fetch_many(item.id for item in items))
        stats = proxy.stats()
    assert [r.error for r in results] == [None] * len(items)
    assert [r.data for r in results] == [item.data for item in items]
    assert stats.injected >= 10 and set(stats.faults) >= {"server_error", "reset", "truncate"}
    assert stats.requests == len(items) + stats.injected  # one retry per fault, no more


def test_graphql_pager_pages_without_duplicates_or_gaps(
        arlocal: Arlocal, documents: tuple[str, list[DataItem]]) -> None:
    run, items = documents
    direct = GraphQLPager(arlocal.url + "/graphql", "gateway", page_size=10)
    baseline = [r.id for r in direct.records({"Test-Run": [run]})]
    rates = FaultRates(server_error=0.1, rate_limit=0.05, reset=0.1, truncate=0.1,
                       retry_after_seconds=0)
    with FaultProxy.start(arlocal.url, rates, seed=4) as proxy:
        pager = GraphQLPager(proxy.url + "/graphql", "gateway", page_size=10, retries=12,
                             backoff=0.01)
        through = [r.id for r in pager.records({"Test-Run": [run]})]
        stats = proxy.stats()
    assert sorted(baseline) == sorted(item.id for item in items)
    assert through == baseline  # same records, same order: nothing doubled or skipped
    assert stats.injected >= 3 and stats.passed >= len(items) // 10


def test_irys_uploader_honours_retry_after_through_the_proxy(bundler_key: ArweaveSigner
                                                            ) -> None:
    items = [DataItem.create(f"upload {i}".encode(), [("N", str(i))], SIGNER)
             for i in range(30)]
    sleeps: list[float] = []
    rates = FaultRates(rate_limit=0.3, retry_after_seconds=7)
    with BundlerStandIn.start(bundle_interval=0, signer=bundler_key) as standin, \
            FaultProxy.start(standin.url, rates, seed=9) as proxy:
        uploader = IrysUploader(proxy.url, max_retries=8, concurrency=1, sleep=sleeps.append,
                                trusted_keys=[b64url(standin.signer.owner)])
        receipts = uploader.upload(items)
        uploader.close()
        stats = proxy.stats()
        stored = standin.store.count_unbundled()
    assert [r.id for r in receipts] == [item.id for item in items]
    assert all(r.signed_receipt and not r.duplicate for r in receipts)
    assert stats.faults["rate_limit"] >= 5 and sleeps == [7.0] * stats.faults["rate_limit"]
    assert stored == len(items)


def test_irys_uploader_recovers_lost_answers_without_doubling(bundler_key: ArweaveSigner
                                                              ) -> None:
    items = [DataItem.create(f"lost {i}".encode(), [("N", str(i))], SIGNER) for i in range(20)]
    rates = FaultRates(reset=0.3, reset_after_upstream=True, truncate=0.1)
    with BundlerStandIn.start(bundle_interval=0, signer=bundler_key) as standin, \
            FaultProxy.start(standin.url, rates, seed=2) as proxy:
        uploader = IrysUploader(proxy.url, max_retries=8, concurrency=4, sleep=lambda _: None)
        receipts = uploader.upload(items)
        uploader.close()
        stats = proxy.stats()
        stored = standin.store.count_unbundled()
    assert [r.id for r in receipts] == [item.id for item in items]
    assert stored == len(items)  # each item once, although some were posted twice
    lost = stats.faults["reset"] + stats.faults.get("truncate", 0)
    assert lost >= 3 and sum(r.duplicate for r in receipts) >= 1
