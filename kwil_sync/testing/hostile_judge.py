"""Judging a replay of the hostile corpus: what a Kwil node stand-in executed, against
the honest calls and the quarantine the corpus expects.

`post_bundles` puts a corpus on arlocal; `executions` reads what a stand-in (started with
a data dir) executed; `judge` compares that and the ledger's quarantine with the corpus.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.uploaders import DirectL1Uploader
from kwil_sync.kwil.payload import decode_action
from kwil_sync.kwil.tx import parse_tx
from kwil_sync.ledger import QuarantineEntry
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.hostile import Corpus

__all__ = ["Judgement", "Tally", "call_key", "executions", "judge", "post_bundles", "tally"]


def call_key(action: str, values: Iterable[Any]) -> str:
    """How a call is counted: lower-case action name and its values as strings."""
    return f"{action.lower()}{json.dumps([str(v) for v in values], ensure_ascii=False)}"


def post_bundles(arlocal: Arlocal, groups: Iterable[list[DataItem]]) -> None:
    """Post each group as one L1 bundle from a fresh funded wallet, mining after each, so
    later groups sit in later blocks (and later pages)."""
    wallet = ArweaveSigner.generate(2048)
    arlocal.mint(wallet.address)
    uploader = DirectL1Uploader(arlocal.url, wallet)
    try:
        for group in groups:
            if group:
                uploader.upload(group)
                arlocal.mine()
    finally:
        uploader.close()


def executions(chain_dir: Path, target: str, version: str) -> dict[str, list[int]]:
    """Call key -> the result code of every transaction the stand-in executed on `target`.

    `chain_dir` is the stand-in's data dir (it keeps `chain.sqlite` there).
    """
    with sqlite3.connect(f"file:{chain_dir / 'chain.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT code, tx FROM txs").fetchall()
    found: dict[str, list[int]] = {}
    for code, text in rows:
        call = decode_action(version, parse_tx(json.loads(text)).payload)
        if call.target == target:
            for arguments in call.arguments or [[]]:
                key = call_key(call.action, [a["value"] for a in arguments])
                found.setdefault(key, []).append(int(code))
    return found


@dataclass
class Tally:
    """Honest calls against what a target executed. Goal: `duplicates`, `missing` and
    `unexpected` (executed calls no honest record asked for) empty."""

    expected: int
    applied: int  # honest calls executed exactly once, successfully
    duplicates: list[str]
    missing: list[str]
    unexpected: list[str]


def tally(calls: Iterable[tuple[str, list[str]]], executed: dict[str, list[int]]) -> Tally:
    """Count `calls` (action, values) in `executions(...)`."""
    good = {call_key(a, v) for a, v in calls}
    return Tally(
        expected=len(good), applied=sum(1 for k in good if executed.get(k) == [0]),
        duplicates=sorted(k for k, codes in executed.items() if len(codes) > 1),
        missing=sorted(k for k in good if 0 not in executed.get(k, [])),
        unexpected=sorted(k for k, codes in executed.items() if k not in good and 0 in codes))


@dataclass
class Judgement:
    """How a replay treated the corpus: the tally of its honest calls (`unexpected` are
    hostile records that executed) and the hostile kinds not quarantined as they must be."""

    tally: Tally
    wrong_reason: dict[str, tuple[str, str]]  # kind -> (expected, found or "")


def judge(corpus: Corpus, executed: dict[str, list[int]], quarantine: Iterable[QuarantineEntry],
          *, reaches: Iterable[str] = ("listed",)) -> Judgement:
    """Compare what the target executed and the ledger quarantined with the corpus.

    Args:
        corpus: The corpus replayed.
        executed: `executions(...)` of the target.
        quarantine: `Ledger.quarantined(key)` of the target.
        reaches: Which hostile records the source could see ("listed" for a gateway;
            add "refused" and "unlisted" for an in-memory source).
    """
    found: dict[str, set[str]] = {}  # item id -> reasons (the ledger keeps plain codes)
    for entry in quarantine:
        found.setdefault(entry.item_id, set()).add(entry.reason)
    wrong: dict[str, tuple[str, str]] = {}
    for h in corpus.hostile:
        reasons = found.get(h.item.id, set())
        if h.reach in set(reaches) and h.reason not in reasons:
            wrong[h.kind] = (h.reason.value, ",".join(sorted(reasons)))
    return Judgement(tally(corpus.good, executed), wrong)
