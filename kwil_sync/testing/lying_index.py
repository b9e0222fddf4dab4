"""A proxy that makes an honest gateway lie, on 127.0.0.1, for tests of several indexes.

It relays every request to one loopback upstream (arlocal, the bundler stand-in) and
rewrites two kinds of answer on the way back:

- GraphQL (`POST /graphql`, a JSON answer): `edges` of every `transactions` connection
  pass through `rewrite_edges(edges) -> edges`: drop items, reorder them, strip fields;
- data (`GET /{43-character id}`): the body passes through `rewrite_data(id, body)`.

An `answer(method, path)` hook may answer a request itself, with its own headers (to
play a gateway feature arlocal lacks, such as ar.io's offset headers). Helpers build
the usual lies: `drop_ids`, `order_height_by_id` (as an ar.io gateway
orders one height), `strip_fields` (an index that lists no owner key or signature).

Example:
    ```python
    with LyingIndex.start(arlocal.url, rewrite_edges=drop_ids(lost)) as liar:
        GraphQLPager(f"{liar.url}/graphql", "gateway")
    ```
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

__all__ = ["Answer", "Edges", "LyingIndex", "drop_ids", "order_height_by_id", "strip_fields"]

Edges = list[dict[str, Any]]
Answer = tuple[int, dict[str, str], bytes]
_DATA = re.compile(r"^/([A-Za-z0-9_-]{43})/?$")


def drop_ids(ids: Iterable[str]) -> Callable[[Edges], Edges]:
    """Leave out these items, wherever they would be listed."""
    lost = set(ids)
    return lambda edges: [e for e in edges if e["node"]["id"] not in lost]


def order_height_by_id(edges: Edges) -> Edges:
    """Within each block height, list items by id (ar.io's order), not by arrival."""
    def height(edge: dict[str, Any]) -> float:
        block = edge["node"].get("block")
        return float("inf") if not block else float(block["height"])

    return sorted(edges, key=lambda e: (height(e), e["node"]["id"]))


def strip_fields(*names: str) -> Callable[[Edges], Edges]:
    """List every item without these node fields (None), e.g. "owner", "signature"."""
    def strip(edges: Edges) -> Edges:
        for edge in edges:
            for name in names:
                if name == "owner" and isinstance(edge["node"].get("owner"), dict):
                    edge["node"]["owner"]["key"] = None
                elif name in edge["node"]:
                    edge["node"][name] = None
        return edges

    return strip


class LyingIndex:
    """The running proxy; make one with `start`. See the module docstring."""

    def __init__(self, upstream: str, port: int, rewrite_edges: Callable[[Edges], Edges] | None,
                 rewrite_data: Callable[[str, bytes], bytes] | None,
                 answer: Callable[[str, str], Answer | None] | None) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite_edges, self.rewrite_data, self.answer = rewrite_edges, rewrite_data, answer
        self.http = httpx.Client(timeout=60)
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="lying-index")
        self._thread.start()

    @classmethod
    def start(cls, upstream: str, *, port: int = 0,
              rewrite_edges: Callable[[Edges], Edges] | None = None,
              rewrite_data: Callable[[str, bytes], bytes] | None = None,
              answer: Callable[[str, str], Answer | None] | None = None) -> LyingIndex:
        """Serve on 127.0.0.1 (`port`, or a free one) in front of `upstream`."""
        if not upstream.startswith(("http://127.0.0.1", "http://localhost")):
            raise ValueError(f"upstream {upstream!r} must be a loopback http:// URL")
        return cls(upstream, port, rewrite_edges, rewrite_data, answer)

    def relay(self, method: str, path: str, body: bytes,
              headers: dict[str, str]) -> tuple[int, bytes, str]:
        """Send one request upstream and rewrite its answer: (status, body, type)."""
        self.requests += 1
        answer = self.http.request(method, self.upstream + path, content=body or None,
                                   headers=headers)
        content, kind = answer.content, answer.headers.get("content-type", "")
        if path.split("?")[0] == "/graphql" and self.rewrite_edges and answer.status_code == 200:
            data = json.loads(content)
            for connection in (data.get("data") or {}).values():
                if isinstance(connection, dict) and "edges" in connection:
                    connection["edges"] = self.rewrite_edges(connection["edges"])
            content = json.dumps(data).encode()
        elif (found := _DATA.match(path)) and self.rewrite_data and answer.status_code == 200:
            content = self.rewrite_data(found.group(1), content)
        return answer.status_code, content, kind

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.http.close()

    def __enter__(self) -> LyingIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _handler(liar: LyingIndex) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            passed = {k: v for k, v in self.headers.items()
                      if k.lower() in ("content-type", "range", "accept")}
            own = liar.answer(self.command, self.path) if liar.answer else None
            extra: dict[str, str] = {}
            try:
                if own is not None:
                    status, extra, content = own
                    kind = extra.pop("Content-Type", "application/octet-stream")
                else:
                    status, content, kind = liar.relay(self.command, self.path, body, passed)
            except httpx.HTTPError as exc:
                status, content, kind = 502, f"upstream failed: {exc!r}".encode(), "text/plain"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", kind or "application/octet-stream")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_POST = do_HEAD = _serve

    return Handler
