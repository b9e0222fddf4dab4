"""2023 records proven from their own bytes (kwil_sync.proofs): the bundle's header is
Range-read from the gateway, then the item, whose id and signature must hold.

Records are written under Node exactly as the 2023 extension did (random anchors,
arbundles), uploaded through the Irys-style bundler stand-in and bundled into arlocal.
Neither arlocal nor the stand-in's Irys GraphQL reports those anchors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_records import Provider, node_legacy_records, sign_chain

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.bundle import encode_bundle
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.raw_items import RangeReader, bundle_offsets
from kwil_sync.arweave.uploaders import IrysUploader
from kwil_sync.kwil.client import KwilClient
from kwil_sync.ledger import Ledger
from kwil_sync.proofs import ByteProver, ProofUnavailable
from kwil_sync.replay import Replayer, ReplayReport
from kwil_sync.sources import DocumentFetcher, GraphQLSource, RecordSource
from kwil_sync.testing.arlocal import Arlocal, wait_indexed
from kwil_sync.testing.bundler import BundlerStandIn
from kwil_sync.testing.faultproxy import FaultProxy
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.testing.lying_index import Answer, Edges, LyingIndex, strip_fields
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import TrustPolicy

pytestmark = [pytest.mark.arlocal, pytest.mark.node, pytest.mark.timeout(240)]

LEGACY_KEY = "b1" * 32
ADMIN_KEY = "b2" * 32
ANCHORED, PLAIN, LATE = 8, 2, 3
SCHEMA_2023 = Schema(
    tables=["CREATE TABLE messages (id TEXT PRIMARY KEY, message TEXT NOT NULL, "
            "wallet TEXT NOT NULL)"],
    actions=[ActionDef("insert_message_sync", [("$id", "text"), ("$message", "text"),
                                               ("$original_caller", "text")], False,
                       "INSERT INTO messages VALUES ($id, $message, $original_caller)")])
SQL = "SELECT id FROM messages ORDER BY id"


def legacy(prefix: str, count: int, *, anchor: bool, db: str = "proofs") -> tuple[str, list]:
    """2023 records written under Node; (original dbid, items)."""
    return node_legacy_records(LEGACY_KEY, db, [f"{prefix}{i}" for i in range(count)],
                               anchor=anchor, caller="0xCaller")


@dataclass
class World:
    arlocal: Arlocal
    bundler: BundlerStandIn
    node: KwilNodeStandIn
    dbid: str
    anchored: list[DataItem]
    plain: list[DataItem]
    late_dbid: str  # uploaded to the bundler, never bundled: no bytes to prove it from
    bundle: str
    v2: Provider


@pytest.fixture(scope="module")
def world(arlocal: Arlocal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    dbid, anchored = legacy("a", ANCHORED, anchor=True)
    _, plain = legacy("p", PLAIN, anchor=False)
    late_dbid, late = legacy("l", LATE, anchor=True, db="proofs_late")
    v2 = Provider("b3" * 32)
    chain = sign_chain(v2, [_post(i, v2.address) for i in range(1, 6)])
    bundler = BundlerStandIn.start(arlocal.url, data_dir=tmp_path_factory.mktemp("bundler"),
                                   bundle_interval=0)
    node = KwilNodeStandIn.start(version="v0.9", block_interval=0.02)
    try:
        IrysUploader(bundler.url, "ethereum").upload(anchored + plain + chain)
        [bundle] = bundler.flush()
        IrysUploader(bundler.url, "ethereum").upload(late)
        wait_indexed(arlocal.url, dbid, ANCHORED + PLAIN)
        wait_indexed(arlocal.url, v2.dbid, len(chain))
        yield World(arlocal, bundler, node, dbid, anchored, plain, late_dbid, bundle, v2)
    finally:
        node.stop()
        bundler.stop()


def _post(n: int, author: str) -> Any:
    from helpers_records import Call

    return Call("post_message_sync", [("$id", str(n)), ("$body", f"v2 {n}"),
                                      ("$author", author), ("$created_at", str(n))])


def _gateway(url: str, dbid: str) -> GraphQLSource:
    return GraphQLSource(GraphQLPager(f"{url}/graphql", "gateway"), dbid)


def _irys(world: World, dbid: str) -> GraphQLSource:
    return GraphQLSource(GraphQLPager(f"{world.bundler.url}/graphql", "irys"), dbid)


def _restore(world: World, tmp_path: Path, name: str, source: RecordSource, *,
             dbid: str | None = None, prover: ByteProver | None = None,
             docs: DocumentFetcher | None = None, lenient: bool = False,
             schema: Schema = SCHEMA_2023) -> tuple[ReplayReport, str]:
    target = world.node.deploy(EthereumSigner(ADMIN_KEY).address, name, schema)
    policy = TrustPolicy(dbid or world.dbid, allow_unverified_legacy=lenient)
    with Ledger(tmp_path / f"{name}.sqlite") as ledger, KwilClient(world.node.url) as client, \
            GatewayDataClient(world.arlocal.url) as gateway_docs:
        report = Replayer(source, docs or gateway_docs, KwilApplier(client, ADMIN_KEY, target),
                          ledger, policy, target_id=target, prover=prover).run()
    return report, target


def _prover(world: World, url: str | None = None) -> ByteProver:
    base = url or world.arlocal.url
    return ByteProver(f"{base}/graphql", base)


def _all_ids(world: World) -> list[dict[str, str]]:
    return sorted(({"id": json.loads(i.data)["data"][0]["value"]}
                   for i in world.anchored + world.plain), key=lambda r: r["id"])


def test_the_bundle_header_gives_each_item_its_offset_and_bytes(world: World) -> None:
    reader = RangeReader(world.arlocal.url)
    offsets = bundle_offsets(reader, world.bundle)  # arlocal ignores Range: read up to need
    items = world.anchored + world.plain
    for item in items:
        offset, size = offsets[item.id]
        assert size == len(item.raw) and reader.read(world.bundle, offset, offset + size) == \
            item.raw
    assert len(offsets) == len(items) + 5  # and the v2 chain bundled with them
    # the offsets are the ones our encoder lays out for the same items in that order
    order = sorted(offsets, key=lambda id: offsets[id][0])
    first = offsets[order[0]][0]
    assert first == len(encode_bundle([])) + 64 * len(order)
    reader.close()


def test_2023_records_with_random_anchors_restore_without_the_flag(world: World,
                                                                  tmp_path: Path) -> None:
    for name, source in (("gateway", _gateway(world.arlocal.url, world.dbid)),
                         ("irys", _irys(world, world.dbid))):
        report, target = _restore(world, tmp_path, f"anchors_{name}", source,
                                  prover=_prover(world))
        assert (report.applied, dict(report.quarantined)) == (ANCHORED + PLAIN, {})
        assert (report.proven_from_bytes, report.unverified_legacy) == (ANCHORED, 0)
        assert world.node.rows(target, SQL) == _all_ids(world)


def test_items_listed_without_owner_key_or_signature_are_proven_from_bytes(
        world: World, tmp_path: Path) -> None:
    with LyingIndex.start(world.arlocal.url,
                          rewrite_edges=strip_fields("owner", "signature")) as bare:
        report, target = _restore(world, tmp_path, "bare", _gateway(bare.url, world.dbid),
                                  prover=_prover(world))
    assert (report.applied, dict(report.quarantined)) == (ANCHORED + PLAIN, {})
    assert report.proven_from_bytes == ANCHORED + PLAIN  # with no signature, none verifies
    assert world.node.rows(target, SQL) == _all_ids(world)


def test_a_gateway_that_reports_bundled_in_is_read_without_a_block_scan(
        world: World, tmp_path: Path) -> None:
    def like_goldsky(edges: Edges) -> Edges:  # bundledIn given, no height to scan by
        for edge in edges:
            if "bundledIn" in edge["node"]:
                edge["node"]["bundledIn"], edge["node"]["block"] = {"id": world.bundle}, None
        return edges

    with LyingIndex.start(world.arlocal.url, rewrite_edges=like_goldsky) as goldsky:
        prover = ByteProver(f"{goldsky.url}/graphql", world.arlocal.url)
        proofs = prover.prove_many(list(_gateway(world.arlocal.url, world.dbid).pager.records(
            {"Original-DBID": [world.dbid]})))
    assert {id for id, p in proofs.items() if isinstance(p, DataItem)} == \
        {i.id for i in world.anchored + world.plain}


def test_altered_2023_documents_are_quarantined_even_with_their_bytes_at_hand(
        world: World, tmp_path: Path) -> None:
    altered = {item.id for item in world.anchored[1::3]}

    def alter(id: str, body: bytes) -> bytes:
        return body.replace(b"hello", b"HACKED") if id in altered else body

    with LyingIndex.start(world.arlocal.url, rewrite_data=alter) as liar, \
            GatewayDataClient(liar.url) as docs:
        report, target = _restore(world, tmp_path, "altered", _gateway(world.arlocal.url,
                                                                       world.dbid),
                                  prover=_prover(world), docs=docs)
    assert {(r.item_id, r.reason) for r in report.refusals} == {
        (x, "bad-item-signature") for x in altered}
    assert report.applied == ANCHORED + PLAIN - len(altered)
    assert len(world.node.rows(target, SQL)) == report.applied


def test_the_flag_is_the_last_resort_and_each_use_is_counted(world: World,
                                                             tmp_path: Path) -> None:
    source = _irys(world, world.late_dbid)  # on the bundler only: no bundle to read yet
    docs = GatewayDataClient(world.bundler.url)
    strict, _ = _restore(world, tmp_path, "late_strict", source, dbid=world.late_dbid,
                         prover=_prover(world), docs=docs)
    assert dict(strict.quarantined) == {"item-signature-unverifiable": LATE}
    assert all("does not list" in r.detail for r in strict.refusals)
    lenient, target = _restore(world, tmp_path, "late_lenient", source, dbid=world.late_dbid,
                               prover=_prover(world), lenient=True, docs=docs)
    docs.close()
    assert (lenient.applied, lenient.unverified_legacy, lenient.proven_from_bytes) == \
        (LATE, LATE, 0)
    assert len(world.node.rows(target, SQL)) == LATE


def test_proofs_are_fetched_only_for_records_that_need_them(world: World,
                                                            tmp_path: Path) -> None:
    with FaultProxy.start(world.arlocal.url) as counted:
        for name, source in (("v2_gateway", _gateway(world.arlocal.url, world.v2.dbid)),
                             ("v2_irys", _irys(world, world.v2.dbid))):
            report, _ = _restore(world, tmp_path, name, source, dbid=world.v2.dbid,
                                 prover=_prover(world, counted.url), schema=MESSAGES_SCHEMA)
            assert (report.applied, report.proven_from_bytes) == (5, 0)
        assert counted.stats().requests == 0  # v2 records: never a byte proof
        report, _ = _restore(world, tmp_path, "counted", _gateway(world.arlocal.url,
                                                                  world.dbid),
                             prover=_prover(world, counted.url))
        assert report.proven_from_bytes == ANCHORED
        # one bundle: a locate query, the block's bundles, two header reads, one span
        assert counted.stats().requests <= 5


def test_an_unknown_item_is_unavailable_not_an_error(world: World) -> None:
    prover = _prover(world)
    row = next(iter(_irys(world, world.late_dbid).pager.records(
        {"Original-DBID": [world.late_dbid]})))
    [(id, result)] = prover.prove_many([row]).items()
    assert id == row.id and isinstance(result, ProofUnavailable)
    assert "does not list" in str(result)
    prover.close()


def test_ario_offset_headers_find_items_no_index_lists(world: World, tmp_path: Path) -> None:
    """ar.io's `HEAD /raw/{id}` offset headers, played over arlocal (which has none)."""
    reader = RangeReader(world.arlocal.url)
    offsets = bundle_offsets(reader, world.bundle)
    reader.close()

    def ario(method: str, path: str) -> Answer | None:
        found = re.match(r"^/raw/([A-Za-z0-9_-]{43})$", path)
        if method != "HEAD" or not found or found.group(1) not in offsets:
            return None
        start, size = offsets[found.group(1)]
        return 200, {"X-AR-IO-Root-Transaction-Id": world.bundle,
                     "X-AR-IO-Root-Data-Item-Offset": str(start),
                     "X-AR-IO-Data-Item-Size": str(size)}, b""

    with LyingIndex.start(world.arlocal.url, answer=ario, rewrite_edges=lambda edges: []) as gw:
        prover = ByteProver(f"{gw.url}/graphql", gw.url)  # its GraphQL lists nothing at all
        report, target = _restore(world, tmp_path, "ario", _gateway(world.arlocal.url,
                                                                    world.dbid), prover=prover)
    assert (report.applied, dict(report.quarantined)) == (ANCHORED + PLAIN, {})
    assert report.proven_from_bytes == ANCHORED
    assert world.node.rows(target, SQL) == _all_ids(world)


