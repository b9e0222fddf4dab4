"""The restore bench's parts: a messages log on arlocal, fresh Kwil stand-ins, and runs.

- `MessagesLog` signs version 2 records of the messages workload's private twin
  `post_message_sync` (one provider key, unique post ids, sequence after sequence) and
  puts them on arlocal with `DirectL1Uploader`, one bundle (one mined block) per 1,000
  records, so the gateway lists them in log order by block height.
- `NodeProcess` runs a Kwil node stand-in in its own process (block interval 50 ms by
  default) with the messages database deployed, owned by the key that replays.
- `measure_floor` reads every record and document with no apply; `run_core` restores
  with the core `Replayer` (no Prefect); `memory_child` is one restore in a child
  process (the flow or the core) that reports its own peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import EthereumSigner
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.uploaders import DirectL1Uploader
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.dbid import dbid
from kwil_sync.ledger import Ledger
from kwil_sync.records import FIRST_PREV_ACTION_ID, MAX_DOCUMENT_BYTES, build_record
from kwil_sync.replay import Replayer
from kwil_sync.sources import GraphQLSource, Start
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.procs import free_port, stop_process
from kwil_sync.testing.stack import standin_call
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import TrustPolicy

__all__ = ["BUNDLE_RECORDS", "DB_NAME", "CpuMeter", "MessagesLog", "NodeProcess", "RunResult",
           "action_ids_in_order", "measure_floor", "memory_child", "run_core", "save_blocks",
           "start_arlocal"]

BUNDLE_RECORDS = 1000
PAGE_SIZE = 100  # the GraphQLPager default the blocks use
CONCURRENCY = 16  # ArweaveGateway.concurrency's default
DB_NAME = "messages"
T0_MS = 1_700_000_000_000
_BODIES = ["hello", "gm", "ünïcode ✓", "quote ' and \" marks", "a; DROP TABLE x"]


class CpuMeter:
    """CPU seconds used meanwhile by this process (all threads) and by other processes.

    On a shared machine wall-clock rates move with the load; CPU per action does not.
    """

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self._start = self._read()

    @staticmethod
    def _process_seconds(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime+stime

    def _read(self) -> dict[str, float]:
        now = {"bench": time.process_time()}
        now.update({name: self._process_seconds(pid) for name, pid in self.pids.items()})
        return now

    def per_action_ms(self, actions: int, prefix: str) -> dict[str, float]:
        """`<prefix>_cpu_ms_per_action_<process>` for each process since the start."""
        end = self._read()
        return {f"{prefix}_cpu_ms_per_action_{name}": round((end[name] - self._start[name])
                                                           * 1000 / actions, 2)
                for name in end}


def start_arlocal() -> Arlocal:
    """A fresh arlocal whose database lives in RAM (/dev/shm) when there is one.

    arlocal indexes a bundle with one autocommitted SQLite insert per item and per tag
    (16 per record here); on disk each is an fsync, which makes putting 20,000 records
    there take most of an hour. Only the set-up is affected: kwil-sync's ledgers stay
    on disk.
    """
    saved = tempfile.tempdir
    if os.path.isdir("/dev/shm"):
        tempfile.tempdir = "/dev/shm"
    try:
        gateway = Arlocal.start()
    finally:
        tempfile.tempdir = saved
    gateway.http.timeout = httpx.Timeout(600)  # mining a 1,000-item bundle takes a while
    return gateway


class MessagesLog:
    """One provider's log of `post_message_sync` records on a fresh arlocal.

    Args:
        gateway: The arlocal the records are put on.
        provider_key_hex: The original provider's key (signs every record).
        author: The address recorded as each post's author (`@caller` on the original).
    """

    def __init__(self, gateway: Arlocal, provider_key_hex: str, author: str) -> None:
        self.gateway, self.author = gateway, author
        self.signer = EthereumSigner(provider_key_hex)
        self.original_dbid = dbid(self.signer.address, DB_NAME)
        self.count = 0
        self._prev = FIRST_PREV_ACTION_ID
        self._wallet = ArweaveSigner.generate()
        gateway.mint(self._wallet.address)

    def __repr__(self) -> str:
        return f"MessagesLog({self.original_dbid!r}, {self.count} records)"

    def extend(self, total: int) -> None:
        """Sign and upload records until the log holds `total`, mining after each bundle."""
        uploader = DirectL1Uploader(self.gateway.url, self._wallet)
        try:
            while self.count < total:
                size = min(BUNDLE_RECORDS, total - self.count)
                uploader.upload([self._next() for _ in range(size)])
                self.gateway.mine()
        finally:
            uploader.close()

    def _next(self) -> Any:
        self.count += 1
        n = self.count
        data = [("$id", str(n)), ("$body", f"message {n}: {_BODIES[n % len(_BODIES)]}"),
                ("$author", self.author), ("$created_at", str(T0_MS + n))]
        item = build_record(self.signer, original_dbid=self.original_dbid,
                            local_dbid=self.original_dbid, local_db_name=DB_NAME,
                            action_name="post_message_sync", data=data, sequence=n,
                            prev_action_id=self._prev, created_at_ms=T0_MS + n)
        self._prev = str(item.tag("Action-Id"))
        return item


class NodeProcess:
    """A Kwil node stand-in in its own process, with the messages database deployed.

    Args:
        owner: The address that owns the database (the replaying key).
        version: "v0.9" or "v0.10".
        block_interval: Seconds between blocks.
    """

    def __init__(self, owner: str, *, version: str = "v0.9", chain_id: str = "bench-restore",
                 block_interval: float = 0.05) -> None:
        self.version, self.chain_id = version, chain_id
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kwil_sync.testing.kwil_node", "--version", version,
             "--port", str(free_port()), "--chain-id", chain_id, "--block-interval",
             str(block_interval)], stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the Kwil stand-in exited before it was ready")
            self.url: str = json.loads(line)["url"]
            schema = json.loads(MESSAGES_SCHEMA.to_json())
            self.target = str(standin_call(self.url, "deploy", owner=owner, name=DB_NAME,
                                           schema=schema)["target"])
        except BaseException:
            stop_process(self.process)
            raise

    def __repr__(self) -> str:
        return f"NodeProcess({self.url!r}, target={self.target!r})"

    def rows(self) -> list[dict[str, Any]]:
        """Every message on the target, by id."""
        return self._select("SELECT id, body, author, created_at FROM messages ORDER BY id")

    def count(self) -> int:
        return int(self._select("SELECT COUNT(*) AS n FROM messages")[0]["n"])

    def _select(self, sql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = standin_call(self.url, "rows", target=self.target,
                                                  sql=sql)["rows"]  # type: ignore[assignment]
        return rows

    def height(self) -> int:
        answer = httpx.post(f"{self.url}/rpc/v1", timeout=10, json={
            "jsonrpc": "2.0", "id": 1, "method": "user.chain_info", "params": {}}).json()
        return int(answer["result"]["block_height"])

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RunResult:
    """One kwil-sync restore: wall seconds, its report (as a dict), blocks it took."""

    seconds: float
    report: dict[str, Any]
    blocks: int

    @property
    def actions_per_s(self) -> float:
        return float(self.report["records"]) / self.seconds


def _source(gateway_url: str, original_dbid: str) -> GraphQLSource:
    return GraphQLSource(GraphQLPager(f"{gateway_url}/graphql", "gateway", page_size=PAGE_SIZE),
                         original_dbid)


def _documents(gateway_url: str) -> GatewayDataClient:
    return GatewayDataClient(gateway_url, max_bytes=MAX_DOCUMENT_BYTES, concurrency=CONCURRENCY)


def action_ids_in_order(gateway_url: str, original_dbid: str) -> list[str]:
    """The log's Action-Ids in the order the gateway lists them."""
    return [str(r.tag("Action-Id")) for page in _source(gateway_url, original_dbid).pages(Start())
            for r in page.records]


