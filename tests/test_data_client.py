"""GatewayDataClient against a tiny local gateway whose answers each test scripts."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kwil_sync.arweave.data import (
    DocumentNotFound,
    DocumentTooLarge,
    GatewayDataClient,
    GatewayError,
    UnexpectedContentType,
)

Action = Callable[[BaseHTTPRequestHandler], None]


def doc_id(n: int) -> str:
    return f"doc{n:040d}"


def ok(body: bytes, content_type: str = "application/json", delay: float = 0.0) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return act


def status(code: int, retry_after: str | None = None) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        h.send_response(code)
        if retry_after is not None:
            h.send_header("Retry-After", retry_after)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return act


def hang_up(h: BaseHTTPRequestHandler) -> None:
    h.close_connection = True  # no answer at all: the client sees a dropped connection


class ScriptedGateway:
    """Serves GET /{id}; each id answers from its script, then with its default."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[Action]] = defaultdict(deque)
        self.defaults: dict[str, Action] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self.sent: dict[str, int] = defaultdict(int)
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                id = self.path.strip("/")
                with gateway.lock:
                    gateway.hits[id] += 1
                    gateway.in_flight += 1
                    gateway.max_in_flight = max(gateway.max_in_flight, gateway.in_flight)
                    script = gateway.scripts[id]
                    action = script.popleft() if script else gateway.defaults.get(id)
                try:
                    (action or status(404))(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    with gateway.lock:
                        gateway.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def endless(self, id: str, chunk: int = 1 << 16, total: int = 256 << 20) -> None:
        """Stream `total` bytes without Content-Length, counting what got out."""
        def act(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            block = b"x" * chunk
            while self.sent[id] < total:
                h.wfile.write(f"{chunk:x}\r\n".encode() + block + b"\r\n")
                self.sent[id] += chunk
            h.wfile.write(b"0\r\n\r\n")
        self.defaults[id] = act

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[ScriptedGateway]:
    gw = ScriptedGateway()
    yield gw
    gw.stop()


def test_fetch_many_is_concurrent_bounded_and_in_order(gateway: ScriptedGateway) -> None:
    ids = [doc_id(i) for i in range(24)]
    for i, id in enumerate(ids):
        gateway.defaults[id] = ok(f'{{"n": {i}}}'.encode(), delay=0.05 * (i % 3))
    with GatewayDataClient(gateway.url, concurrency=6) as client:
        results = list(client.fetch_many(ids))
    assert [r.id for r in results] == ids
    assert [r.data for r in results] == [f'{{"n": {i}}}'.encode() for i in range(24)]
    assert all(r.error is None for r in results)
    assert 2 <= gateway.max_in_flight <= 6


def test_not_found_is_reported_per_document(gateway: ScriptedGateway) -> None:
    gateway.defaults[doc_id(1)] = ok(b"one")
    with GatewayDataClient(gateway.url) as client:
        with pytest.raises(DocumentNotFound) as info:  # noqa: SIM117
            client.fetch(doc_id(2))
        results = list(client.fetch_many([doc_id(1), doc_id(2), "not-an-id"]))
    assert info.value.id == doc_id(2) and doc_id(2) in str(info.value)
    assert results[0].data == b"one"
    assert isinstance(results[1].error, DocumentNotFound) and results[1].data is None
    assert isinstance(results[2].error, ValueError)


def test_oversize_stream_is_cut_off_without_reading_it_whole(gateway: ScriptedGateway) -> None:
    total = 256 << 20
    gateway.endless(doc_id(1), total=total)
    with (
        GatewayDataClient(gateway.url, max_bytes=1 << 20) as client,
        pytest.raises(DocumentTooLarge, match="max_bytes"),
    ):
        client.fetch(doc_id(1))
    time.sleep(0.2)  # let the server notice the closed connection
    assert gateway.sent[doc_id(1)] < total // 4  # socket buffers hold a few MiB at most


def test_declared_oversize_is_refused_from_the_header(gateway: ScriptedGateway) -> None:
    gateway.defaults[doc_id(1)] = ok(b"y" * 5000)
    with (
        GatewayDataClient(gateway.url, max_bytes=4096) as client,
        pytest.raises(DocumentTooLarge, match="5000 bytes"),
    ):
        client.fetch(doc_id(1))


def test_server_errors_are_retried_then_succeed(gateway: ScriptedGateway) -> None:
    id = doc_id(1)
    gateway.scripts[id].extend([status(500), status(503, retry_after="0"), hang_up])
    gateway.defaults[id] = ok(b"finally")
    with GatewayDataClient(gateway.url, retries=4, backoff=0.01) as client:
        assert client.fetch(id) == b"finally"
    assert gateway.hits[id] == 4


def test_persistent_server_errors_end_in_gateway_error(gateway: ScriptedGateway) -> None:
    id = doc_id(1)
    gateway.defaults[id] = status(502)
    with (
        GatewayDataClient(gateway.url, retries=3, backoff=0.01) as client,
        pytest.raises(GatewayError, match="failed 3 times") as info,
    ):
        client.fetch(id)
    assert info.value.id == id and gateway.hits[id] == 3


def test_client_errors_are_not_retried(gateway: ScriptedGateway) -> None:
    id = doc_id(1)
    gateway.defaults[id] = status(403)
    with (
        GatewayDataClient(gateway.url, retries=3, backoff=0.01) as client,
        pytest.raises(GatewayError, match="HTTP 403"),
    ):
        client.fetch(id)
    assert gateway.hits[id] == 1


def test_unexpected_content_type_is_refused(gateway: ScriptedGateway) -> None:
    gateway.defaults[doc_id(1)] = ok(b"<html>", content_type="text/html; charset=utf-8")
    gateway.defaults[doc_id(2)] = ok(b"{}", content_type="application/json; charset=utf-8")
    with GatewayDataClient(gateway.url, expected_content_type="application/json") as client:
        with pytest.raises(UnexpectedContentType, match="text/html"):  # noqa: SIM117
            client.fetch(doc_id(1))
        assert client.fetch(doc_id(2)) == b"{}"
