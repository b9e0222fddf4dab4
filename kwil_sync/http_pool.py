"""Keep-alive HTTP/1.1 over `http.client`: a small connection pool for the hot paths.

Documents and uploads are thousands of small exchanges with one origin, so what the
client spends per request is the cost. Measured on 2 cores against arlocal (2,000
documents of 240 bytes, one run): through `httpx` with 16 threads 0.70 ms of client
CPU per document, through this pool with 8 threads 0.20 ms. `httpx` stays where a
request is rare (GraphQL pages, the write side's gateway calls).

What it does, as `httpx` did for these paths:
- keeps idle connections per origin (scheme, host, port), most recent first, bounded;
- retries an exchange once on a fresh connection when a reused one fails before any
  answer (the server closed it while it sat idle);
- follows redirects for GET and HEAD (ar.io sends documents to sandbox subdomains);
- honours `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` (a CONNECT tunnel for https);
- raises `TransportFailure` for anything that is not an HTTP answer: refused, reset,
  timed out, not HTTP, or a body cut short.
A reply whose body was not read to its end closes its connection instead of pooling it.

Example:
    ```python
    pool = HTTPPool(timeout=30.0)
    with pool.request("GET", "http://127.0.0.1:1984/info") as reply:
        print(reply.status, reply.read())
    pool.close()
    ```
"""

from __future__ import annotations

import functools
import http.client
import json
import ssl
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urljoin, urlsplit

from kwil_sync.errors import KwilSyncError

__all__ = ["Answer", "AnswerTooLarge", "HTTPPool", "Reply", "TRANSPORT_ERRORS",
           "TooManyRedirects", "TransportFailure"]

