"""A throwaway PostgreSQL server on 127.0.0.1 for tests, benches and the shared-ledger demo.

It runs the PostgreSQL binaries installed on the machine (`initdb`, `postgres`) on a data
folder of its own, trusts loopback connections from its one user, listens on TCP only
(no Unix socket), and is stopped by its process id. initdb and postgres refuse to run
as root, so as root the server runs as the `postgres` system user (`runuser`).

Example:
    ```python
    with PostgresServer.start() as pg:
        ledger = open_ledger(pg.url("kwil_sync"))
    ```
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from kwil_sync.testing.procs import free_port, stop_process, wait_until

__all__ = ["PostgresServer", "find_postgres_bin"]

SEARCHED = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = ("PostgreSQL server binaries not found (looked for initdb in "
                f"{SEARCHED} and on PATH); install them, e.g. `apt-get install "
                "postgresql-15` or set KWIL_SYNC_PG_BIN to their folder")


def find_postgres_bin() -> Path | None:
    """The folder holding `initdb` and `postgres` (newest version first), or None."""
    configured = os.environ.get("KWIL_SYNC_PG_BIN")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "postgres").exists()),
                None)


class PostgresServer:
    """One running server; `start()` it, `url(db)` to connect, `restart()`, `stop()`."""

    USER = "kwil_sync"

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir, self.root, self.port = bin_dir, root, port
        self.data = root / "data"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, *, root: Path | None = None) -> PostgresServer:
        """initdb a fresh cluster under `root` (a new temp folder by default) and start it.

        Raises:
            RuntimeError: If the binaries are missing (the message says what to install)
                or the server does not come up.
        """
        bin_dir = find_postgres_bin()
        if bin_dir is None:
            raise RuntimeError(INSTALL_HINT)
        # Not under pytest's 0700 temp folders: the postgres user must reach it.
        root = root or Path(tempfile.mkdtemp(prefix="kwil-sync-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        server = cls(bin_dir, root, free_port())
        server._chown(root)
        server._run_as_owner([str(bin_dir / "initdb"), "-D", str(server.data), "-U", cls.USER,
                              "--auth=trust", "--encoding=UTF8", "--no-sync"])
        server._launch()
        return server

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for `database` (created by `create_database` first if not postgres)."""
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (fast shutdown: every session ends) and start it again."""
        import time

        self._halt()
        time.sleep(down_for)
        self._launch()

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        self._halt()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _launch(self) -> None:
        log = (self.root / "server.log").open("ab")
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                "-c", "fsync=on", "-c", "max_connections=100"]
        self.process = subprocess.Popen(self._as_owner(args), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(self._accepts, timeout=60, what="postgres", process=self.process,
                   interval=0.1)

    def postmaster_pid(self) -> int | None:
        """The server's own process id (under `runuser` it is not `process.pid`)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _halt(self) -> None:
        if self.process is None:
            return
        pid = self.postmaster_pid()
        if pid is not None and self.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown: sessions end, the server stops cleanly.
            # Sent to the postmaster itself: runuser does not pass SIGINT on.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process(self.process, timeout=5)
        self.process = None

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
        except OSError:
            return False
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", "postgres", "--", *args]

    def _run_as_owner(self, args: list[str]) -> None:
        done = subprocess.run(self._as_owner(args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}")

    def _chown(self, root: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres", group="postgres")
