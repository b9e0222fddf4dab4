"""One POST per connection, straight over `http.client`: how kwild wants to be called.

kwild's JSON-RPC server closes the connection after every answer (`Connection:
close`, kwil-db v0.9.4 `internal/services/jsonrpc/server.go`, v0.10.2
`node/services/jsonrpc/server.go`), so a pool (`kwil_sync.http_pool`) only adds work.
Measured against the node stand-in on 2 cores: a call through `httpx.Client` costs
about 0.36 ms of client CPU, straight over `http.client` about 0.14 ms, and the nonce
pipeline makes two calls per transaction while competing for the GIL with the document
fetches, so the nonce pipeline sends about 20% more per second this way. `KwilClient`
uses this unless it is given an `httpx.Client` (for proxies or a custom TLS set-up).
"""

from __future__ import annotations

import base64
import http.client
import ssl
from urllib.parse import unquote, urlsplit

from kwil_sync.http_pool import TRANSPORT_ERRORS

__all__ = ["DirectPost", "TRANSPORT_ERRORS"]


class DirectPost:
    """POST bodies to paths under `url`, one fresh connection each.

    Args:
        url: `http://` or `https://` base URL; user:password in it becomes Basic auth
            (kwild's `rpc_auth` option).
        timeout: Seconds for connecting and for each read.
    """

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self._host, self._port, self._timeout = parts.hostname, parts.port, timeout
        self._prefix = parts.path.rstrip("/")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "kwil-sync"}
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(
                user_pass.encode()).decode()

    def __repr__(self) -> str:
        return f"DirectPost({self._host!r}, port={self._port})"

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST; raises one of `TRANSPORT_ERRORS` when it fails."""
        conn = (http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                            context=self._tls) if self._tls is not None
                else http.client.HTTPConnection(self._host, self._port, timeout=self._timeout))
        try:
            conn.request("POST", self._prefix + path, body, self._headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()
