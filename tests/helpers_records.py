"""Helpers for the flow tests: signed messages records put onto arlocal as one bundle, the
stand-in's committed transactions, and one Prefect server shared by the test session.

Records are built as the shim builds them (`kwil_sync.records.build_record`, one
provider's sequence chain) but posted straight to arlocal as one L1 bundle and mined
once, so a test does not wait for the shim, the upload flow and the bundler.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.signers import ArweaveSigner, b64url_decode
from kwil_sync.arweave.uploaders import DirectL1Uploader
from kwil_sync.kwil.dbid import dbid
from kwil_sync.kwil.payload import decode_action
from kwil_sync.kwil.tx import parse_tx
from kwil_sync.records import FIRST_PREV_ACTION_ID, build_record
from kwil_sync.testing.arlocal import Arlocal, node_dir, wait_indexed
from kwil_sync.testing.stack import PROJECT_ROOT, LocalStack
from kwil_sync.testing.workload import MESSAGES_SCHEMA

__all__ = ["Call", "Provider", "committed_calls", "expected_rows", "messages_calls",
           "messages_schema", "mine", "node_legacy_records", "post_bundle", "prefect_cli",
           "put_on_arlocal", "session_stack", "sign_chain", "wait_indexed", "worker_polls"]

DB_NAME = "messages"
ROWS_SQL = "SELECT id, body, author, created_at FROM messages ORDER BY id"
T0_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Call:
    """One twin action as a record carries it: its name and named string values."""

    action: str
    data: list[tuple[str, str]]


@dataclass
class Provider:
    """A provider key and its database (dbid of the key and `name`)."""

    key_hex: str
    name: str = DB_NAME
    signer: EthereumSigner = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.signer = EthereumSigner(self.key_hex)

    @property
    def address(self) -> str:
        return self.signer.address

    @property
    def dbid(self) -> str:
        return dbid(self.address, self.name)


def messages_schema() -> dict[str, Any]:
    """The messages workload's schema as `standin.deploy` takes it."""
    return dict(json.loads(MESSAGES_SCHEMA.to_json()))


def messages_calls(count: int, author: str, *, seed: int = 11) -> list[Call]:
    """`count` twin actions: posts with unique ids, and some edits of earlier posts.

    Every call has distinct values (edits carry their own number), so every record gets
    its own Action-Id.
    """
    rng, calls, next_id = random.Random(seed), [], 1
    for n in range(1, count + 1):
        if next_id > 5 and rng.random() < 0.2:
            post = rng.randrange(1, next_id)
            calls.append(Call("edit_message_sync", [("$id", str(post)),
                                                    ("$body", f"edit {n} of {post}"),
                                                    ("$author", author)]))
        else:
            calls.append(Call("post_message_sync", [
                ("$id", str(next_id)), ("$body", f"message {next_id} ✓ 'quoted'"),
                ("$author", author), ("$created_at", str(T0_MS + n))]))
            next_id += 1
    return calls


def expected_rows(calls: list[Call]) -> list[dict[str, Any]]:
    """What the messages table holds after applying `calls` in order."""
    rows: dict[int, dict[str, Any]] = {}
    for call in calls:
        values = dict(call.data)
        post = int(values["$id"])
        if call.action == "post_message_sync":
            rows[post] = {"id": post, "body": values["$body"], "author": values["$author"],
                          "created_at": int(values["$created_at"])}
        elif rows[post]["author"] == values["$author"]:
            rows[post]["body"] = values["$body"]
    return [rows[k] for k in sorted(rows)]


def sign_chain(provider: Provider, calls: Sequence[Call], *, first_sequence: int = 1,
               prev_action_id: str = FIRST_PREV_ACTION_ID,
               original_dbid: str | None = None) -> list[DataItem]:
    """Sign `calls` as one provider's consecutive v2 records (Sequence, Prev-Action-Id)."""
    items, prev = [], prev_action_id
    for i, call in enumerate(calls):
        item = build_record(provider.signer, original_dbid=original_dbid or provider.dbid,
                            local_dbid=provider.dbid, local_db_name=provider.name,
                            action_name=call.action, data=call.data,
                            sequence=first_sequence + i, prev_action_id=prev,
                            created_at_ms=T0_MS + first_sequence + i)
        prev = item.tag("Action-Id") or ""
        items.append(item)
    return items


