"""Through the restore flow (a real Prefect server, blocks, arlocal and a Kwil node stand-in),
forged and broken records are quarantined with their reason and never applied; 2023
records written by arbundles under Node restore without the flag, proven from their
own bytes (arlocal does not report the anchors the 2023 Bundlr client added), and only
with it when a gateway block turns byte proofs off.

The log of provider A holds twelve good records and, next to them: a record of an
untrusted signer, A's tags re-wrapped around a tampered document (with and without a
fixed-up payload hash), A's record re-signed by another key as its data item, a record
A signed with a wrong payload hash, malformed JSON, an unknown action, an oversize
document, and a replay of an earlier Action-Id with other values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from helpers_records import (
    ROWS_SQL,
    T0_MS,
    Call,
    Provider,
    committed_calls,
    expected_rows,
    messages_calls,
    messages_schema,
    mine,
    node_legacy_records,
    post_bundle,
    session_stack,
    sign_chain,
    wait_indexed,
)

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.tags import Tag
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.ledger import Ledger
from kwil_sync.records import APPLICATION, RECORD_TYPE, action_id, canonical_text
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.kwil_node_schema import ActionDef, Schema
from kwil_sync.testing.stack import LocalStack, standin_call

GOOD = 12
ORIGINAL = Provider("77" * 32)  # the database's first provider
STRANGER = Provider("78" * 32)  # signs what A did not
TARGET_KEY = "79" * 32  # the provider restored onto
LEGACY_KEY = "7b" * 32  # not the key other tests post 2023 records with
AUTHOR = EthereumKey("7a" * 32).address
CHAIN_ID = "h8-hostile-chain"
SCHEMA_2023 = Schema(
    tables=["CREATE TABLE messages (id TEXT PRIMARY KEY, message TEXT NOT NULL, "
            "wallet TEXT NOT NULL)"],
    actions=[ActionDef("insert_message_sync", [("$id", "text"), ("$message", "text"),
                                               ("$original_caller", "text")], False,
                       "INSERT INTO messages VALUES ($id, $message, $original_caller)")])


def _v2_item(document: bytes, tags_of: DataItem, *, item_signer: Provider,
             replace: dict[str, str] | None = None) -> DataItem:
    """A data item with `tags_of`'s tags (some replaced) around `document`."""
    tags: list[Tag] = [(n, (replace or {}).get(n, v)) for n, v in tags_of.tags]
    return DataItem.create(document, tags, item_signer.signer)


def _signed_by_a(document: bytes, *, action_id: str, sequence: int, prev: str,
                 payload_sha256: str | None = None) -> DataItem:
    """A record A really signed (Signature tag and data item), whatever its document."""
    digest = payload_sha256 or hashlib.sha256(document).hexdigest()
    created = T0_MS + sequence
    text = canonical_text(original_dbid=ORIGINAL.dbid, action_id=action_id, sequence=sequence,
                          prev_action_id=prev, payload_sha256=digest, created_at_ms=created)
    tags: list[Tag] = [
        ("Application", APPLICATION), ("Content-Type", "application/json"),
        ("Original-DBID", ORIGINAL.dbid), ("Local-DBID", ORIGINAL.dbid),
        ("Local-DB-Name", ORIGINAL.name), ("Type", RECORD_TYPE), ("Action-Id", action_id),
        ("Provider-Address", ORIGINAL.address),
        ("Signature", "0x" + ORIGINAL.signer.key.sign_personal(text).hex()),
        ("Sync-Version", "2"), ("Sequence", str(sequence)), ("Prev-Action-Id", prev),
        ("Payload-SHA256", digest), ("Created-At", str(created))]
    return DataItem.create(document, tags, ORIGINAL.signer)


def _doc(action: str, data: list[tuple[str, str]]) -> bytes:
    return json.dumps({"actionName": action, "data": [{"name": n, "value": v}
                                                      for n, v in data]}).encode()


