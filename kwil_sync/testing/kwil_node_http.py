"""The HTTP side of the kwild stand-in: `POST /rpc/v1`, kwild's status codes, faults.

kwild answers every JSON-RPC request with HTTP 200 except a few codes (unknown method
404, bad request 400, internal 500) and closes the connection after each answer; so
does this. `HttpFront` serves on an asyncio loop in its own thread (no thread per
connection); requests that wait (commit-mode broadcasts, `standin.*` controls) run on
a worker pool. Opening and closing the port is how "down" is modelled. (Measured on
2 shared cores, the pipeline ran 1.2 to 1.6 times faster against this than against
stdlib `ThreadingHTTPServer`, except under heavy load from other processes, where a
single busy thread gets a smaller share of the CPU.)

Only what JSON-RPC clients send is understood: a request line, headers (with
`Expect: 100-continue`), and a body of `Content-Length` bytes (no chunked bodies, no
keep-alive).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kwil_sync.testing.kwil_node_reads import RpcFault

__all__ = ["Faults", "HttpFront"]

Dispatch = Callable[[str, Any], Any]
Blocking = Callable[[str, Any], bool]

_HTTP_STATUS = {-32601: 404, -32602: 400, -32600: 400, -32700: 400, -32603: 500}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error"}
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


class Faults:
    """What the stand-in does wrong on purpose, switched at runtime."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.rejections: list[RpcFault] = []
        self.lock = threading.Lock()

    def take_rejection(self) -> RpcFault | None:
        with self.lock:
            return self.rejections.pop(0) if self.rejections else None


def _response(status: int, answer: dict[str, Any]) -> bytes:
    raw = json.dumps(answer).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
            "Connection: close\r\n\r\n")  # kwild closes after every answer
    return head.encode() + raw


class HttpFront:
    """The stand-in's port on 127.0.0.1: it can go down and come back.

    Args:
        port: The TCP port.
        dispatch: `(method, params) -> result`, raising `RpcFault` for error answers.
        blocking: Whether a request may wait (it then runs on the worker pool).
        faults: The delay to add to every answer.
    """

    def __init__(self, port: int, dispatch: Dispatch, blocking: Blocking,
                 faults: Faults) -> None:
        self.port, self._dispatch, self._blocking, self._faults = port, dispatch, blocking, faults
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"kwil-standin-http-{port}")
        self._thread.start()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kwil-standin-wait")
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def every(self, interval: Callable[[], float], work: Callable[[], Any]) -> None:
        """Run `work` on the loop every `interval()` seconds while that is above 0.

        Blocks are made on the loop's own thread, between requests: no second thread
        fights the requests for the GIL, and a block is never half-seen.
        """
        def tick() -> None:
            if interval() > 0:
                work()
                self._loop.call_later(interval(), tick)

        if interval() > 0:
            self._loop.call_soon_threadsafe(self._loop.call_later, interval(), tick)

    def up(self) -> None:
        with self._lock:
            if self._server is None:
                self._server = self._run(asyncio.start_server(
                    self._serve, "127.0.0.1", self.port, backlog=512))

    def down(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            self._run(self._close(server))

    def close(self) -> None:
        """Go down for good: end open requests, stop the loop and the workers."""
        self.down()
        self._run(self._cancel_requests())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    async def _cancel_requests() -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @staticmethod
    async def _close(server: asyncio.Server) -> None:
        server.close()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, answer = await self._answer(reader, writer)
            if self._faults.delay:
                await asyncio.sleep(self._faults.delay)
            writer.write(_response(status, answer))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> tuple[int, dict[str, Any]]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return 413, {"error": "headers too large"}
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.rsplit(" ", 1)[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        if path.split("?")[0].rstrip("/") != "/rpc/v1":
            return 404, {"error": "not found"}
        if method != "POST":
            return 405, {"error": "POST required for JSON-RPC"}
        if "content-length" not in headers:
            return 411, {"error": "a Content-Length is required"}
        length = int(headers["content-length"])
        if length > _MAX_BODY:
            return 413, {"error": "body too large"}
        if headers.get("expect", "").lower() == "100-continue":  # curl, for bodies over 1 KiB
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await self._rpc(await reader.readexactly(length))

    async def _rpc(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(body)
            rid, method, params = request.get("id"), str(request["method"]), request.get("params")
        except (ValueError, KeyError, AttributeError, TypeError):
            return 400, {"jsonrpc": "2.0", "id": -1,
                         "error": {"code": -32700, "message": "invalid request"}}
        params = {} if params is None else params
        try:
            if self._blocking(method, params):
                result = await self._loop.run_in_executor(self._pool, self._dispatch, method,
                                                          params)
            else:
                result = self._dispatch(method, params)
        except RpcFault as fault:
            error: dict[str, Any] = {"code": fault.code, "message": fault.message}
            if fault.data is not None:
                error["data"] = fault.data
            return _HTTP_STATUS.get(fault.code, 200), {"jsonrpc": "2.0", "id": rid,
                                                       "error": error}
        except Exception as exc:  # a request the stand-in cannot handle: say so, as kwild
            return 500, {"jsonrpc": "2.0", "id": rid, "error": {
                "code": -32603, "message": f"internal error: {type(exc).__name__}: {exc}"}}
        return 200, {"jsonrpc": "2.0", "id": rid, "result": result}