def post_bundle(arlocal: Arlocal, items: Sequence[DataItem], *,
                wallet: ArweaveSigner | None = None) -> ArweaveSigner:
    """Post `items` as one L1 bundle paid by `wallet` (made and funded when None).

    Returns the wallet, to post more with. Nothing is listed until `mine`.
    """
    if wallet is None:
        wallet = ArweaveSigner.generate(2048)
        arlocal.mint(wallet.address)
    uploader = DirectL1Uploader(arlocal.url, wallet)
    try:
        uploader.upload(list(items))
    finally:
        uploader.close()
    return wallet


def mine(arlocal_url: str, timeout: float = 600) -> None:
    """Mine a block on arlocal; it indexes bundled items one by one (~50-100 ms each)."""
    httpx.get(f"{arlocal_url}/mine", timeout=timeout).raise_for_status()


def put_on_arlocal(arlocal: Arlocal, items: Sequence[DataItem], *,
                   wallet: ArweaveSigner | None = None) -> ArweaveSigner:
    """Post `items` as one bundle and mine it; returns the paying wallet."""
    wallet = post_bundle(arlocal, items, wallet=wallet)
    mine(arlocal.url)
    return wallet




def committed_calls(chain_dir: Path, target: str, version: str = "v0.9") -> Counter[str]:
    """How many transactions the stand-in executed successfully per (action, values).

    Reads the stand-in's chain state (`--data-dir`): every committed transaction with
    code 0 whose payload calls an action of `target`, keyed `action(json values)`.
    """
    with sqlite3.connect(f"file:{chain_dir / 'chain.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT tx FROM txs WHERE code = 0").fetchall()
    counts: Counter[str] = Counter()
    for (text,) in rows:
        call = decode_action(version, parse_tx(json.loads(text)).payload)
        if call.target != target:
            continue
        for arguments in call.arguments or [[]]:
            values = [a["value"] for a in arguments]
            counts[f"{call.action}({json.dumps(values, default=str)})"] += 1
    return counts


_STACK = pytest.StashKey[LocalStack]()


def session_stack(request: pytest.FixtureRequest) -> LocalStack:
    """One LocalStack with a Prefect server for the whole session (stopped at its end).

    Each flow test module would otherwise wait for a server of its own.
    """
    config = request.config
    stack = config.stash.get(_STACK, None)
    if stack is None:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        stack = LocalStack(factory.mktemp("flows-stack"))
        config.add_cleanup(stack.stop)
        stack.start_prefect()
        config.stash[_STACK] = stack
    return stack


def node_legacy_records(key_hex: str, db_name: str, ids: Sequence[str], *, anchor: bool,
                        caller: str) -> tuple[str, list[DataItem]]:
    """2023 records written under Node (arbundles, ethers: tests/node/oracle_legacy_record.mjs),
    one `insert_message_sync($id, $message, $original_caller)` per id; returns
    (original dbid, items)."""
    spec = {"eth_key": key_hex, "local_db_name": db_name, "records": [
        {"action_name": "insert_message_sync", "anchor": anchor,
         "data": [["$id", record_id], ["$message", f"hello {i}"],
                  ["$original_caller", caller]]} for i, record_id in enumerate(ids)]}
    made = json.loads(subprocess.run(["node", "oracle_legacy_record.mjs"], cwd=node_dir(),
                                     input=json.dumps(spec), capture_output=True, text=True,
                                     timeout=60, check=True).stdout)
    return made["original_dbid"], [DataItem.parse(b64url_decode(r["raw"]))
                                   for r in made["records"]]


def prefect_cli(stack: LocalStack, *args: str, check: bool = True) -> str:
    """Run the `prefect` command of this venv against the stack's server; its output."""
    done = subprocess.run([str(Path(sys.executable).parent / "prefect"), *args],
                          cwd=PROJECT_ROOT, env=stack.env(), capture_output=True, text=True,
                          timeout=180)
    assert not check or done.returncode == 0, \
        f"prefect {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def worker_polls(stack: LocalStack, pool: str, name: str) -> bool:
    """True once worker `name` of work pool `pool` has reached the stack's server."""
    answer = httpx.post(f"{stack.prefect_api_url}/work_pools/{pool}/workers/filter", json={},
                        timeout=5)
    return name in {w["name"] for w in answer.json()}
