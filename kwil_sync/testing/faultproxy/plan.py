"""Which fault each request meets: the rates, the seeded decision sequence, the counters."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

__all__ = ["EXCLUSIVE_FAULTS", "Decision", "FaultPlan", "FaultRates", "ProxyStats"]

EXCLUSIVE_FAULTS = ("server_error", "rate_limit", "reset", "truncate")


@dataclass(frozen=True)
class FaultRates:
    """Per-request fault probabilities and the shape of each fault.

    `latency` combines with any outcome; the four others exclude one another, so their
    sum must be at most 1.
    """

    latency: float = 0.0
    server_error: float = 0.0
    rate_limit: float = 0.0
    reset: float = 0.0
    truncate: float = 0.0
    latency_seconds: float = 0.05
    retry_after_seconds: int = 1
    server_error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    reset_after_upstream: bool = False

    def __post_init__(self) -> None:
        for name in ("latency", *EXCLUSIVE_FAULTS):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"rate {name}={getattr(self, name)} is not within 0..1")
        if sum(getattr(self, name) for name in EXCLUSIVE_FAULTS) > 1.0 + 1e-9:
            raise ValueError("server_error + rate_limit + reset + truncate must be at most 1")
        if self.latency_seconds < 0 or self.retry_after_seconds < 0:
            raise ValueError("latency_seconds and retry_after_seconds must not be negative")
        if not self.server_error_statuses or any(
                not 500 <= s <= 599 for s in self.server_error_statuses):
            raise ValueError("server_error_statuses must be a non-empty list of 5xx codes")


@dataclass(frozen=True)
class Decision:
    """What happens to one request: `fault` (one of EXCLUSIVE_FAULTS or None), `delay`
    seconds first, and the status used when `fault` is "server_error"."""

    fault: str | None
    delay: float
    status: int


class FaultPlan:
    """The seeded sequence of decisions; three draws per request keep it aligned."""

    def __init__(self, rates: FaultRates, seed: int) -> None:
        self.rates = rates
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def set_rates(self, rates: FaultRates) -> None:
        """Use `rates` for the decisions from now on (the draws stay aligned)."""
        with self._lock:
            self.rates = rates

    def next(self) -> Decision:
        """The next request's decision, under the rates in force now."""
        with self._lock:
            pick, slow, variant = self._rng.random(), self._rng.random(), self._rng.random()
            rates = self.rates
        fault, edge = None, 0.0
        for name in EXCLUSIVE_FAULTS:
            edge += getattr(rates, name)
            if pick < edge:
                fault = name
                break
        statuses = rates.server_error_statuses
        return Decision(fault, rates.latency_seconds if slow < rates.latency else 0.0,
                        statuses[int(variant * len(statuses))])


@dataclass(frozen=True)
class ProxyStats:
    """Counters: requests received, answered unchanged (`passed`, delayed ones included),
    faults injected by kind (EXCLUSIVE_FAULTS, "latency", "down"), upstream failures
    (answered 502) and requests refused after `max_requests`."""

    requests: int
    passed: int
    faults: dict[str, int]
    upstream_errors: int
    over_limit: int

    @property
    def injected(self) -> int:
        """Requests that met a fault other than latency alone."""
        return sum(n for kind, n in self.faults.items() if kind != "latency")
