"""`FaultProxy`: start, steer (rates, down periods), count and stop the proxy."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from kwil_sync.testing.faultproxy.handler import ProxyServer
from kwil_sync.testing.faultproxy.plan import Decision, FaultPlan, FaultRates, ProxyStats

__all__ = ["FaultProxy"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class FaultProxy:
    """The running proxy; make one with `start`. See the module docstring."""

    def __init__(self, upstream_url: str, *, rates: FaultRates, seed: int, port: int,
                 max_requests: int, max_lifetime: float, upstream_timeout: float,
                 control: bool) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
            raise ValueError(f"upstream {upstream_url!r} must be an http:// URL on 127.0.0.1 "
                             "or localhost: the fault proxy only relays loopback traffic")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.upstream_netloc, self.upstream_path = parts.netloc, parts.path.rstrip("/")
        self.upstream_timeout, self.control = upstream_timeout, control
        self.max_requests, self.max_lifetime = max_requests, max_lifetime
        self._plan = FaultPlan(rates, seed)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._down_until, self._down_status = 0.0, cast(int | None, None)
        self._stopped = threading.Event()  # stopping: sleeps end, the watchdog leaves
        self._closed = threading.Event()  # stopped: the port no longer accepts
        self._server = ProxyServer(self, port)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                             daemon=True, name="faultproxy-http"),
            threading.Thread(target=self._watchdog, daemon=True, name="faultproxy-watchdog"),
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def start(cls, upstream_url: str, rates: FaultRates | dict[str, Any] | None = None,
              seed: int = 0, port: int | None = None, *, max_requests: int = 100_000,
              max_lifetime: float = 600.0, upstream_timeout: float = 30.0,
              control: bool = False) -> FaultProxy:
        """Start serving on 127.0.0.1 (`port`, or a free one) in front of `upstream_url`.

        Args:
            upstream_url: The loopback HTTP service to relay to; its path is a prefix.
            rates: FaultRates, or a dict of its fields; no faults when None.
            seed: Seed of the decision sequence.
            max_requests: Requests served before the proxy stops by itself.
            max_lifetime: Seconds before the proxy stops by itself.
            upstream_timeout: Seconds to connect to and read from the upstream.
            control: Serve the `/_faultproxy/` control routes.

        Raises:
            ValueError: The upstream is not loopback HTTP or a rate is out of range.
        """
        if not isinstance(rates, FaultRates):
            rates = FaultRates(**(rates or {}))
        return cls(upstream_url, rates=rates, seed=seed, port=port or 0,
                   max_requests=max_requests, max_lifetime=max_lifetime,
                   upstream_timeout=upstream_timeout, control=control)

    def __repr__(self) -> str:
        return f"FaultProxy({self.url!r} -> http://{self.upstream_netloc}{self.upstream_path})"

    @property
    def rates(self) -> FaultRates:
        """The rates in force now."""
        return self._plan.rates

    @property
    def running(self) -> bool:
        """False once the proxy has stopped and its port is closed."""
        return not self._closed.is_set()

    def set_rates(self, rates: FaultRates | None = None, **changes: Any) -> None:
        """Replace the rates, or change some fields (`set_rates(reset=0.2)`), from now on."""
        base = rates or self._plan.rates
        if isinstance(changes.get("server_error_statuses"), list):
            changes["server_error_statuses"] = tuple(changes["server_error_statuses"])
        new = dataclasses.replace(base, **changes)
        self._plan.set_rates(new)

    def down(self, seconds: float, *, status: int | None = None) -> None:
        """Refuse every request for `seconds`: reset it, or answer `status` (e.g. 503)."""
        with self._lock:
            self._down_until, self._down_status = time.monotonic() + seconds, status

    def up(self) -> None:
        """End a `down` period now."""
        self.down(0)

    def stats(self) -> ProxyStats:
        """The counters so far (a snapshot)."""
        with self._lock:
            counts = dict(self._counts)
        extra = ("requests", "passed", "upstream_errors", "over_limit")
        return ProxyStats(requests=counts.get("requests", 0), passed=counts.get("passed", 0),
                          faults={k: v for k, v in counts.items() if k not in extra},
                          upstream_errors=counts.get("upstream_errors", 0),
                          over_limit=counts.get("over_limit", 0))

    def count(self, kind: str) -> None:
        """Add one to counter `kind` (the handler reports each outcome here)."""
        with self._lock:
            self._counts[kind] += 1

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True if the proxy is stopping instead."""
        return self._stopped.wait(seconds)

    def admit(self) -> Decision | int | None:
        """Count a request: its Decision, a status to refuse it with, or None to reset it."""
        with self._lock:
            self._counts["requests"] += 1
            if self._counts["requests"] > self.max_requests:
                self._counts["over_limit"] += 1
                threading.Thread(target=self.stop, daemon=True).start()
                return None
            if time.monotonic() < self._down_until:
                self._counts["down"] += 1
                return self._down_status
            decision = self._plan.next()
            if decision.delay:
                self._counts["latency"] += 1
            return decision

    def _watchdog(self) -> None:
        if not self._stopped.wait(self.max_lifetime):
            self.stop()

    def stop(self) -> None:
        """Stop serving (idempotent). Requests in flight finish; one waiting out added
        latency is reset instead."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._closed.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