def hostile_log(good: list[DataItem]) -> dict[str, tuple[DataItem, str]]:
    """Name -> (item, the reason it must be quarantined for).

    Records refused before ordering reuse sequence numbers of good records (they never
    reach the sequencer); the one refused at apply time extends A's chain.
    """
    aid = [str(item.tag("Action-Id")) for item in good]
    post = _doc("post_message_sync", [("$id", "777"), ("$body", "forged"),
                                      ("$author", AUTHOR), ("$created_at", "1")])
    unknown_id = action_id(ORIGINAL.dbid, "drop_all_messages", ["1"])
    unknown = _signed_by_a(_doc("drop_all_messages", [("$id", "1")]), action_id=unknown_id,
                           sequence=GOOD + 1, prev=aid[-1])
    return {
        "untrusted signer": (sign_chain(STRANGER, [Call("post_message_sync", [
            ("$id", "666"), ("$body", "not A"), ("$author", AUTHOR), ("$created_at", "2")])],
            original_dbid=ORIGINAL.dbid)[0], "untrusted-signer"),
        "tampered payload": (_v2_item(post, good[2], item_signer=STRANGER),
                             "payload-hash-mismatch"),
        "tampered payload, hash tag fixed": (_v2_item(post, good[3], item_signer=STRANGER,
            replace={"Payload-SHA256": hashlib.sha256(post).hexdigest()}), "signer-mismatch"),
        "A's record re-signed as another's item": (
            _v2_item(bytes(good[4].data), good[4], item_signer=STRANGER),
            "item-owner-mismatch"),
        "wrong payload hash": (_signed_by_a(post, action_id="wrong-hash-1", sequence=6,
                                            prev=aid[4], payload_sha256="ab" * 32),
                               "payload-hash-mismatch"),
        "malformed JSON": (_signed_by_a(b'{"actionName": "post_message_sync", "data": [',
                                        action_id="bad-json-1", sequence=7, prev=aid[5]),
                           "bad-json"),
        "oversize": (_signed_by_a(_doc("post_message_sync", [
            ("$id", "888"), ("$body", "x" * 70_000), ("$author", AUTHOR),
            ("$created_at", "3")]), action_id="oversize-1", sequence=8, prev=aid[6]),
            "oversize"),
        "unknown action": (unknown, "unknown-action"),
        "replayed Action-Id": (_signed_by_a(post, action_id=aid[1], sequence=GOOD + 2,
                                            prev=unknown_id), "action-id-mismatch"),
    }


def legacy_records(count: int, *, anchor: bool) -> tuple[str, list[DataItem]]:
    """2023 records written under Node (arbundles, ethers); returns (original dbid, items)."""
    return node_legacy_records(LEGACY_KEY, "sync_test",
                               [f"{'a' if anchor else 'p'}{i}" for i in range(count)],
                               anchor=anchor, caller=AUTHOR)


@dataclass
class World:
    stack: LocalStack
    node_url: str
    calls: list[Call]
    hostile: dict[str, tuple[DataItem, str]]
    legacy_dbid: str
    anchored: list[DataItem]
    plain: list[DataItem]
    targets: dict[str, str]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, arlocal: Arlocal) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode

    calls = messages_calls(GOOD, AUTHOR, seed=3)
    good = sign_chain(ORIGINAL, calls)
    hostile = hostile_log(good)
    legacy_dbid, anchored = legacy_records(4, anchor=True)
    _, plain = legacy_records(1, anchor=False)
    post_bundle(arlocal, good + [item for item, _ in hostile.values()] + anchored + plain)
    with ThreadPoolExecutor(1) as pool:
        mining = pool.submit(mine, arlocal.url)
        stack = session_stack(request)
        assert stack.prefect_api_url is not None
        node_url = stack.start_kwil_node("h8-hostile-node", chain_id=CHAIN_ID)
        owner = EthereumKey(TARGET_KEY).address
        schemas = {"messages": messages_schema(), "legacy_lenient": json.loads(
            SCHEMA_2023.to_json()), "legacy_strict": json.loads(SCHEMA_2023.to_json()),
            "legacy_rows_only": json.loads(SCHEMA_2023.to_json())}
        targets = {name: str(standin_call(node_url, "deploy", owner=owner, name=name,
                                          schema=schema)["target"])
                   for name, schema in schemas.items()}
        with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
            KwilNode(rpc_url=node_url, version="v0.9", private_key=SecretStr(TARGET_KEY)).save(
                "h8-hostile-node", overwrite=True)
            ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                           data_url=arlocal.url).save("h8-hostile-arlocal", overwrite=True)
            ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                           data_url=arlocal.url, byte_proofs=False).save(
                "h8-hostile-arlocal-rows", overwrite=True)
        mining.result()
    wait_indexed(arlocal.url, ORIGINAL.dbid, GOOD + len(hostile))
    wait_indexed(arlocal.url, legacy_dbid, len(anchored) + len(plain))
    yield World(stack, node_url, calls, hostile, legacy_dbid, anchored, plain, targets)


def _restore(world: World, original_dbid: str, target: str, *,
             gateway: str = "h8-hostile-arlocal", **more: Any) -> dict[str, Any]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kwil_sync.flows.restore import restore

    assert world.stack.prefect_api_url is not None
    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}):
        return restore(original_dbid, target, node="h8-hostile-node",
                       gateway=gateway, ledger_path=str(_ledger_path(world)),
                       **more)


def _ledger_path(world: World) -> str:
    return str(world.stack.root / "state" / "h8-hostile-ledger.sqlite")


def _rows(world: World, target: str, sql: str = ROWS_SQL) -> list[dict[str, Any]]:
    return list(standin_call(world.node_url, "rows", target=target, sql=sql)["rows"])


