"""kwil_sync.provenance: `until=height:N`, where a height cuts a page of rows (verified
records only), and the per-provider tally a restore reports."""

from __future__ import annotations

import pytest

from kwil_sync.arweave.ans104 import EthereumSigner
from kwil_sync.kwil import dbid
from kwil_sync.provenance import (
    ProvenanceTally,
    UntilHeight,
    first_past_height,
    parse_until_height,
)
from kwil_sync.records import SyncRecord, TxRef, build_record

A, B = EthereumSigner("88" * 32), EthereumSigner("99" * 32)
DB = dbid(A.address, "chat")


def record(signer: EthereumSigner, n: int, height: int | None) -> SyncRecord:
    tx = None if height is None else TxRef(f"{n:064x}", height, 0)
    return SyncRecord.from_item(build_record(
        signer, original_dbid=DB, local_dbid=DB, local_db_name="chat", action_name="a",
        data=[("$n", str(n))], sequence=n, prev_action_id="-" if n == 1 else "p",
        created_at_ms=n, tx=tx))


def test_parse_until_height() -> None:
    assert parse_until_height("height:1200") == UntilHeight(1200)
    assert parse_until_height("1700000000000") is None  # a time
    assert parse_until_height("2026-11-01T00:00:00Z") is None
    assert parse_until_height("aB3_action-id") is None
    for bad in ("height:0", "height:x", "height:-3", "height:"):
        with pytest.raises(ValueError, match="height:N"):
            parse_until_height(bad)


def test_the_first_row_past_the_height_counts_only_verified_records() -> None:
    rows = [record(A, 1, 10), record(A, 2, None), record(A, 3, 12), record(A, 4, 13)]
    ids = ["forged", *(r.tx_id for r in rows)]  # a row whose record did not verify
    assert first_past_height(ids, rows, UntilHeight(11)) == 3
    assert first_past_height(ids, rows, UntilHeight(13)) is None
    assert first_past_height(ids, rows, UntilHeight(9)) == 1


def test_the_tally_reports_heights_and_untied_records_per_provider() -> None:
    tally = ProvenanceTally()
    for r in (record(A, 1, 10), record(A, 2, 12), record(A, 3, None), record(B, 1, 4)):
        tally.add(r)
    assert tally.untied == 1
    assert tally.to_dict() == {
        A.address: {"tied": 2, "untied": 1, "first_height": 10, "last_height": 12,
                    "last_tx_hash": f"{2:064x}"},
        B.address: {"tied": 1, "untied": 0, "first_height": 4, "last_height": 4,
                    "last_tx_hash": f"{1:064x}"},
    }
