"""The whole kwil-sync world on 127.0.0.1, one process per service, for the demo and tests.

A `LocalStack` starts, each in its own process group, a Prefect server (SQLite), arlocal,
the Irys-style bundler stand-in, Kwil node stand-ins, the gRPC shim and a `serve`
process for the deployments; every process logs to `<root>/logs/<name>.log` and is
stopped by its pid. It imports no Prefect: processes get `PREFECT_API_URL` in their
environment, and `env()` hands the same to the caller.

Example:
    ```python
    with LocalStack(Path(".demo")) as stack:
        api = stack.start_prefect()
        gateway = stack.start_arlocal()
    ```
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.procs import free_port, stop_process, wait_until

__all__ = ["LocalStack", "PROJECT_ROOT", "standin_call"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code < 500


class LocalStack:
    """Services for one demo or test session, all under `root` and all on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.arlocal: Arlocal | None = None
        self.prefect_api_url: str | None = None

    def env(self) -> dict[str, str]:
        """Environment for processes (and Prefect clients) that belong to this stack."""
        env = dict(os.environ)
        env.update({
            "PREFECT_HOME": str(self.root / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_INTEGRATIONS_KWIL_SYNC_STATE_DIR": str(self.root / "state"),
            "PYTHONPATH": str(PROJECT_ROOT),
        })
        if self.prefect_api_url:
            env["PREFECT_API_URL"] = self.prefect_api_url
        return env

    def spawn(self, name: str, args: list[str], *, ready: Callable[[], bool] | None = None,
              timeout: float = 60.0) -> subprocess.Popen[bytes]:
        """Start `args` as service `name` in its own process group and wait until `ready`."""
        log = (self.root / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=self.env(), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes[name] = process
        if ready is not None:
            try:
                wait_until(ready, timeout=timeout, what=name, process=process, interval=0.25)
            except BaseException as exc:
                raise RuntimeError(f"{exc}; see {self.root / 'logs' / (name + '.log')}") from exc
        return process

    def start_prefect(self, *, ui: bool = False, port: int | None = None) -> str:
        """A Prefect server on SQLite; returns its API URL."""
        port = port or free_port()
        prefect = str(Path(sys.executable).parent / "prefect")
        args = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port),
                "--analytics-off"] + ([] if ui else ["--no-ui"])
        url = f"http://127.0.0.1:{port}/api"
        self.spawn("prefect-server", args, ready=lambda: _http_ok(f"{url}/health"), timeout=120)
        self.prefect_api_url = url
        return url

    def start_arlocal(self) -> str:
        self.arlocal = Arlocal.start()
        return self.arlocal.url

    def start_bundler(self, arlocal_url: str, *, interval: float = 1.0) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self.spawn("bundler", [sys.executable, "-m", "kwil_sync.testing.bundler", "--arlocal",
                               arlocal_url, "--port", str(port), "--data-dir",
                               str(self.root / "bundler"), "--interval", str(interval)],
                   ready=lambda: _http_ok(f"{url}/info"))
        return url

    def start_kwil_node(self, name: str, *, version: str = "v0.9", chain_id: str = "kwil-demo",
                        block_interval: float = 0.05, port: int | None = None,
                        extension_endpoints: list[str] | None = None) -> str:
        """A Kwil node stand-in; with `extension_endpoints` (v0.9) it calls those
        extensions (the shim) itself while executing blocks, as kwild does: start them
        first, kwild refuses to start when one does not answer."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        (self.root / name).mkdir(parents=True, exist_ok=True)
        extensions = [a for e in extension_endpoints or [] for a in ("--extension-endpoint", e)]
        self.spawn(name, [sys.executable, "-m", "kwil_sync.testing.kwil_node", "--version",
                          version, "--port", str(port), "--chain-id", chain_id,
                          "--block-interval", str(block_interval), "--data-dir",
                          str(self.root / name), *extensions],
                   ready=lambda: _rpc_ok(url))
        return url

    def start_shim(self, *, kwil_url: str, key_file: Path, extra: list[str] | None = None) -> str:
        """The gRPC shim for one provider; returns host:port. The node at `kwil_url` may
        start later (the shim reads it lazily), as kwild does after its extensions."""
        port = free_port()
        self.spawn("shim", [sys.executable, "-m", "kwil_sync.shim", "--port", str(port),
                            "--kwil-url", kwil_url, "--key-file", str(key_file), "--outbox",
                            str(self.root / "state" / "outbox.sqlite"), *(extra or [])],
                   ready=lambda: _port_open(port))
        return f"127.0.0.1:{port}"

    def start_serve(self, *args: str) -> subprocess.Popen[bytes]:
        """Serve the deployments (no worker needed); ready once the process is up."""
        return self.spawn("serve", [sys.executable, "-m", "kwil_sync.deployments.serve", *args])

    def write_key(self, name: str, private_key_hex: str) -> Path:
        """Store a provider key in a 0600 file under the stack's root (never printed)."""
        path = self.root / "keys" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(private_key_hex)
        return path

    def pids(self) -> dict[str, int]:
        """Every service this stack started (arlocal included), name -> pid. Each runs in
        a process group of its own, so `kill -- -PID` stops it with its children."""
        pids = {name: p.pid for name, p in self.processes.items() if p.poll() is None}
        if self.arlocal is not None and self.arlocal.process.poll() is None:
            pids["arlocal"] = self.arlocal.process.pid
        return pids

    def stop(self) -> None:
        """Stop every process by its pid, newest first."""
        for process in reversed(list(self.processes.values())):
            stop_process(process, timeout=10)
        self.processes.clear()
        if self.arlocal is not None:
            self.arlocal.stop()
            self.arlocal = None

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _rpc_ok(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "user.chain_info", "params": {}}
    return "result" in httpx.post(f"{url}/rpc/v1", json=body, timeout=2).json()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0



def standin_call(node_url: str, method: str, **params: Any) -> dict[str, Any]:
    """Call a Kwil node stand-in's admin method (`standin.deploy`, `standin.rows`, ...)."""
    answer = httpx.post(f"{node_url}/rpc/v1", timeout=30, json={
        "jsonrpc": "2.0", "id": 1, "method": f"standin.{method}", "params": params}).json()
    if "error" in answer:
        raise RuntimeError(f"standin.{method} on {node_url}: {answer['error']}")
    return dict(answer["result"])
