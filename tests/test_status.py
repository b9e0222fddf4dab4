"""`kwil-sync status`: ledger counts and follow cursors with their lag, on a real Prefect server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kwil_sync.arweave.ans104 import EthereumSigner
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.kwil import dbid
from kwil_sync.ledger import Ledger
from kwil_sync.records import build_record
from kwil_sync.sources import Position
from kwil_sync.testing.bundler import BundlerStandIn

PROVIDER = EthereumSigner("5a" * 32)
DB = dbid(PROVIDER.address, "status_db")


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


def test_status_shows_ledger_counts_and_follow_lag(prefect_api: str, tmp_path: Path) -> None:
    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.cli.status import collect_status
    from kwil_sync.flows.follow import save_cursor

    with BundlerStandIn.start(data_dir=tmp_path / "bundler", bundle_interval=0) as bundler:
        records, prev = [], "-"
        for seq in range(1, 6):
            item = build_record(PROVIDER, original_dbid=DB, local_dbid=DB,
                                local_db_name="status_db", action_name="post",
                                data=[("$id", str(seq))], sequence=seq, prev_action_id=prev,
                                created_at_ms=seq)
            prev = str(item.tag("Action-Id"))
            records.append(item)
        receipts = IrysUploader(bundler.url).upload(records)
        ArweaveGateway(graphql_url=f"{bundler.url}/graphql", dialect="irys",
                       data_url=bundler.url).save("status-gateway", overwrite=True)
        stamps = sorted(int(r.timestamp_ms or 0) for r in receipts)  # arrival order
        second = stamps[1]
        save_cursor(DB, "target-db", "status-gateway", Position(None, second, None))

        ledger_path = tmp_path / "ledger.sqlite"
        with Ledger(ledger_path) as ledger:
            ledger.intend("chain/target-db", "a1", "hash1", 1)
            ledger.complete("chain/target-db", "a1", code=0, height=3)
            ledger.quarantine("chain/target-db", "item-x", "untrusted-signer", "forged")

        status = collect_status(ledger=str(ledger_path))
    [target] = status["targets"]
    assert (target["target"], target["applied"], target["quarantined"]) == \
        ("chain/target-db", 1, 1)
    [cursor] = status["follow"]
    assert (cursor["database"], cursor["target"]) == (DB, "target-db")
    assert cursor["lag_records"] == 3 and cursor["lag_seconds"] >= 0
    assert status["errors"] == []


def test_status_command_without_anything_says_so(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "kwil_sync.cli", "status", "--json",
                           "--ledger", str(tmp_path / "none.sqlite")],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["targets"] == [] and any("no ledger" in e for e in status["errors"])
    assert not (tmp_path / "none.sqlite").exists()
