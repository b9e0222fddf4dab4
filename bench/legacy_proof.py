"""What proving a 2023 record from its own bytes costs, per record.

Set-up (not timed): `--records` 2023 records written under Node exactly as the 2023
extension did (random anchors, arbundles), uploaded through the Irys-style bundler
stand-in and bundled into arlocal as one bundle. arlocal lists them without their
anchors, so every one needs a proof from its bytes.

Timed: the rows are read page by page (100, as the replay reads them) and each page's
items are proven with `kwil_sync.proofs.ByteProver.prove_many` (locate, the block's
bundles, the bundle header, the items, each signature checked), with a fresh prover per
round so nothing is cached across rounds. `legacy_proof_ms_per_record` is the best
round's time over the records (the machine may be shared); every round is reported.

`measure_legacy_proofs(gw)` runs it against an arlocal already running (bench/restore.py
calls it); run alone: `.venv/bin/python bench/legacy_proof.py [--records 500]`, which
starts its own arlocal and prints one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/legacy_proof.py`: make `kwil_sync` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwil_sync.arweave.ans104 import DataItem  # noqa: E402
from kwil_sync.arweave.graphql import GraphQLPager  # noqa: E402
from kwil_sync.arweave.signers import b64url_decode  # noqa: E402
from kwil_sync.arweave.uploaders import IrysUploader  # noqa: E402
from kwil_sync.proofs import ByteProver  # noqa: E402
from kwil_sync.testing.arlocal import Arlocal, node_dir, wait_indexed  # noqa: E402
from kwil_sync.testing.bundler import BundlerStandIn  # noqa: E402

__all__ = ["measure_legacy_proofs"]

LEGACY_KEY = "5e" * 32


def _legacy_items(count: int) -> tuple[str, list[DataItem]]:
    spec = {"eth_key": LEGACY_KEY, "local_db_name": "bench_proofs", "records": [
        {"action_name": "insert_message_sync", "anchor": True,
         "data": [["$id", f"b{i}"], ["$message", f"hello {i}"], ["$original_caller", "0x1"]]}
        for i in range(count)]}
    made = json.loads(subprocess.run(["node", "oracle_legacy_record.mjs"], cwd=node_dir(),
                                     input=json.dumps(spec), capture_output=True, text=True,
                                     timeout=300, check=True).stdout)
    return made["original_dbid"], [DataItem.parse(b64url_decode(r["raw"]))
                                   for r in made["records"]]


def measure_legacy_proofs(gw: Arlocal, *, records: int = 500, rounds: int = 3) -> dict[str, Any]:
    """Put `records` anchored 2023 records on `gw`, then time their proofs from bytes.

    Returns:
        `legacy_proof_ms_per_record` (best round), `legacy_proof_ms_per_record_rounds`,
        `legacy_proof_records`, `legacy_proof_setup_s`.

    Raises:
        RuntimeError: If a record could not be proven (the figure would be meaningless).
    """
    mark = time.perf_counter()
    dbid, items = _legacy_items(records)
    with tempfile.TemporaryDirectory(prefix="bench-proofs-") as tmp, \
            BundlerStandIn.start(gw.url, data_dir=Path(tmp), bundle_interval=0) as bundler:
        IrysUploader(bundler.url, "ethereum").upload(items)
        bundler.flush()
    wait_indexed(gw.url, dbid, records, timeout=600)
    pages = [page.records for page in GraphQLPager(f"{gw.url}/graphql", "gateway").pages(
        {"Original-DBID": [dbid]}, order="ASC")]
    setup = time.perf_counter() - mark
    times: list[float] = []
    for _ in range(rounds):
        prover = ByteProver(f"{gw.url}/graphql", gw.url)
        start = time.perf_counter()
        proven = 0
        for rows in pages:
            proven += sum(isinstance(p, DataItem) for p in prover.prove_many(rows).values())
        times.append(time.perf_counter() - start)
        prover.close()
        if proven != records:
            raise RuntimeError(f"only {proven} of {records} records were proven from bytes")
    per_record = [round(1000 * t / records, 3) for t in times]
    return {"legacy_proof_ms_per_record": min(per_record),
            "legacy_proof_ms_per_record_rounds": per_record,
            "legacy_proof_records": records, "legacy_proof_setup_s": round(setup, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Arlocal.start() as gw:
        print(json.dumps(measure_legacy_proofs(gw, records=args.records, rounds=args.rounds)))


if __name__ == "__main__":
    main()
