"""A stand-in for a kwild node: kwild's user JSON-RPC on 127.0.0.1, v0.9 or v0.10.

THIS IS NOT KWILD. No kwild binary is distributed through PyPI, npm or Debian, so
tests, benches and the demo talk to this stand-in instead. It speaks the same wire
(`POST /rpc/v1`, the shapes, codes and messages of kwil-db v0.9.4 and v0.10.2, one
version per instance) well enough that `@kwilteam/kwil-js` 0.8 and 0.9 work against it.

What it models:
- transactions as kwild checks them: chain id, the `secp256k1_ep` signature over the
  "concat" text (sender recovered from it), and the nonce = account nonce + 1 counting
  the mempool; refusals carry kwild's tx code and log (wrong chain, bad signature,
  reused or skipped nonce, duplicate);
- a mempool and blocks made every `block_interval` seconds (0 = only by `make_block()`);
  `tx_query` reports height -1 until then, then the code and log; every included
  transaction uses up its nonce, a failed one is rolled back;
- broadcast sync modes of each version (v0.9: async, sync, commit; v0.10: accept,
  commit), `tx_query`, `account`, `chain_info`, `health`, `estimate_price` ("0"),
  `schema` (v0.9), `query` (v0.9 SQL; v0.10 `info.actions` and `ns.table` SELECTs) and
  `call` for view actions;
- databases deployed through the Python API (`deploy`): v0.9 addresses them by
  dbid(owner, name), v0.10 by namespace = name; owner-only actions (`public=False`)
  refuse other signers with kwild's message;
- faults switched at runtime: down (the port closes: connection refused), restart
  (down, and the mempool is lost), slow (every answer delayed), reject (the next N
  broadcasts fail with a chosen error).

- v0.9 remote extensions (`extension_endpoints`): dialed at start (Name, ListMethods),
  initialized on deploy and at start for stored databases, and called with `Execute`
  while an action runs inside block execution, as kwild v0.9 does (`kwil_node_chain`
  cites the kwil-db files); `make_block(replays=n)` re-executes a block before
  committing it, as a node that crashed mid-block does, and `replay_chain()` re-executes
  every committed block from an empty state, as a node syncing from genesis does.

What it does not model: consensus, validators, peers, gas, fees and balances (gas is
off, every price is "0"), Kuneiform (an action is a SQLite SQL body with `$name`
parameters, `@caller`, `@txid`, `@height` and `alias.method(...)` extension calls),
deploy/drop/transfer transactions, procedures, private-mode call authentication, and
kwild's SQL dialect.

Run it alone with `python -m kwil_sync.testing.kwil_node --version v0.9 --port N`;
`standin.*` methods (deploy, rows, make_block, fault) drive it from another process.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from kwil_sync.kwil.errors import RPC_TX_INTERNAL
from kwil_sync.testing.kwil_node_chain import Chain
from kwil_sync.testing.kwil_node_ext import ExtensionHub
from kwil_sync.testing.kwil_node_http import Faults, HttpFront
from kwil_sync.testing.kwil_node_rpc import RpcFault, UserService
from kwil_sync.testing.kwil_node_schema import ActionDef, ExtensionUse, Schema
from kwil_sync.testing.procs import free_port

__all__ = ["ActionDef", "ExtensionUse", "KwilNodeStandIn", "Schema"]

class KwilNodeStandIn:
    """One running stand-in node (one kwild version). Use `start()`; stop with `stop()`."""

    def __init__(self, version: str, chain_id: str, block_interval: float, port: int,
                 data_dir: Path | None, extension_endpoints: list[str] | None = None) -> None:
        if version not in ("v0.9", "v0.10"):
            raise ValueError(f"version must be 'v0.9' or 'v0.10', got {version!r}")
        if extension_endpoints and version != "v0.9":
            raise ValueError("remote extensions exist up to kwild v0.9 only")
        self.version, self.chain_id, self.port = version, chain_id, port
        self.url = f"http://127.0.0.1:{port}"
        self.block_interval = block_interval
        hub = ExtensionHub(extension_endpoints) if extension_endpoints else None
        self.chain = Chain(version, chain_id, data_dir, hub)
        self._stopped = threading.Event()
        self.service = UserService(self.chain)
        self.faults = Faults()
        self.method_counts: Counter[str] = Counter()  # which RPC methods clients used
        self._http = HttpFront(port, self.dispatch, self._waits, self.faults)

    @classmethod
    def start(cls, *, version: str = "v0.10", chain_id: str = "kwil-standin",
              block_interval: float = 0.05, port: int | None = None,
              data_dir: str | Path | None = None,
              extension_endpoints: list[str] | None = None) -> KwilNodeStandIn:
        """Start serving on 127.0.0.1 (a free port unless given) and making blocks.

        Args:
            extension_endpoints: v0.9 remote extensions (`host:port`), dialed now: each
                must answer, as kwild requires.
        """
        node = cls(version, chain_id, block_interval, port or free_port(),
                   Path(data_dir) if data_dir else None, extension_endpoints)
        node.come_up()
        if node.chain.extensions is None:
            node._http.every(lambda: node.block_interval, node.chain.make_block)
        else:  # an extension may read from this node while a block waits on it
            threading.Thread(target=node._make_blocks, name="kwil-standin-blocks",
                             daemon=True).start()
        return node

    def _make_blocks(self) -> None:
        while not self._stopped.wait(self.block_interval or 0.05):
            if self.block_interval > 0:
                self.chain.make_block()

    # -- the chain --------------------------------------------------------------------

    def deploy(self, owner_address: str, name: str, schema: Schema) -> str:
        """Create a database owned by `owner_address`; returns its dbid or namespace."""
        return self.chain.deploy(owner_address, name, schema)

    def rows(self, target: str, sql: str, params: dict[str, Any] | None = None,
             ) -> list[dict[str, Any]]:
        """Read committed rows of a database with SQLite SQL (tests' view of the data)."""
        with self.chain.lock:
            database = self.chain.databases.get(target)
            if database is None:
                raise KeyError(f"no database {target!r} on this stand-in")
            return database.select(sql, params)

    def make_block(self, replays: int = 0) -> int:
        """Make a block now (executed `replays` extra times first, each rolled back, as
        after a crash); returns how many transactions it executed."""
        return self.chain.make_block(replays)

    def replay_chain(self) -> int:
        """Re-execute every committed block from an empty state, as a syncing node does
        (extensions get every call again); returns how many transactions ran."""
        return self.chain.replay_chain()

    # -- faults -----------------------------------------------------------------------

    def go_down(self) -> None:
        """Close the port: clients get connection refused until `come_up()`."""
        self._http.down()

    def come_up(self) -> None:
        """Listen again on the same port (blocks were made meanwhile, as on a live chain)."""
        self._http.up()

    def restart(self, down_for: float = 0.0) -> int:
        """Go down, lose the mempool as a restarted kwild does, come back after `down_for`.

        Returns how many pending transactions were lost.
        """
        self.go_down()
        lost = self.chain.drop_mempool()
        if down_for > 0:
            threading.Timer(down_for, self.come_up).start()
        else:
            self.come_up()
        return lost

    def set_delay(self, seconds: float) -> None:
        """Delay every answer by `seconds` (0 to stop)."""
        self.faults.delay = max(0.0, seconds)

    def reject_broadcasts(self, count: int, *, code: int = RPC_TX_INTERNAL,
                          message: str = "failed to broadcast transaction",
                          data: Any = None) -> None:
        """Fail the next `count` broadcasts with this JSON-RPC error (nothing is queued)."""
        with self.faults.lock:
            self.faults.rejections = [RpcFault(code, message, data) for _ in range(count)]

    # -- RPC --------------------------------------------------------------------------

    def _waits(self, method: str, params: Any) -> bool:
        """Requests that may block: commit-mode broadcasts and the `standin.*` controls."""
        commit = 2 if self.version == "v0.9" else 1
        return method.startswith("standin.") or (
            method == "user.broadcast" and isinstance(params, dict)
            and params.get("sync") == commit)

    def dispatch(self, method: str, params: Any) -> Any:
        self.method_counts[method] += 1
        if method.startswith("standin."):
            return self._admin(method, params)
        if method == "user.broadcast":
            rejection = self.faults.take_rejection()
            if rejection is not None:
                raise rejection
        return self.service.handle(method, params)

    def _admin(self, method: str, params: dict[str, Any]) -> Any:
        if method == "standin.deploy":
            schema = Schema.from_json(json.dumps(params["schema"]))
            return {"target": self.deploy(params["owner"], params["name"], schema)}
        if method == "standin.rows":
            return {"rows": self.rows(params["target"], params["sql"], params.get("params"))}
        if method == "standin.make_block":
            return {"txs": self.make_block(int(params.get("replays", 0))),
                    "height": self.chain.height}
        if method == "standin.replay_chain":
            return {"txs": self.replay_chain()}
        if method == "standin.fault":
            if "delay" in params:
                self.set_delay(float(params["delay"]))
            if "reject" in params:
                self.reject_broadcasts(int(params["reject"]))
            if "down_for" in params:  # come back by itself: nobody can call us while down
                self.go_down()
                threading.Timer(float(params["down_for"]), self.come_up).start()
            if "restart_after" in params:
                threading.Timer(float(params["restart_after"]), self.restart).start()
            return {}
        raise RpcFault(-32601, "unknown method")

    def stop(self) -> None:
        """Stop serving and making blocks, and close the databases."""
        self._stopped.set()
        self._http.close()
        self.chain.close()

    def __enter__(self) -> KwilNodeStandIn:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run a stand-in until interrupted; prints one JSON line with its URL when ready."""
    parser = argparse.ArgumentParser(prog="python -m kwil_sync.testing.kwil_node",
                                     description="kwild JSON-RPC stand-in (not kwild)")
    parser.add_argument("--version", choices=["v0.9", "v0.10"], default="v0.10")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--chain-id", default="kwil-standin")
    parser.add_argument("--block-interval", type=float, default=0.05)
    parser.add_argument("--data-dir", default=None,
                        help="keep chain state and databases here (default: in memory)")
    parser.add_argument("--extension-endpoint", action="append", default=[],
                        metavar="HOST:PORT", help="a v0.9 remote extension (kwild's "
                        "--app.extension-endpoints); repeatable; it must be running")
    args = parser.parse_args(argv)
    node = KwilNodeStandIn.start(version=args.version, chain_id=args.chain_id,
                                 block_interval=args.block_interval, port=args.port,
                                 data_dir=args.data_dir,
                                 extension_endpoints=args.extension_endpoint or None)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(json.dumps({"url": node.url, "version": node.version, "chain_id": node.chain_id}),
          flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()


if __name__ == "__main__":
    main()
