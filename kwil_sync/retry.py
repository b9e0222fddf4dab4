"""One retry policy for every loop that tries a request again.

A `RetryPolicy` is configuration: how many retries, the backoff (exponential, capped,
optionally jittered), which errors deserve another try and how a server's Retry-After
is honoured. `call` runs an operation under it; `FailureStreak` counts failures in a
row for loops that interleave retries with other work and start over on a success.
Waiting and randomness are fields too, so tests see every wait without sleeping.

Its callers and their limits (each set where its policy is made):

- GraphQL paging (`arweave/graphql.py`): `retries` tries in all, 0.5 s doubling up to
  8 s, jittered (half to all of it); transport failures only, never a refused query.
- Document fetch (`arweave/data.py`): `retries` tries in all, 0.25 s doubling up to
  8 s, jittered; a Retry-After is honoured but shortened to 10 s.
- Uploads (`arweave/uploaders/`): 4 retries, 0.5 s doubling up to 30 s; a Retry-After
  up to 120 s is waited, a longer one is raised at once.
- The nonce pipeline (`kwil/pipeline.py`): 6 failures in a row, 0.2 s doubling up to
  2 s; a success starts the count over.

Example:
    ```python
    policy = RetryPolicy(max_retries=3, backoff=0.1,
                         retryable=lambda e: isinstance(e, ConnectionError))
    answer = policy.call(lambda: fetch(url))
    ```
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

__all__ = ["FailureStreak", "RetryPolicy"]

T = TypeVar("T")


def _every_error(error: Exception) -> bool:
    return True


def _no_retry_after(error: Exception) -> float | None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try again and how long to wait before each retry.

    Attributes:
        max_retries: Retries after the first try (0: one try only).
        backoff: The first backoff wait in seconds; it doubles with each retry.
        max_backoff: The longest backoff wait.
        jitter: The share of each backoff wait that is random: 0 waits exactly, 0.5
            waits between half and all of it (clients that failed together spread out).
        max_retry_after: The longest wait a server may ask for (Retry-After).
        beyond_max_retry_after: What a longer Retry-After does: "give_up" ends the
            retries at once (the caller raises rather than sleep an hour), "shorten"
            waits `max_retry_after` instead.
        retryable: Whether an error deserves another try; others are raised at once.
        retry_after: The wait a server asked for, read from the error (None: back off).
        sleep: How to wait (tests pass a recorder).
        random: Jitter's source of numbers in [0, 1).
    """

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.0
    max_retry_after: float = 120.0
    beyond_max_retry_after: Literal["give_up", "shorten"] = "give_up"
    retryable: Callable[[Exception], bool] = field(default=_every_error, repr=False)
    retry_after: Callable[[Exception], float | None] = field(default=_no_retry_after,
                                                             repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry `attempt + 1`, or None to give up.

        Args:
            attempt: Retries made so far (0 after the first failure).
            retry_after: The wait the server asked for, if any.
        """
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            if retry_after <= self.max_retry_after:
                return retry_after
            return self.max_retry_after if self.beyond_max_retry_after == "shorten" else None
        wait = min(self.max_backoff, self.backoff * 2**attempt)
        return float(wait * (1 - self.jitter + self.jitter * self.random()))

    def call(self, op: Callable[[], T]) -> T:
        """`op()`, tried again after each retryable error while the policy allows.

        Raises:
            Exception: What `op` raised last: at once when it is not retryable, or when
                no retry is left (the caller turns it into its own error if it wants).
        """
        attempt = 0
        while True:
            try:
                return op()
            except Exception as error:
                if not self.retryable(error):
                    raise
                wait = self.delay(attempt, self.retry_after(error))
                if wait is None:
                    raise
            self.sleep(wait)
            attempt += 1

    def streak(self) -> FailureStreak:
        """A new count of failures in a row under this policy."""
        return FailureStreak(self)


class FailureStreak:
    """Failures in a row under one policy; a success starts the count over.

    For loops that retry among other work (the nonce pipeline shares one streak between
    its reads and its broadcasts): the caller decides what failed and reports it.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def failed(self, error: Exception) -> None:
        """Wait before the next try, or raise `error` when no retry is left."""
        wait = self.policy.delay(self.failures, self.policy.retry_after(error))
        self.failures += 1
        if wait is None:
            raise error
        self.policy.sleep(wait)

    def succeeded(self) -> None:
        """The last try worked: the next failure is the first again."""
        self.failures = 0

    def call(self, op: Callable[[], T]) -> T:
        """`op()`, tried again after each retryable error while the streak allows.

        Raises:
            Exception: What `op` raised last (at once when not retryable).
        """
        while True:
            try:
                result = op()
            except Exception as error:
                if not self.policy.retryable(error):
                    raise
                self.failed(error)
                continue
            self.succeeded()
            return result
