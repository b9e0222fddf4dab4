"""Uploaders: retries and receipts against a scripted local HTTP server; direct L1 on arlocal."""

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.bundle import BUNDLE_TAGS, Bundle, encode_bundle
from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.gateway import GatewayClient
from kwil_sync.arweave.signers import ArweaveSigner, b64url
from kwil_sync.arweave.transaction import Transaction
from kwil_sync.arweave.uploaders import (
    DirectL1Uploader,
    InvalidReceipt,
    IrysUploader,
    PaymentRequired,
    RateLimited,
    TurboUploader,
    UploadError,
    verify_irys_receipt,
)
from kwil_sync.testing.procs import free_port

ETH = EthereumSigner("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
Reply = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def rsa() -> ArweaveSigner:
    """The session's one RSA-4096 wallet: signs receipts and pays for L1 bundles."""
    return ArweaveSigner.generate()


def item(text: str = "doc", tags=(("App", "kwil-sync-test"),)) -> DataItem:
    return DataItem.create(text.encode(), list(tags), ETH)


def signed_receipt(signer: ArweaveSigner, item_id: str, timestamp: int = 1_700_000_000_123
                   ) -> dict:
    receipt = {"id": item_id, "timestamp": timestamp, "version": "1.0.0",
               "public": b64url(signer.owner), "deadlineHeight": 1_500_000}
    message = deep_hash([b"Bundlr", b"1.0.0", item_id.encode(), b"1500000",
                         str(timestamp).encode()])
    return {**receipt, "signature": b64url(signer.sign(message))}


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering POSTs from a script; the last reply repeats."""

    def __init__(self) -> None:
        self.replies: list[Reply | Callable[[bytes], Reply]] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers), body))
                    reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                status, headers, payload = reply(body) if callable(reply) else reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def irys(server, sleeps, **kw) -> IrysUploader:
    return IrysUploader(server.url, "ethereum", sleep=sleeps.append, **kw)


def receipt_reply(rsa: ArweaveSigner, status: int = 200) -> Callable[[bytes], Reply]:
    def reply(body: bytes) -> Reply:
        receipt = signed_receipt(rsa, DataItem.parse(body).id)
        return status, {"Content-Type": "application/json"}, json.dumps(receipt).encode()
    return reply


def test_irys_posts_raw_item_and_verifies_receipt(server, sleeps, rsa):
    server.replies = [receipt_reply(rsa)]
    it = item()
    [receipt] = irys(server, sleeps).upload([it])
    assert receipt.id == it.id and receipt.timestamp_ms == 1_700_000_000_123
    assert not receipt.duplicate and receipt.endpoint == f"{server.url}/tx/ethereum"
    assert verify_irys_receipt(receipt.signed_receipt)
    path, headers, body = server.requests[0]
    assert path == "/tx/ethereum" and body == it.raw
    assert headers["Content-Type"] == "application/octet-stream"
    assert sleeps == []


def test_irys_refuses_tampered_foreign_and_untrusted_receipts(server, sleeps, rsa):
    it = item()
    good = signed_receipt(rsa, it.id)
    cases = {
        "not signed by the key": dict(good, timestamp=good["timestamp"] + 1),
        "names": signed_receipt(rsa, item("other").id),
        "not a JSON receipt": None,
    }
    for match, receipt in cases.items():
        payload = json.dumps(receipt).encode() if receipt else b"<html>ok</html>"
        server.replies = [(200, {}, payload)]
        with pytest.raises(InvalidReceipt, match=match):
            irys(server, sleeps).upload([it])
    server.replies = [(200, {}, json.dumps(good).encode())]
    with pytest.raises(InvalidReceipt, match="untrusted key"):
        irys(server, sleeps, trusted_keys=[b64url(b"\x01" * 512)]).upload([it])
    [ok] = irys(server, sleeps, trusted_keys=[good["public"]]).upload([it])
    assert ok.id == it.id and sleeps == []


def test_irys_201_is_a_duplicate_success(server, sleeps):
    server.replies = [(201, {}, b"Transaction already received")]
    [receipt] = irys(server, sleeps).upload([item()])
    assert receipt.duplicate and receipt.timestamp_ms is None


def test_429_honours_retry_after_then_succeeds(server, sleeps, rsa):
    server.replies = [(429, {"Retry-After": "3"}, b"slow down"),
                      (429, {"Retry-After": "1.5"}, b"slow down"), receipt_reply(rsa)]
    [receipt] = irys(server, sleeps).upload([item()])
    assert sleeps == [3.0, 1.5] and len(server.requests) == 3 and receipt.timestamp_ms


def test_429_gives_up_after_bounded_retries(server, sleeps):
    server.replies = [(429, {"Retry-After": "2"}, b"too many")]
    with pytest.raises(RateLimited, match="HTTP 429") as err:
        irys(server, sleeps, max_retries=3).upload([item()])
    assert sleeps == [2.0, 2.0, 2.0] and len(server.requests) == 4
    assert err.value.status == 429 and err.value.body == "too many"


def test_402_waits_only_when_told_how_long(server, sleeps, rsa):
    server.replies = [(402, {"Retry-After": "7"}, b"free limit"), receipt_reply(rsa)]
    assert irys(server, sleeps).upload([item()])[0].timestamp_ms
    assert sleeps == [7.0]
    server.replies = [(402, {}, b"Not enough balance")]
    server.requests.clear()
    with pytest.raises(PaymentRequired, match="fund the account") as err:
        irys(server, sleeps).upload([item()])
    assert len(server.requests) == 1 and sleeps == [7.0] and err.value.body == "Not enough balance"


def test_retry_after_beyond_the_bound_is_raised_not_slept(server, sleeps):
    server.replies = [(429, {"Retry-After": "3600"}, b"come back in an hour")]
    with pytest.raises(RateLimited) as err:
        irys(server, sleeps).upload([item()])
    assert err.value.retry_after == 3600 and sleeps == [] and len(server.requests) == 1


def test_5xx_backs_off_exponentially(server, sleeps, rsa):
    server.replies = [(500, {}, b"boom"), (503, {}, b"busy"), (502, {}, b"bad gw"),
                      receipt_reply(rsa)]
    irys(server, sleeps, backoff=0.25).upload([item()])
    assert sleeps == [0.25, 0.5, 1.0] and len(server.requests) == 4


def test_other_4xx_is_final_and_named(server, sleeps):
    server.replies = [(400, {}, b"invalid data item signature")]
    with pytest.raises(UploadError, match="HTTP 400.*invalid data item signature") as err:
        irys(server, sleeps).upload([item()])
    assert type(err.value) is UploadError and err.value.status == 400
    assert len(server.requests) == 1 and sleeps == []


def test_connection_errors_are_retried_then_raised(sleeps):
    dead = IrysUploader(f"http://127.0.0.1:{free_port()}", sleep=sleeps.append, max_retries=2,
                        backoff=0.1)
    with pytest.raises(UploadError, match="unreachable") as err:
        dead.upload([item()])
    assert sleeps == [0.1, 0.2] and err.value.status is None


def test_batch_runs_concurrently_keeps_order_and_reports_partial_success(server, sleeps, rsa):
    good = receipt_reply(rsa)

    def reply(body: bytes) -> Reply:
        bad = DataItem.parse(body).data == b"doc 3"
        return (400, {}, b"refused") if bad else good(body)

    server.replies = [reply]
    items = [item(f"doc {i}") for i in range(6)]
    with pytest.raises(UploadError, match=items[3].id) as err:
        irys(server, sleeps, concurrency=4).upload(items)
    assert [r.id for r in err.value.completed] == [it.id for i, it in enumerate(items) if i != 3]
    server.replies = [good]
    receipts = irys(server, sleeps, concurrency=4).upload(items)
    assert [r.id for r in receipts] == [it.id for it in items]


def test_turbo_posts_to_v1_tx_and_checks_the_id(server, sleeps):
    it = item()
    server.replies = [(202, {}, json.dumps({"id": it.id, "timestamp": 1700}).encode())]
    turbo = TurboUploader(server.url, sleep=sleeps.append)
    [receipt] = turbo.upload([it])
    assert receipt.id == it.id and receipt.timestamp_ms == 1700
    assert server.requests[0][0] == "/v1/tx" and server.requests[0][2] == it.raw
    server.replies = [(200, {}, json.dumps({"id": item("x").id}).encode())]
    with pytest.raises(InvalidReceipt, match="names"):
        turbo.upload([it])


# --- direct L1 bundles on arlocal -----------------------------------------------------------


def find_by_tag(arlocal, name: str, value: str) -> set[str]:
    query = 'query($t: [TagFilter!]) { transactions(tags: $t) { edges { node { id } } } }'
    body = arlocal.http.post("/graphql", json={
        "query": query, "variables": {"t": [{"name": name, "values": [value]}]}}).json()
    return {edge["node"]["id"] for edge in body["data"]["transactions"]["edges"]}


@pytest.fixture(scope="module")
def funded(arlocal, rsa) -> ArweaveSigner:
    arlocal.mint(rsa.address)
    return rsa


@pytest.mark.arlocal
@pytest.mark.parametrize("sizes", [[10], [10, 20, 30], [300_000, 5]], ids=["one", "three", "big"])
def test_direct_l1_bundle_is_indexed_and_served(arlocal, funded, sizes):
    marker = uuid.uuid4().hex
    items = [DataItem.create(bytes([i + 1]) * n, [("Run", marker), ("Content-Type", "text/plain")],
                             ETH) for i, n in enumerate(sizes)]
    receipts = DirectL1Uploader(arlocal.url, funded).upload(items)
    assert [r.id for r in receipts] == [it.id for it in items]
    [tx_id] = {r.bundle_tx_id for r in receipts}
    arlocal.mine()
    assert find_by_tag(arlocal, "Run", marker) == {it.id for it in items}
    for it in items:
        served = arlocal.http.get(f"/{it.id}")
        assert served.status_code == 200 and served.content == it.data
    with GatewayClient(arlocal.url) as gw:
        assert gw.tx_status(tx_id).state == "confirmed"


@pytest.mark.arlocal
def test_direct_l1_splits_by_max_bundle_bytes(arlocal, funded):
    items = [item(f"split {i}" * 50) for i in range(5)]
    limit = 32 + 2 * (64 + len(items[0].raw))  # room for two items per bundle
    receipts = DirectL1Uploader(arlocal.url, funded, max_bundle_bytes=limit).upload(items)
    tx_ids = [r.bundle_tx_id for r in receipts]
    assert len(set(tx_ids)) == 3 and tx_ids[0] == tx_ids[1] != tx_ids[2]


@pytest.mark.arlocal
def test_tampered_bundle_is_never_indexed(arlocal, funded):
    marker = uuid.uuid4().hex
    items = [item(f"honest {i}", [("Run", marker)]) for i in range(2)]
    raw = bytearray(encode_bundle(items))
    raw[-1] ^= 0x01  # a byte of the last item's data; the L1 transaction is signed over this
    assert not Bundle.parse(bytes(raw)).verify()
    with GatewayClient(arlocal.url) as gw:
        tx = Transaction.create(bytes(raw), BUNDLE_TAGS, funded, last_tx=gw.tx_anchor(),
                                reward=gw.price(len(raw)))
        assert tx.verify()
        gw.post_transaction(tx)  # a valid L1 transaction: the gateway accepts it
    arlocal.mine()
    assert find_by_tag(arlocal, "Run", marker) == set()
    for it in items:
        assert arlocal.http.get(f"/{it.id}").status_code == 404


@pytest.mark.arlocal
def test_direct_l1_unfunded_wallet_and_dead_gateway(arlocal, sleeps):
    poor = ArweaveSigner.generate(2048)
    with pytest.raises(PaymentRequired, match="mint first"):
        DirectL1Uploader(arlocal.url, poor, sleep=sleeps.append).upload([item()])
    assert sleeps == []
    dead = DirectL1Uploader(f"http://127.0.0.1:{free_port()}", poor, max_retries=2,
                            backoff=0.1, sleep=sleeps.append)
    with pytest.raises(UploadError, match="unreachable"):
        dead.upload([item()])
    assert sleeps == [0.1, 0.2]
