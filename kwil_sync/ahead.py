"""Work ahead in a second thread: `read_ahead(produce, depth)`.

The replay pipeline reads chunks ahead of the apply, and the GraphQL pager reads
pages ahead of the chunks; both are "call this until it returns None, a few results
ahead of the caller", so both use this.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["read_ahead"]

T = TypeVar("T")


@contextmanager
def read_ahead(produce: Callable[[], T | None], *, depth: int = 1,
               name: str = "read-ahead") -> Iterator[Iterator[T]]:
    """Call `produce` again and again in a second thread until it returns None, and
    yield its results in order: at most `depth` wait for the caller, and one more may
    be made meanwhile.

    The thread runs in a copy of the caller's context (a Prefect flow run's steps stay
    in that flow run). An exception from `produce` is raised to the caller in order.
    Leaving the block early stops the thread after its current call.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    stop = threading.Event()
    results: queue.Queue[tuple[T | None, BaseException | None]] = queue.Queue(maxsize=depth)
    context = contextvars.copy_context()

    def put(item: tuple[T | None, BaseException | None]) -> None:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        while not stop.is_set():
            try:
                item = context.run(produce)
            except BaseException as exc:  # handed to the caller, raised there
                put((None, exc))
                return
            put((item, None))
            if item is None:
                return

    def items() -> Iterator[T]:
        while True:
            item, error = results.get()
            if error is not None:
                raise error
            if item is None:
                return
            yield item

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        yield items()
    finally:
        stop.set()
        thread.join()
