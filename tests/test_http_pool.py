"""HTTPPool against local HTTP/1.1 servers that count the connections they accept."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kwil_sync.http_pool import HTTPPool, TooManyRedirects, TransportFailure

Answer = Callable[[BaseHTTPRequestHandler], None]


def send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"",
         headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


class CountingServer:
    """Answers every request with `answer`; counts connections and keeps request lines."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.connections, self.lines = answer, 0, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def _any(self) -> None:
                server.lines.append(self.requestline)
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length)
                server.answer(self)

            do_GET = do_POST = do_HEAD = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], CountingServer]]:
    servers: list[CountingServer] = []

    def start(answer: Answer) -> CountingServer:
        servers.append(CountingServer(answer))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def test_sequential_requests_share_one_connection(serve) -> None:
    server = serve(lambda h: send(h, 200, h.path.encode()))
    with HTTPPool() as pool:
        for n in range(20):
            with pool.request("GET", f"{server.url}/doc{n}") as reply:
                assert (reply.status, reply.read()) == (200, f"/doc{n}".encode())
        with pool.request("POST", f"{server.url}/tx", body=b"item") as reply:
            assert reply.read() == b"/tx"
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(serve) -> None:
    def answer_then_hang_up(h: BaseHTTPRequestHandler) -> None:
        send(h, 200, b"ok")
        h.close_connection = True  # closes without saying so: the client pools it
    server = serve(answer_then_hang_up)
    with HTTPPool() as pool:
        for _ in range(3):
            with pool.request("GET", f"{server.url}/a") as reply:
                assert reply.read() == b"ok"
    assert server.connections == 3


def test_a_reply_not_read_to_its_end_closes_its_connection(serve) -> None:
    server = serve(lambda h: send(h, 200, b"x" * 100_000))
    with HTTPPool() as pool:
        with pool.request("GET", f"{server.url}/big") as reply:
            assert len(next(reply.iter_chunks(1024))) == 1024
            assert not reply.finished
        with pool.request("GET", f"{server.url}/big") as reply:
            assert len(reply.read()) == 100_000
    assert server.connections == 2


def test_redirects_are_followed_across_origins_and_bounded(serve) -> None:
    target = serve(lambda h: send(h, 200, b"sandboxed " + h.path.encode()))
    hops = serve(lambda h: send(h, 302, headers={
        "Location": "/next" if h.path == "/first" else f"{target.url}/doc"}))
    with HTTPPool() as pool:
        with pool.request("GET", f"{hops.url}/first") as reply:
            assert (reply.status, reply.read()) == (200, b"sandboxed /doc")
            assert reply.url == f"{target.url}/doc"
        looping = serve(lambda h: send(h, 307, headers={"Location": h.path}))
        with pytest.raises(TooManyRedirects), pool.request("GET", f"{looping.url}/x"):
            pass
        with pool.request("POST", f"{hops.url}/first", body=b"") as reply:
            assert reply.status == 302  # only GET and HEAD follow


def test_no_answer_and_a_body_cut_short_are_transport_failures(serve) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/x"
    with HTTPPool(timeout=2) as pool:
        with pytest.raises(TransportFailure, match="Connection"), pool.request("GET", refused):
            pass

        def short(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.write(b"only ten b")
            h.close_connection = True
        server = serve(short)
        with pool.request("GET", f"{server.url}/x") as reply, \
                pytest.raises(TransportFailure, match="IncompleteRead"):
            reply.read()


def test_http_proxy_from_the_environment_gets_the_absolute_form(serve, monkeypatch) -> None:
    proxy = serve(lambda h: send(h, 200, b"via proxy"))
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with HTTPPool() as pool, pool.request("GET", "http://gateway.invalid:1984/doc") as reply:
        assert reply.read() == b"via proxy"
    assert proxy.lines == ["GET http://gateway.invalid:1984/doc HTTP/1.1"]