# What a failed exchange raises underneath: refused, reset, timed out, or not HTTP at all.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A reused connection the server had closed fails like this, before any answer.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class TransportFailure(KwilSyncError, ConnectionError):
    """No HTTP answer (refused, reset, timed out, not HTTP) or a body cut short."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"{url}: {type(cause).__name__}: {cause}".rstrip(": "))
        self.url = url


class TooManyRedirects(KwilSyncError, RuntimeError):
    """A GET was redirected more than `max_redirects` times."""


class AnswerTooLarge(KwilSyncError, ValueError):
    """An answer's body was larger than the caller allows; it was not read further
    (`bytes_read` says how far it got)."""

    def __init__(self, message: str, bytes_read: int) -> None:
        super().__init__(message)
        self.bytes_read = bytes_read


@dataclass(frozen=True)
class Answer:
    """A whole small answer (`HTTPPool.send`): status, headers and body bytes."""

    status: int
    headers: Message  # case-insensitive `get`
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.body)


@functools.lru_cache(maxsize=256)  # a pool talks to a few origins, thousands of times
def _origin_of(scheme_and_netloc: str) -> _Origin:
    return _Origin.of(scheme_and_netloc)


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> _Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return cls(parts.scheme, parts.hostname,
                   parts.port or (443 if parts.scheme == "https" else 80))


class Reply:
    """One answer: `status`, `headers` (case-insensitive `get`) and a body to read once."""

    def __init__(self, url: str, response: http.client.HTTPResponse) -> None:
        self.url, self._response = url, response
        self.status: int = response.status
        self.headers = response.headers

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.url!r})"

    def iter_chunks(self, size: int = 1 << 16) -> Iterator[bytes]:
        """The body in chunks of at most `size` bytes."""
        response = self._response
        try:
            while chunk := response.read(size):
                yield chunk
            if response.length:  # http.client ends a short body quietly when asked for parts
                raise http.client.IncompleteRead(b"", response.length)
        except TRANSPORT_ERRORS as exc:
            raise TransportFailure(self.url, exc) from exc

    def read(self, max_bytes: int | None = None) -> bytes:
        """The whole body; with `max_bytes`, AnswerTooLarge once more than that arrived."""
        body = bytearray()
        for chunk in self.iter_chunks():
            body += chunk
            if max_bytes is not None and len(body) > max_bytes:
                raise AnswerTooLarge(f"{self.url}: the answer is over {max_bytes} bytes",
                                     len(body))
        return bytes(body)

    @property
    def finished(self) -> bool:
        """Whether the body was read to its end, so the connection may serve again."""
        return self._response.isclosed()


class HTTPPool:
    """Pooled keep-alive connections, shared by every thread that calls `request`.

    Args:
        timeout: Seconds for connecting and for each read.
        max_idle_per_origin: Idle connections kept per origin; more are closed.
        max_redirects: Redirects followed for GET and HEAD.
        headers: Sent with every request (a request's own headers win).
    """

    def __init__(self, *, timeout: float = 30.0, max_idle_per_origin: int = 16,
                 max_redirects: int = 5, headers: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.max_idle_per_origin = max(1, max_idle_per_origin)
        self.max_redirects = max_redirects
        self.headers = {"User-Agent": "kwil-sync", "Accept-Encoding": "identity",
                        **(headers or {})}
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None  # built on first https use: it costs ~25 ms
        self._proxies = urllib.request.getproxies()

    def __repr__(self) -> str:
        return f"HTTPPool(timeout={self.timeout}, origins={len(self._idle)})"

    @contextmanager
    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Iterator[Reply]:
        """One exchange; the reply's connection goes back to the pool on exit when its
        body was read to the end, else it is closed.

        Raises:
            TransportFailure: No HTTP answer, on a fresh connection or after one retry.
            TooManyRedirects: A GET or HEAD redirected more than `max_redirects` times.
            ValueError: `url` is not http:// or https://.
        """
        sent = {**self.headers, **(headers or {})}
        for _hop in range(self.max_redirects + 1):
            try:
                origin = _origin_of("/".join(url.split("/", 3)[:3]))  # "scheme://host:port"
            except ValueError:
                raise ValueError(f"expected an http:// or https:// URL, got {url!r}") from None
            conn, response = self._exchange(origin, method, url, body, sent)
            reply = Reply(url, response)
            location = response.getheader("location")
            if method in ("GET", "HEAD") and reply.status in _REDIRECTS and location:
                try:
                    reply.read()
                finally:
                    self._release(origin, conn, reply)
                url = urljoin(url, location)
                continue
            try:
                yield reply
            finally:
                self._release(origin, conn, reply)
            return
        raise TooManyRedirects(f"{method} {url}: more than {self.max_redirects} redirects")

    def send(self, method: str, url: str, *, body: bytes | None = None,
             headers: Mapping[str, str] | None = None, max_bytes: int = 1 << 20) -> Answer:
        """One exchange whose whole answer is wanted: read under `max_bytes`.

        Raises:
            AnswerTooLarge: The body is over `max_bytes`.
            TransportFailure, TooManyRedirects, ValueError: As `request`.
        """
        with self.request(method, url, body=body, headers=headers) as reply:
            return Answer(reply.status, reply.headers, reply.read(max_bytes))

    def _exchange(self, origin: _Origin, method: str, url: str, body: bytes | None,
                  headers: Mapping[str, str]
                  ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn, reused = self._acquire(origin)
        target = self._target(origin, url)
        while True:
            try:
                conn.request(method, target, body, dict(headers))
                return conn, conn.getresponse()
            except TRANSPORT_ERRORS as exc:
                conn.close()
                if not (reused and isinstance(exc, _STALE)):
                    raise TransportFailure(url, exc) from exc
                conn, reused = self._connect(origin), False

    def _target(self, origin: _Origin, url: str) -> str:
        parts = urlsplit(url)
        if origin.scheme == "http" and self._proxy_for(origin):
            return url  # a forward proxy takes the absolute form
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _acquire(self, origin: _Origin) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(origin)
            if idle:
                return idle.pop(), True
        return self._connect(origin), False

    def _release(self, origin: _Origin, conn: http.client.HTTPConnection,
                 reply: Reply) -> None:
        if not reply.finished or reply.headers.get("connection", "").lower() == "close":
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle_per_origin:
                idle.append(conn)
                return
        conn.close()

    def _proxy_for(self, origin: _Origin) -> str | None:
        proxy = self._proxies.get(origin.scheme)
        if not proxy or urllib.request.proxy_bypass(origin.host):
            return None
        return proxy

    def _connect(self, origin: _Origin) -> http.client.HTTPConnection:
        proxy = self._proxy_for(origin)
        via = _Origin.of(proxy if "://" in proxy else f"http://{proxy}") if proxy else origin
        if origin.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                via.host, via.port, timeout=self.timeout, context=self._tls)
            if proxy:
                conn.set_tunnel(origin.host, origin.port)
            return conn
        return http.client.HTTPConnection(via.host, via.port, timeout=self.timeout)

    def close(self) -> None:
        """Close every idle connection (the pool stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def __enter__(self) -> HTTPPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
