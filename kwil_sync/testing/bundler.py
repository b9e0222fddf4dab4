"""An Irys-style bundler STAND-IN for tests and the demo, on 127.0.0.1 only.

It is not Irys. What it does: accepts raw ANS-104 data items at `POST /tx/{token}`
(parse and signature check, 400 otherwise), stores them in SQLite under `data_dir`,
answers with a signed receipt (200) or the stored one for a repeat (201), serves each
item's data at `GET /{id}` and `GET /tx/{id}/data`, answers the Irys GraphQL dialect at
`/graphql` (see `bundler_graphql`), and every `bundle_interval` seconds (or on `flush()`)
posts the items it has not posted yet as one ANS-104 bundle in an L1 transaction to
arlocal, signed by its own minted wallet, then mines, so the items also appear on the
gateway. A bundle is recorded before it is posted, so a restart re-posts it only when
the gateway does not know it, never twice.

What it does not model: payment and balances (uploads are free; a 402 only comes from
`set_fault`), token-specific behaviour (the token is recorded, not checked), deadline
enforcement, multiple nodes, receipts for other signature schemes, Irys' exact error
texts, tag-only `hasTags` and receipt filters, and real Irys cursors (here a cursor is
the base64url of an insertion number).

Example:
    ```python
    with BundlerStandIn.start(arlocal_url=gw.url, data_dir=tmp_path) as bundler:
        IrysUploader(bundler.url, "ethereum").upload([item])
        bundler.flush()   # now on arlocal too
    ```
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.signers import ArweaveSigner, b64url
from kwil_sync.arweave.uploaders import Uploader, UploadError
from kwil_sync.testing.bundler_graphql import irys_schema
from kwil_sync.testing.bundler_http import make_handler
from kwil_sync.testing.bundler_posting import BundlePoster, BundlingFailed
from kwil_sync.testing.bundler_receipts import ReceiptSigner
from kwil_sync.testing.bundler_store import Store

__all__ = ["BundlerStandIn", "BundlingFailed", "Fault", "upload_until_accepted"]

log = logging.getLogger(__name__)
RECEIPT_VERSION = "1.0.0"


@dataclass
class Fault:
    """A scripted answer for the next `remaining` requests on one route."""

    status: int
    retry_after: int | None
    body: str
    remaining: int


class BundlerStandIn:
    """The running stand-in; make one with `start`. See the module docstring."""

    def __init__(self, *, data_dir: Path, arlocal_url: str | None, port: int,
                 bundle_interval: float, signer: ArweaveSigner | None,
                 max_bundle_items: int, max_item_bytes: int, deadline_blocks: int,
                 mint_winston: int) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.arlocal_url = arlocal_url.rstrip("/") if arlocal_url else None
        self.bundle_interval = bundle_interval
        self.max_item_bytes = max_item_bytes
        self.deadline_blocks = deadline_blocks
        self.signer = signer or _load_or_create_wallet(data_dir / "bundler-wallet.json")
        self._receipts = ReceiptSigner(self.signer)  # OpenSSL: the stand-in's main cost
        self.schema = irys_schema()
        self.last_error: Exception | None = None
        self._temporary_dir = False
        self._faults: dict[str, Fault] = {}
        self.faults_answered = 0  # scripted fault answers given (chaos figures)
        self._lock = threading.Lock()
        self._accept_lock = threading.Lock()
        self._stop = threading.Event()
        self.store = Store(data_dir / "bundler.sqlite3")
        self.poster: BundlePoster | None = None
        try:
            if self.arlocal_url:
                self.poster = BundlePoster(self.store, self.signer, self.arlocal_url,
                                           max_bundle_items=max_bundle_items,
                                           mint_winston=mint_winston)
            self._server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(self))
        except BaseException:  # e.g. arlocal down or the port taken: close what is open
            if self.poster is not None:
                self.poster.close()
            self.store.close()
            raise
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._server.serve_forever,
                                          kwargs={"poll_interval": 0.1}, daemon=True,
                                          name="bundler-http")]
        if self.poster is not None and bundle_interval > 0:
            self._threads.append(threading.Thread(target=self._bundle_loop, daemon=True,
                                                  name="bundler-bundling"))
        for thread in self._threads:
            thread.start()

    @classmethod
    def start(cls, arlocal_url: str | None = None, port: int | None = None,
              data_dir: str | Path | None = None, *, bundle_interval: float = 2.0,
              signer: ArweaveSigner | None = None, max_bundle_items: int = 1000,
              max_item_bytes: int = 16 << 20, deadline_blocks: int = 200,
              mint_winston: int = 10**15) -> BundlerStandIn:
        """Start serving on 127.0.0.1.

        Args:
            arlocal_url: arlocal to bundle into; None serves uploads and GraphQL only.
            port: The port; a free one when None.
            data_dir: Where the SQLite store and the wallet live; when None, a temporary
                directory that `stop()` deletes.
            bundle_interval: Seconds between bundling rounds; 0 bundles only on `flush()`.
            signer: The bundler's RSA wallet; by default loaded from (or created in)
                `data_dir/bundler-wallet.json`.
            max_bundle_items: Items per bundle transaction at most.
            max_item_bytes: Largest upload accepted (413 above).
            deadline_blocks: Receipt deadlineHeight = arlocal height + this.
            mint_winston: Winston minted to the wallet on arlocal at start.
        """
        directory = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="bundler-"))
        try:
            standin = cls(data_dir=directory, arlocal_url=arlocal_url, port=port or 0,
                          bundle_interval=bundle_interval, signer=signer,
                          max_bundle_items=max_bundle_items, max_item_bytes=max_item_bytes,
                          deadline_blocks=deadline_blocks, mint_winston=mint_winston)
        except BaseException:
            if data_dir is None:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        standin._temporary_dir = data_dir is None  # deleted on stop: nothing to restart from
        return standin

    def __repr__(self) -> str:
        return f"BundlerStandIn({self.url!r}, arlocal={self.arlocal_url!r})"

    # uploads

    def accept(self, item: DataItem, token: str) -> tuple[dict[str, Any], bool]:
        """Store a verified item; (receipt, True) if new, (stored receipt, False) if not."""
        with self._accept_lock:  # one at a time, so timestamp order is insertion order
            stored = self.store.receipt_of(item.id)
            if stored is not None:
                return stored, False
            timestamp = self.store.next_timestamp()
            receipt = self._receipt(item.id, timestamp)
            self.store.add(item, token, timestamp, receipt)
            return receipt, True

    def _receipt(self, id: str, timestamp: int) -> dict[str, Any]:
        deadline = (self.poster.height if self.poster else 0) + self.deadline_blocks
        message = deep_hash([b"Bundlr", RECEIPT_VERSION.encode(), id.encode(),
                             str(deadline).encode(), str(timestamp).encode()])
        return {"id": id, "timestamp": timestamp, "version": RECEIPT_VERSION,
                "public": b64url(self.signer.owner),
                "signature": b64url(self._receipts.sign(message)), "deadlineHeight": deadline}

    def info(self) -> dict[str, Any]:
        return {"version": "kwil-sync-standin", "addresses": {"arweave": self.signer.address},
                "gateway": self.arlocal_url, "unbundled": self.store.count_unbundled()}

    # faults

    def set_fault(self, status: int = 402, *, retry_after: int | None = None, count: int = 1,
                  route: str = "upload", body: str | None = None) -> None:
        """Answer the next `count` requests on `route` ("upload", "graphql", "data") with
        `status` (and `Retry-After` when given) instead of serving them."""
        if route not in ("upload", "graphql", "data"):
            raise ValueError(f"route must be upload, graphql or data, got {route!r}")
        with self._lock:
            self._faults[route] = Fault(status, retry_after,
                                        body or f"fault injected by the stand-in: {status}",
                                        count)

    def take_fault(self, route: str) -> Fault | None:
        with self._lock:
            fault = self._faults.get(route)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            self.faults_answered += 1
            return fault

    def fail_bundling(self, count: int = 1) -> None:
        """Make the next `count` bundling rounds fail before posting anything."""
        if self.poster is not None:
            self.poster.fail_next(count)

    # bundling

    def flush(self) -> list[str]:
        """Post every item not yet posted (and any bundle left unposted) and mine.

        Returns:
            The ids of the bundle transactions posted in this round.

        Raises:
            BundlingFailed: When injected, or without arlocal to bundle into.
            GatewayError: When arlocal is unreachable or refuses (retried next round).
        """
        if self.poster is None:
            raise BundlingFailed("this stand-in was started without arlocal_url: nothing to "
                                 "bundle into")
        return self.poster.flush()

    def _bundle_loop(self) -> None:
        while not self._stop.wait(self.bundle_interval):
            try:
                self.flush()
                self.last_error = None
            except Exception as exc:  # kept for tests; the next round retries
                self.last_error = exc
                log.warning("bundling round failed: %s", exc)

    # lifecycle

    def stop(self) -> None:
        """Stop serving and bundling; the store stays on disk for a restart."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.poster is not None:
            self.poster.close()
        self.store.close()
        if self._temporary_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> BundlerStandIn:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _load_or_create_wallet(path: Path) -> ArweaveSigner:
    if path.exists():
        return ArweaveSigner.from_file(path)
    signer = ArweaveSigner.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(signer.jwk(), out)
    return signer


