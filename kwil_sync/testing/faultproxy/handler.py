"""The proxy's request handler: refuse, fault, or relay one request to the upstream."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import io
import json
import socket
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from kwil_sync.testing.faultproxy.proxy import FaultProxy

__all__ = ["CONTROL_PREFIX", "ProxyServer"]

# Not relayed: they describe one hop. `expect` too: this hop already answered 100-continue.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-connection",
                         "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
                         "expect"})
CONTROL_PREFIX = "/_faultproxy/"
_BLOCK = 64 << 10


class _BodyReader:
    """At most `remaining` bytes of the client's request body, read as the upstream asks."""

    def __init__(self, stream: io.BufferedIOBase, length: int) -> None:
        self._stream, self.remaining = stream, length

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self._stream.read(size) if size else b""
        self.remaining -= len(data)
        return data

    def drain(self) -> None:
        while self.read(_BLOCK):
            pass


class ProxyServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 whose handler serves `proxy`."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, proxy: FaultProxy, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.proxy = proxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-answer is routine here, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _proxy_request(self) -> None:
        proxy = self.server.proxy
        if proxy.control and self.path.startswith(CONTROL_PREFIX):
            return self._control(proxy)
        verdict = proxy.admit()
        body = self._body()
        if isinstance(verdict, int):  # refused while down: an answer, or a reset
            body.drain()
            return self._answer(verdict, "the fault proxy is down on purpose")
        if verdict is None:
            return self._reset()
        if verdict.delay and proxy.sleep(verdict.delay):
            return self._reset()  # stopping
        fault = verdict.fault
        if fault == "server_error" or fault == "rate_limit":
            body.drain()
            proxy.count(fault)
            if fault == "server_error":
                return self._answer(verdict.status, "fault injected: server error")
            retry_after = str(proxy.rates.retry_after_seconds)
            return self._answer(429, "fault injected: rate limited", retry_after)
        if fault == "reset" and not proxy.rates.reset_after_upstream:
            proxy.count("reset")
            return self._reset()
        self._forward(proxy, body, fault)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy_request

    def _body(self) -> _BodyReader:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = _read_chunked(self.rfile)  # rare for our clients: buffered
            del self.headers["Transfer-Encoding"]
            self.headers["Content-Length"] = str(len(data))
            return _BodyReader(io.BytesIO(data), len(data))
        return _BodyReader(self.rfile, int(self.headers.get("Content-Length") or 0))

    def _forward(self, proxy: FaultProxy, body: _BodyReader, fault: str | None) -> None:
        connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                                timeout=proxy.upstream_timeout)
        try:
            connection.putrequest(self.command, proxy.upstream_path + self.path,
                                  skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "host":
                    connection.putheader(name, value)
            connection.putheader("Host", proxy.upstream_netloc)
            connection.putheader("Connection", "close")
            connection.endheaders()
            while block := body.read(_BLOCK):  # streamed as it arrives
                connection.send(block)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            proxy.count("upstream_errors")
            return self._answer(502, f"fault proxy: upstream {proxy.upstream_netloc} failed: "
                                     f"{exc!r}; is it running?")
        try:
            if fault == "reset":
                response.read()
                proxy.count("reset")
                self._reset()
            else:
                self._relay(proxy, response, truncate=fault == "truncate")
        finally:
            response.close()
            connection.close()

    def _relay(self, proxy: FaultProxy, response: http.client.HTTPResponse, *,
               truncate: bool) -> None:
        """Send the upstream's answer; with `truncate`, half its body (if it has one)."""
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        declared = response.getheader("Content-Length")
        body: bytes | None = None
        if truncate and self.command != "HEAD" and declared is None:
            body = response.read()  # the length must be known to be broken
            headers.append(("Content-Length", str(len(body))))
        length = len(body) if body is not None else int(declared or 0)
        truncate = truncate and self.command != "HEAD" and length > 0
        proxy.count("truncate" if truncate else "passed")  # before the client can see it
        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = length // 2 if truncate else None
        if body is not None:
            self.wfile.write(body[:limit])
            return
        sent = 0
        while limit is None or sent < limit:
            block = response.read(_BLOCK if limit is None else min(_BLOCK, limit - sent))
            if not block:
                break
            self.wfile.write(block)
            sent += len(block)

    def _answer(self, status: int, message: str, retry_after: str | None = None) -> None:
        raw = message.encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _reset(self) -> None:
        """Close without answering; linger 0 makes the close a TCP reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        self.connection.close()

    def _control(self, proxy: FaultProxy) -> None:
        action = urlsplit(self.path).path[len(CONTROL_PREFIX):]
        data = self._body().read()
        try:
            if action == "rates" and self.command == "POST":
                proxy.set_rates(**json.loads(data or b"{}"))
            elif action == "down" and self.command == "POST":
                query = parse_qs(urlsplit(self.path).query)
                proxy.down(float(query.get("seconds", ["1"])[0]))
            elif action != "stats":
                return self._answer(404, f"unknown control {action!r}: stats, rates, down")
        except (TypeError, ValueError) as exc:
            return self._answer(400, f"bad control request: {exc}")
        self._answer(200, json.dumps(dataclasses.asdict(proxy.stats())))


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    data = bytearray()
    while size := int(stream.readline().split(b";")[0].strip() or b"0", 16):
        data += stream.read(size)
        stream.readline()
    while stream.readline().strip():  # trailers
        pass
    return bytes(data)
