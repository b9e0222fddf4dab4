"""Replica verification of a 1,000,000-row table with 3 differences, against a full dump.

Two kwild stand-ins run as their own processes (so each digests on its own core, as
two providers would), each holding the same `--rows`-row table; then one row is
deleted on the replica (missing), one added (extra) and one changed (different).

Loading: a million rows through signed transactions would take the stand-in about
half an hour, so the rows are written straight into the stand-ins' SQLite files while
they are stopped (a testing-only path: the database is deployed through the node
first, then filled, copied for the replica, and both nodes started on their folders).

Then, in one run:
- verify: `kwil_sync.replica.verify_replica` through `user.query` only (range digests
  computed by the nodes, narrowed into the ranges that differ);
- full dump: every row fetched from both nodes through `user.query` (keyset pages of
  10,000, both nodes at once) and compared in the client, the obvious way.
Both must find exactly the 3 keys. They run `--rounds` times (2), interleaved, and the
best of each counts, as other work on a shared machine disturbs single runs. Prints
progress, then one JSON object as the last line: `rows`, `queries` (verify's
`user.query` calls, both nodes), `seconds` (verify), `peak_rss_mb` (this process after
the first verify, before any dump), `ratio_to_full_dump` (verify's seconds over the
dump's), with the dump's figures and every run's time.
Goals: queries under 1% of the rows, ratio_to_full_dump <= 0.2.
Run: `.venv/bin/python bench/verify.py [--rows 1000000] [--version v0.10]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from kwil_sync.replica import QueryNode, verify_replica
from kwil_sync.testing.procs import free_port, stop_process, wait_until

OWNER = "0x" + "5e" * 20
SCHEMA = {"tables": ["CREATE TABLE entries (id INTEGER PRIMARY KEY, body TEXT NOT NULL, "
                     "author TEXT NOT NULL, created_at INTEGER NOT NULL)"], "actions": []}
MISSING, CHANGED = 333_333, 777_777


def start_node(version: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kwil_sync.testing.kwil_node", "--version", version,
         "--port", str(port), "--data-dir", str(data_dir), "--block-interval", "1"],
        stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.post(f"{url}/rpc/v1", json={"jsonrpc": "2.0", "id": 1,
                                                         "method": "user.ping", "params": {}}
                                  ).status_code == 200, timeout=30, what="stand-in",
               process=process)
    return process, url


def load(version: str, root: Path, rows: int) -> tuple[Path, Path, str]:
    """Deploy through a node, fill its SQLite file directly, copy it for the replica."""
    source_dir, replica_dir = root / "source", root / "replica"
    source_dir.mkdir()
    process, url = start_node(version, source_dir)
    answer = httpx.post(f"{url}/rpc/v1", json={"jsonrpc": "2.0", "id": 1,
                                               "method": "standin.deploy", "params": {
                                                   "owner": OWNER, "name": "bench",
                                                   "schema": SCHEMA}}, timeout=30).json()
    target = answer["result"]["target"]
    stop_process(process)
    path = source_dir / f"db-{target}.sqlite"
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", (
            (i, f"message number {i}: {'lorem ipsum ' * (i % 7 + 1)}", f"0x{i % 97:040x}",
             1_700_000_000_000 + i) for i in range(1, rows + 1)))
    shutil.copytree(source_dir, replica_dir)
    with sqlite3.connect(replica_dir / f"db-{target}.sqlite") as db:
        db.execute("DELETE FROM entries WHERE id = ?", (MISSING,))
        db.execute("UPDATE entries SET body = body || '!' WHERE id = ?", (CHANGED,))
        db.execute("INSERT INTO entries VALUES (?, 'not on the source', 'x', 0)", (rows + 10,))
    return source_dir, replica_dir, target


def full_dump(source: QueryNode, replica: QueryNode, page: int = 10_000) -> dict[str, Any]:
    """Fetch every row of both nodes by keyset pages and compare them in the client."""
    found: dict[str, list[int]] = {"missing": [], "extra": [], "different": []}
    last: list[int] = [-1, -1]

    def fetch(i: int, node: QueryNode) -> list[dict[str, Any]]:
        return node.select(f"SELECT id, body, author, created_at FROM "
                           f"{node.table_ref('entries')} WHERE id > {last[i]} "
                           f"ORDER BY id LIMIT {page}")

    pending: list[list[dict[str, Any]]] = [[], []]
    done = [False, False]
    with ThreadPoolExecutor(2) as pool:
        while not all(done) or any(pending):
            need = [i for i in range(2) if not done[i] and len(pending[i]) < page]
            for i, rows in zip(need, pool.map(lambda i: fetch(i, (source, replica)[i]), need),
                               strict=True):
                if len(rows) < page:
                    done[i] = True
                if rows:
                    last[i] = int(rows[-1]["id"])
                pending[i].extend(rows)
            _merge(pending, done, found)
    return found


def _merge(pending: list[list[dict[str, Any]]], done: list[bool],
           found: dict[str, list[int]]) -> None:
    """Compare what both sides hold up to the smaller last key fetched."""
    a, b = pending
    limit = min([int(p[-1]["id"]) for i, p in enumerate(pending) if p and not done[i]],
                default=None)
    i = j = 0
    while i < len(a) or j < len(b):
        ka = int(a[i]["id"]) if i < len(a) else None
        kb = int(b[j]["id"]) if j < len(b) else None
        low = min(k for k in (ka, kb) if k is not None)
        if limit is not None and low > limit:
            break
        if ka == kb:
            if a[i] != b[j]:
                found["different"].append(low)
            i, j = i + 1, j + 1
        elif kb is None or (ka is not None and ka < kb):
            found["missing"].append(low)
            i += 1
        else:
            found["extra"].append(low)
            j += 1
    pending[0], pending[1] = a[i:], b[j:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--version", choices=["v0.9", "v0.10"], default="v0.10")
    parser.add_argument("--rounds", type=int, default=2,
                        help="verify and dump this many times, interleaved; the best of each "
                             "counts (the machine is shared)")
    args = parser.parse_args()
    expected = {"missing": [[MISSING]], "extra": [[args.rows + 10]], "different": [[CHANGED]]}
    with tempfile.TemporaryDirectory(prefix="kwil-sync-bench-verify-") as tmp:
        began = time.monotonic()
        source_dir, replica_dir, target = load(args.version, Path(tmp), args.rows)
        print(f"loaded {args.rows} rows in {time.monotonic() - began:.1f} s", flush=True)
        (pa, url_a), (pb, url_b) = (start_node(args.version, d) for d in (source_dir,
                                                                          replica_dir))
        verify_runs: list[float] = []
        dump_runs: list[float] = []
        exact_every_round = True
        try:
            for round_ in range(args.rounds):
                source, replica = QueryNode(url_a, target), QueryNode(url_b, target)
                report = verify_replica(source, replica)
                if round_ == 0:
                    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                table = report.tables[0]
                got = {k: getattr(table, k) for k in expected}
                exact_every_round &= got == expected and report.drift_keys == 3
                verify_runs.append(report.seconds)
                print(f"verify: {report.status}, {got}, {report.queries} queries, "
                      f"{report.seconds:.2f} s", flush=True)
                dump_began = time.monotonic()
                dumped = full_dump(QueryNode(url_a, target), QueryNode(url_b, target))
                dump_runs.append(time.monotonic() - dump_began)
                print(f"full dump: {dumped}, {dump_runs[-1]:.2f} s", flush=True)
        finally:
            stop_process(pa)
            stop_process(pb)
    print(json.dumps({
        "rows": args.rows, "version": args.version, "found_exactly_3": exact_every_round,
        "queries": report.queries, "queries_per_row_pct": round(100 * report.queries /
                                                                args.rows, 4),
        "seconds": round(min(verify_runs), 3), "peak_rss_mb": round(peak_mb, 1),
        "full_dump_seconds": round(min(dump_runs), 3),
        "full_dump_found_3": dumped == {k: [v[0][0]] for k, v in expected.items()},
        "ratio_to_full_dump": round(min(verify_runs) / min(dump_runs), 4),
        "verify_runs_s": [round(x, 3) for x in verify_runs],
        "full_dump_runs_s": [round(x, 3) for x in dump_runs],
        "load_average": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
