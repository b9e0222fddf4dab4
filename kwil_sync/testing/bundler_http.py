"""HTTP routes of the bundler stand-in (stdlib `http.server`, one thread per request).

Routes: `POST /tx/{token}` (upload a raw data item), `GET /{id}` and `GET /tx/{id}/data`
(the item's data with its Content-Type tag), `POST|GET /graphql` (Irys dialect),
`GET /info`, and test controls under `/_standin/` (`POST flush`, `POST fault`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from kwil_sync.arweave.ans104 import DataItem, DataItemError
from kwil_sync.testing.bundler_graphql import execute_graphql

if TYPE_CHECKING:
    from kwil_sync.testing.bundler import BundlerStandIn

__all__ = ["make_handler"]

_ID = r"([A-Za-z0-9_-]{43})"
_UPLOAD = re.compile(r"^/tx/([A-Za-z0-9_-]+)/?$")
_DATA = re.compile(rf"^/(?:tx/)?{_ID}(?:/data)?/?$")


def make_handler(standin: BundlerStandIn) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one stand-in."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kwil-sync-bundler-standin"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

        def _send(self, status: int, body: bytes | str | dict[str, Any],
                  content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            if isinstance(body, dict):
                body = json.dumps(body)
            raw = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        def _body(self) -> bytes | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > standin.max_item_bytes:
                self.close_connection = True
                self._send(413, f"body of {length} bytes is over the stand-in's limit of "
                                f"{standin.max_item_bytes}", "text/plain")
                return None
            return self.rfile.read(length)

        def _fault(self, route: str) -> bool:
            fault = standin.take_fault(route)
            if fault is None:
                return False
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            self._send(fault.status, fault.body, "text/plain", headers)
            return True

        def do_POST(self) -> None:
            self._guarded(self._post)

        def do_GET(self) -> None:
            self._guarded(self._get)

        do_HEAD = do_GET

        def _guarded(self, route: Callable[[], None]) -> None:
            try:
                route()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as exc:  # a stand-in bug or a bad control request: say which
                self._send(500, f"stand-in error: {exc!r}", "text/plain")

        def _post(self) -> None:
            path = urlsplit(self.path).path
            body = self._body()
            if body is None:
                return
            if (match := _UPLOAD.match(path)) is not None:
                self._upload(match.group(1), body)
            elif path == "/graphql":
                self._graphql(body)
            elif path == "/_standin/flush":
                self._send(200, {"bundles": standin.flush()})
            elif path == "/_standin/fault":
                standin.set_fault(**json.loads(body or b"{}"))
                self._send(200, {"ok": True})
            else:
                self._send(404, f"no route POST {path}", "text/plain")

        def _get(self) -> None:
            split = urlsplit(self.path)
            if split.path == "/graphql":
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                if "variables" in query:
                    query["variables"] = json.loads(query["variables"])
                self._graphql(json.dumps(query).encode())
            elif split.path in ("/", "/info"):
                self._send(200, standin.info())
            elif (match := _DATA.match(split.path)) is not None:
                self._data(match.group(1))
            else:
                self._send(404, f"no route GET {split.path}", "text/plain")

        def _upload(self, token: str, raw: bytes) -> None:
            if self._fault("upload"):
                return
            try:
                item = DataItem.parse(raw)
            except DataItemError as exc:
                self._send(400, f"not a data item: {exc}", "text/plain")
                return
            if not item.verify():
                self._send(400, f"invalid signature on data item {item.id}", "text/plain")
                return
            receipt, fresh = standin.accept(item, token)
            self._send(200 if fresh else 201, receipt)

        def _graphql(self, raw: bytes) -> None:
            if self._fault("graphql"):
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"errors": [{"message": "the body is not JSON"}]})
                return
            self._send(*execute_graphql(standin.schema, standin.store, body))

        def _data(self, id: str) -> None:
            if self._fault("data"):
                return
            found = standin.store.data_of(id)
            if found is None:
                self._send(404, f"data item {id} not found", "text/plain")
                return
            raw, content_type = found
            self._send(200, DataItem.parse(raw).data, content_type or "application/octet-stream")

    return Handler
