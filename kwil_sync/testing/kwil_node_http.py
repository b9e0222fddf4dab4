"""The HTTP side of the kwild stand-in: `POST /rpc/v1`, kwild's status codes, faults.

kwild answers every JSON-RPC request with HTTP 200 except a few codes (unknown method
404, bad request 400, internal 500) and closes the connection after each answer; so
does this. `HttpFront` opens and closes the port, which is how "down" is modelled.

A thread per connection (stdlib `ThreadingHTTPServer`): measured here against an
asyncio loop, it answered the pipeline 1.5 to 2 times faster on a busy machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kwil_sync.testing.kwil_node_reads import RpcFault

__all__ = ["Faults", "HttpFront"]

Dispatch = Callable[[str, Any], Any]

_HTTP_STATUS = {-32601: 404, -32602: 400, -32600: 400, -32700: 400, -32603: 500}


class Faults:
    """What the stand-in does wrong on purpose, switched at runtime."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.rejections: list[RpcFault] = []
        self.lock = threading.Lock()

    def take_rejection(self) -> RpcFault | None:
        with self.lock:
            return self.rejections.pop(0) if self.rejections else None


def _handler(dispatch: Dispatch, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") != "/rpc/v1":
                return self._send(404, {"error": "not found"})
            if faults.delay:
                time.sleep(faults.delay)
            try:
                request = json.loads(body)
                rid, method, params = request.get("id"), request["method"], request.get("params")
            except (ValueError, KeyError, AttributeError):
                return self._send(400, {"jsonrpc": "2.0", "id": -1, "error": {
                    "code": -32700, "message": "invalid request"}})
            try:
                result = dispatch(str(method), params if params is not None else {})
            except RpcFault as fault:
                error: dict[str, Any] = {"code": fault.code, "message": fault.message}
                if fault.data is not None:
                    error["data"] = fault.data
                return self._send(_HTTP_STATUS.get(fault.code, 200),
                                  {"jsonrpc": "2.0", "id": rid, "error": error})
            except Exception as exc:  # a request the stand-in cannot handle: say so, as kwild
                return self._send(500, {"jsonrpc": "2.0", "id": rid, "error": {
                    "code": -32603, "message": f"internal error: {type(exc).__name__}: {exc}"}})
            self._send(200, {"jsonrpc": "2.0", "id": rid, "result": result})

        def _send(self, status: int, answer: dict[str, Any]) -> None:
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Connection", "close")  # as kwild does after every answer
            self.end_headers()
            self.wfile.write(raw)
            self.close_connection = True

    return Handler


class HttpFront:
    """A threaded HTTP server on 127.0.0.1:`port` that can go down and come back."""

    def __init__(self, port: int, dispatch: Dispatch, faults: Faults) -> None:
        self.port, self._dispatch, self._faults = port, dispatch, faults
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def up(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            server = ThreadingHTTPServer(("127.0.0.1", self.port),
                                         _handler(self._dispatch, self._faults))
            server.daemon_threads = True
            self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name=f"kwil-standin-http-{self.port}").start()

    def down(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
