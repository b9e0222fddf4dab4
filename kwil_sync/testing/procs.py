"""Small helpers for the local services tests and the demo start: ports, waiting, stopping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable

__all__ = ["free_port", "stop_process", "wait_until"]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1,
               process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `check` until it is true; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {process.returncode}")
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """SIGTERM the process (its group when it leads one), SIGKILL after `timeout`."""
    if process.poll() is not None:
        return
    try:
        pgid = os.getpgid(process.pid)
        group = pgid == process.pid
    except ProcessLookupError:
        return
    kill = (lambda sig: os.killpg(pgid, sig)) if group else process.send_signal
    kill(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(signal.SIGKILL)
        process.wait(timeout)