def measure_floor(gateway_url: str, original_dbid: str, records: int,
                  arlocal_pid: int) -> dict[str, Any]:
    """Page and fetch every document, no apply: streamed across pages, then page by page.

    Raises:
        RuntimeError: A document failed, or the log does not hold `records` records.
    """
    out: dict[str, Any] = {}
    for how in ("streamed", "per_page"):
        mark, count, size = time.perf_counter(), 0, 0
        cpu = CpuMeter(arlocal=arlocal_pid)
        pages = _source(gateway_url, original_dbid).pages(Start())
        with _documents(gateway_url) as docs:
            if how == "streamed":
                results = list(docs.fetch_many(r.id for p in pages for r in p.records))
            else:
                results = [x for p in pages for x in docs.fetch_many([r.id for r in p.records])]
        for result in results:
            if result.error is not None or result.data is None:
                raise RuntimeError(f"floor: document {result.id} failed: {result.error}")
            count, size = count + 1, size + len(result.data)
        seconds = time.perf_counter() - mark
        if count != records:
            raise RuntimeError(f"floor: read {count} documents, the log holds {records}")
        key = "floor" if how == "streamed" else "floor_per_page"
        if how == "streamed":
            out.update(cpu.per_action_ms(count, key))
        out[f"{key}_actions_per_s"] = round(count / seconds, 1)
        out[f"{key}_seconds"] = round(seconds, 2)
        out["document_bytes_avg"] = round(size / count, 1)
    return out