def test_a_data_gateway_that_swaps_items_in_a_bundle_proves_nothing(world: World,
                                                                   tmp_path: Path) -> None:
    reader = RangeReader(world.arlocal.url)
    offsets = bundle_offsets(reader, world.bundle)
    reader.close()
    first, second = world.anchored[0], world.anchored[1]
    assert len(first.raw) == len(second.raw)  # same shape: the swap keeps every offset

    def swap(id: str, body: bytes) -> bytes:
        if id != world.bundle:
            return body
        (a, size), (b, _) = offsets[first.id], offsets[second.id]
        out = bytearray(body)
        out[a:a + size], out[b:b + size] = body[b:b + size], body[a:a + size]
        return bytes(out)

    with LyingIndex.start(world.arlocal.url, rewrite_data=swap) as liar:
        report, _ = _restore(world, tmp_path, "swapped", _gateway(world.arlocal.url,
                                                                  world.dbid),
                             prover=ByteProver(f"{world.arlocal.url}/graphql", liar.url))
    refused = {r.item_id: r for r in report.refusals}
    assert set(refused) == {first.id, second.id}
    assert all(r.reason == "item-signature-unverifiable" and "where its header says" in
               r.detail for r in refused.values())
    assert report.applied == ANCHORED + PLAIN - 2 and report.proven_from_bytes == ANCHORED - 2
