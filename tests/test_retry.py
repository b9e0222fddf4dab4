"""The one retry policy (kwil_sync.retry): delays, give-up, Retry-After, without sleeping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kwil_sync.retry import FailureStreak, RetryPolicy


class Flaky(Exception):
    """A failure that carries the wait a server asked for."""

    def __init__(self, n: int, retry_after: float | None = None) -> None:
        super().__init__(f"failure {n}")
        self.retry_after = retry_after


class Fatal(Exception):
    pass


def failing(errors: list[Exception], answer: str = "ok") -> Callable[[], str]:
    """An operation that raises `errors` one per call, then answers."""
    calls = iter(errors)

    def op() -> str:
        error = next(calls, None)
        if error is not None:
            raise error
        return answer

    return op


def recorded(**fields: object) -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []
    return RetryPolicy(sleep=waits.append, **fields), waits  # type: ignore[arg-type]


def test_backoff_doubles_up_to_its_cap_then_gives_up() -> None:
    policy = RetryPolicy(max_retries=6, backoff=0.5, max_backoff=4.0)
    assert [policy.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, None]
    assert RetryPolicy(max_retries=0).delay(0) is None  # one try only


def test_jitter_takes_its_share_of_each_wait_from_the_random_source() -> None:
    for draw, expected in ((0.0, 1.0), (0.5, 1.5), (0.999, 1.999)):
        policy = RetryPolicy(backoff=2.0, jitter=0.5, random=lambda d=draw: d)
        assert policy.delay(0) == pytest.approx(expected)
    assert RetryPolicy(backoff=2.0, random=lambda: 0.0).delay(0) == 2.0  # no jitter


def test_retry_after_is_waited_up_to_the_cap_then_given_up_or_shortened() -> None:
    give_up = RetryPolicy(max_retry_after=120.0)
    assert give_up.delay(0, 3.0) == 3.0 and give_up.delay(3, 120.0) == 120.0
    assert give_up.delay(0, 3600.0) is None
    assert give_up.delay(4, 1.0) is None  # no retry left, whatever the server says
    shorten = RetryPolicy(max_retry_after=10.0, beyond_max_retry_after="shorten",
                          jitter=0.5, random=lambda: 0.0)
    assert shorten.delay(0, 3600.0) == 10.0
    assert shorten.delay(0, 2.0) == 2.0  # the server's wait is not jittered


def test_call_retries_what_is_retryable_and_returns_the_answer() -> None:
    policy, waits = recorded(max_retries=3, backoff=0.1,
                             retryable=lambda e: isinstance(e, Flaky))
    assert policy.call(failing([Flaky(1), Flaky(2)])) == "ok"
    assert waits == [0.1, 0.2]


def test_call_raises_the_last_error_when_no_retry_is_left() -> None:
    policy, waits = recorded(max_retries=2, backoff=0.1)
    last = Flaky(3)
    with pytest.raises(Flaky) as caught:
        policy.call(failing([Flaky(1), Flaky(2), last]))
    assert caught.value is last and waits == [0.1, 0.2]


def test_call_raises_an_error_that_is_not_retryable_at_once() -> None:
    policy, waits = recorded(retryable=lambda e: isinstance(e, Flaky))
    with pytest.raises(Fatal):
        policy.call(failing([Flaky(1), Fatal("no")]))
    assert waits == [0.5]


def test_call_honours_the_wait_the_error_carries() -> None:
    policy, waits = recorded(retry_after=lambda e: getattr(e, "retry_after", None))
    assert policy.call(failing([Flaky(1, retry_after=7.0), Flaky(2)])) == "ok"
    assert waits == [7.0, 1.0]  # the second failure backs off (attempt 1)
    with pytest.raises(Flaky) as caught:  # a wait beyond the cap is raised, not slept
        policy.call(failing([Flaky(3, retry_after=3600.0)]))
    assert caught.value.retry_after == 3600.0 and waits == [7.0, 1.0]


def test_a_streak_counts_failures_in_a_row_and_a_success_starts_it_over() -> None:
    policy, waits = recorded(max_retries=2, backoff=0.2, max_backoff=2.0)
    streak = policy.streak()
    assert isinstance(streak, FailureStreak)
    streak.failed(Flaky(1))
    streak.failed(Flaky(2))
    streak.succeeded()
    streak.failed(Flaky(3))
    assert waits == [0.2, 0.4, 0.2]
    streak.failed(Flaky(4))
    last = Flaky(5)
    with pytest.raises(Flaky) as caught:
        streak.failed(last)
    assert caught.value is last and waits == [0.2, 0.4, 0.2, 0.4]


def test_a_streak_shared_by_calls_keeps_counting_until_one_succeeds() -> None:
    policy, waits = recorded(max_retries=3, backoff=1.0, retryable=lambda e: isinstance(e, Flaky))
    streak = policy.streak()
    assert streak.call(failing([Flaky(1), Flaky(2)])) == "ok"
    assert streak.failures == 0 and waits == [1.0, 2.0]
    with pytest.raises(Fatal):
        streak.call(failing([Fatal("no")]))
    assert streak.failures == 0 and waits == [1.0, 2.0]
