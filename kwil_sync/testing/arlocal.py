"""Start a fresh arlocal (npm `arlocal`, a real local Arweave gateway) on 127.0.0.1.

arlocal has no host option, so it is started with a preload (`loopback.cjs`) that
binds every `listen()` to 127.0.0.1. Each instance gets its own database folder;
`--persist` is not used because it loses the block height.

Example:
    ```python
    with Arlocal.start() as gw:
        gw.mint(address, 10**12)
        gw.mine()
    ```
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from kwil_sync.testing.procs import free_port, stop_process, wait_until

__all__ = ["Arlocal", "node_dir", "wait_indexed"]


def node_dir() -> Path:
    """Where the npm oracles live: $KWIL_SYNC_NODE_DIR or the repo's tests/node."""
    env = os.environ.get("KWIL_SYNC_NODE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "tests" / "node"


class Arlocal:
    """A running arlocal process bound to 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, db_dir: str) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._db_dir = db_dir
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @classmethod
    def start(cls, port: int | None = None, *, timeout: float = 30.0) -> Arlocal:
        """Start arlocal and wait until `/info` answers.

        Raises:
            FileNotFoundError: If the npm packages are not installed (run `make setup`).
        """
        base = node_dir()
        entry = base / "node_modules" / "arlocal" / "bin" / "index.js"
        if not entry.exists():
            raise FileNotFoundError(f"{entry} is missing: run `make setup` to install npm packages")
        port = port or free_port()
        db_dir = tempfile.mkdtemp(prefix="arlocal-")
        process = subprocess.Popen(
            ["node", "-r", str(base / "loopback.cjs"), str(entry), str(port), "--hidelogs",
             "--dbpath", db_dir],
            cwd=db_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        gw = cls(process, port, db_dir)
        try:
            wait_until(lambda: gw.http.get("/info").status_code == 200, timeout=timeout,
                       what=f"arlocal on port {port}", process=process)
        except BaseException:
            gw.stop()
            raise
        return gw

    def mint(self, address: str, winston: int = 10**15) -> None:
        """Fund an Arweave address (base64url) so its L1 transactions are accepted."""
        self.http.get(f"/mint/{address}/{winston}").raise_for_status()

    def mine(self, blocks: int = 1, *, timeout: float = 600) -> None:
        """Mine pending transactions into blocks (and index bundled items).

        arlocal verifies and indexes every bundled item while it mines (50 to 100 ms an
        item on a busy machine), so a large bundle needs a long timeout.
        """
        self.http.get(f"/mine/{blocks}", timeout=timeout).raise_for_status()

    def height(self) -> int:
        return int(self.http.get("/info").json()["height"])

    def stop(self) -> None:
        """Stop the process by its pid and delete its database."""
        self.http.close()
        stop_process(self.process)
        shutil.rmtree(self._db_dir, ignore_errors=True)

    def __enter__(self) -> Arlocal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_indexed(gateway_url: str, original_dbid: str, count: int, *, timeout: float = 120,
                 interval: float = 0.5) -> None:
    """Wait until the gateway's GraphQL lists `count` records of `original_dbid`.

    Raises:
        TimeoutError: Naming how many were listed when the time ran out.
    """
    from kwil_sync.arweave.graphql import GraphQLPager

    pager = GraphQLPager(f"{gateway_url}/graphql", "gateway")
    deadline, seen = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        seen = sum(1 for _ in pager.records({"Original-DBID": [original_dbid]}))
        if seen >= count:
            return
        time.sleep(interval)
    raise TimeoutError(f"only {seen} of {count} records of {original_dbid} were indexed "
                       f"within {timeout:.0f} s")