def main(argv: list[str] | None = None) -> None:
    """`python -m kwil_sync.testing.bundler --arlocal URL --port N --data-dir DIR`."""
    parser = argparse.ArgumentParser(description="Irys-style bundler stand-in on 127.0.0.1")
    parser.add_argument("--arlocal", help="arlocal URL to bundle into (omit: no bundling)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--data-dir", required=True, help="directory for store and wallet")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between bundling rounds (0: only on /_standin/flush)")
    args = parser.parse_args(argv)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    standin = BundlerStandIn.start(args.arlocal, args.port or None, args.data_dir,
                                   bundle_interval=args.interval)
    print(json.dumps({"url": standin.url, "pid": os.getpid()}), flush=True)
    try:
        done.wait()
    finally:
        standin.stop()


if __name__ == "__main__":
    main()


def upload_until_accepted(uploader: Uploader, items: list[DataItem], *,
                          attempts: int = 20) -> int:
    """Upload `items` again and again, each time without those already accepted
    (repeats count as accepted), until none is left; returns the tries. For tests and
    benches that upload through faults.

    Raises:
        RuntimeError: If some are still refused after `attempts` tries.
    """
    todo = items
    for attempt in range(1, attempts + 1):
        try:
            uploader.upload(todo)
            return attempt
        except UploadError as exc:
            done = {r.id for r in exc.completed}
            todo = [i for i in todo if i.id not in done]
    raise RuntimeError(f"{len(todo)} items still refused after {attempts} tries")