def run_core(gateway_url: str, original_dbid: str, node_url: str, version: str, target: str,
             key_hex: str, ledger_path: Path, *, until: str | None = None) -> RunResult:
    """Restore with the core `Replayer`, wired as `flows.common.build_pipeline` does."""
    mark = time.perf_counter()
    client = KwilClient(node_url, version=version)
    start_height = client.chain_info().height
    applier = KwilApplier(client, key_hex, target)
    ledger = Ledger(ledger_path)
    try:
        with _documents(gateway_url) as docs:
            replayer = Replayer(_source(gateway_url, original_dbid), docs, applier, ledger,
                                TrustPolicy(original_dbid),
                                target_id=f"{client.chain_info().chain_id}/{target}")
            report = replayer.run(until=until)
    finally:
        ledger.close()
    seconds = time.perf_counter() - mark
    blocks = client.chain_info().height - start_height
    client.close()
    return RunResult(seconds, report.to_dict(), blocks)


def save_blocks(name: str, node: NodeProcess, gateway_url: str, key_hex: str) -> None:
    """Save `<name>-node` (KwilNode) and `<name>-gateway` (ArweaveGateway) blocks."""
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    KwilNode(rpc_url=node.url, version=node.version,  # type: ignore[arg-type]
             private_key=SecretStr(key_hex)).save(f"{name}-node", overwrite=True)
    ArweaveGateway(graphql_url=f"{gateway_url}/graphql", dialect="gateway",
                   data_url=gateway_url, concurrency=CONCURRENCY).save(f"{name}-gateway",
                                                                       overwrite=True)


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One restore in this (fresh) process; returns its rate and this process's peak RSS.

    `spec["mode"]` is "flow" (the restore flow, blocks `<name>-node`/`<name>-gateway`,
    Prefect server from PREFECT_API_URL) or "core" (the `Replayer`, no Prefect import).
    """
    mark, cpu = time.perf_counter(), time.process_time()
    if spec["mode"] == "flow":
        from kwil_sync.flows.restore import restore

        report = restore(spec["original_dbid"], spec["target"], node=f"{spec['name']}-node",
                         gateway=f"{spec['name']}-gateway", until=spec["until"],
                         ledger_path=spec["ledger"])
    else:
        report = run_core(spec["gateway_url"], spec["original_dbid"], spec["node_url"],
                          spec["version"], spec["target"], spec["key"], Path(spec["ledger"]),
                          until=spec["until"]).report
    seconds = time.perf_counter() - mark
    return {"applied": report["applied"], "records": report["records"],
            "actions_per_s": round(report["records"] / seconds, 1),
            "cpu_ms_per_action": round((time.process_time() - cpu) * 1000 / report["records"], 2),
            "peak_rss_mb": round(_vm_hwm_kb() / 1024, 1)}


def _vm_hwm_kb() -> int:
    """This process's peak resident set size (VmHWM), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")