@pytest.mark.arlocal
@pytest.mark.timeout(300)
def test_forged_and_broken_records_are_quarantined_never_applied(world: World) -> None:
    target = world.targets["messages"]
    report = _restore(world, ORIGINAL.dbid, target)

    wanted: dict[str, int] = {}
    for _, reason in world.hostile.values():
        if reason:
            wanted[reason] = wanted.get(reason, 0) + 1
    assert report["quarantined"] == wanted
    assert report["applied"] == GOOD and report["failed"] == 0
    assert report["duplicates"] == 0  # the replayed Action-Id is refused before ordering
    with Ledger(_ledger_path(world)) as ledger:
        key = f"{CHAIN_ID}/{target}"
        held = {(q.item_id, q.reason) for q in ledger.quarantined(key)}
        counts = ledger.counts(key)
    assert held == {(item.id, reason) for item, reason in world.hostile.values() if reason}
    assert (counts.done, counts.failed, counts.pending) == (GOOD, 0, 0)
    # the target holds exactly the good rows, each call executed once, nothing else ran
    assert _rows(world, target) == expected_rows(world.calls)
    chain_dir = world.stack.root / "h8-hostile-node"
    executed = committed_calls(chain_dir, target)
    assert set(executed) == {f"{c.action}({json.dumps([v for _, v in c.data])})"
                             for c in world.calls}
    assert set(executed.values()) == {1}

    # A rerun applies nothing new. It refuses the unverifiable records again, except
    # rows tagged with an Action-Id the ledger holds as resolved (the good ones, the
    # unknown action that filled its sequence slot, forgeries carrying a good id): those
    # are not even fetched.
    again = _restore(world, ORIGINAL.dbid, target)
    with Ledger(_ledger_path(world)) as ledger:
        tags = [str(item.tag("Action-Id")) for item, _ in world.hostile.values()]
        resolved = ledger.sequenced_among(key, tags)
    refused_again: dict[str, int] = {}
    for item, reason in world.hostile.values():
        if reason and item.tag("Action-Id") not in resolved:
            refused_again[reason] = refused_again.get(reason, 0) + 1
    assert "unknown-action" not in refused_again and refused_again != wanted
    assert again["applied"] == 0 and again["known"] >= GOOD
    assert again["quarantined"] == refused_again
    with Ledger(_ledger_path(world)) as ledger:
        assert {(q.item_id, q.reason) for q in ledger.quarantined(key)} == held
    assert _rows(world, target) == expected_rows(world.calls)


@pytest.mark.arlocal
@pytest.mark.timeout(300)
def test_2023_records_are_proven_from_their_bytes_or_need_the_flag(world: World) -> None:
    sql = "SELECT id, message, wallet FROM messages ORDER BY id"
    everything = sorted([*world.anchored, *world.plain], key=lambda i: str(i.tag("Action-Id")))
    want = sorted(({"id": json.loads(i.data)["data"][0]["value"],
                    "message": json.loads(i.data)["data"][1]["value"], "wallet": AUTHOR}
                   for i in everything), key=lambda r: r["id"])

    # arlocal lists no anchor: the anchored 2023 items are proven from their bytes (their
    # bundle's header and the item, Range-read from arlocal), the flag is not needed
    strict = _restore(world, world.legacy_dbid, world.targets["legacy_strict"])
    assert (strict["applied"], strict["quarantined"]) == (len(everything), {})
    assert (strict["proven_from_bytes"], strict["unverified_legacy"]) == (len(world.anchored), 0)
    assert _rows(world, world.targets["legacy_strict"], sql) == want

    rows_only = "h8-hostile-arlocal-rows"  # byte proofs off: only the flag lets them in
    lenient = _restore(world, world.legacy_dbid, world.targets["legacy_lenient"],
                       gateway=rows_only, allow_unverified_legacy=True)
    assert (lenient["applied"], lenient["quarantined"]) == (len(everything), {})
    assert lenient["unverified_legacy"] == len(world.anchored)
    assert _rows(world, world.targets["legacy_lenient"], sql) == want

    held_back = _restore(world, world.legacy_dbid, world.targets["legacy_rows_only"],
                         gateway=rows_only)
    # the one written without an anchor verifies from its row and is applied
    assert held_back["quarantined"] == {"item-signature-unverifiable": len(world.anchored)}
    assert held_back["applied"] == len(world.plain)
    assert _rows(world, world.targets["legacy_rows_only"], sql) == [
        r for r in want if r["id"].startswith("p")]
    with Ledger(_ledger_path(world)) as ledger:
        held = ledger.quarantined(f"{CHAIN_ID}/{world.targets['legacy_rows_only']}")
    assert {(q.item_id, q.reason) for q in held} == {
        (item.id, "item-signature-unverifiable") for item in world.anchored}
