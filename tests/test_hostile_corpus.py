"""The hostile corpus (`kwil_sync.testing.hostile`) through the whole read side.

The corpus is one database's log: the owner's honest chain (SQL-looking values included,
which must be stored as data) mixed with records an attacker or a misbehaving provider
could publish. It is replayed onto a kwild v0.10 stand-in three ways: from memory (every
kind, those a gateway would drop too), from arlocal through the core `Replayer`, and
from arlocal through the restore flow. Each time no hostile record may execute, each
must be quarantined with its reason, and every honest record must execute exactly once.
Unit-level refusals are in test_verify.py and test_replay.py; this file checks the
same defences end to end, on one mixed log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.ledger import Ledger
from kwil_sync.records import MAX_DOCUMENT_BYTES
from kwil_sync.replay import Replayer
from kwil_sync.sources import GraphQLSource, ItemSource
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.hostile import SQL_VALUES, Corpus, build_corpus
from kwil_sync.testing.hostile_judge import executions, judge, post_bundles
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import REASONS, TrustPolicy

OWNER_KEY = "a1" * 32  # the database's original provider
ATTACKER_KEY = "b2" * 32  # anyone who can pay for an Arweave upload
ADMIN_KEY = "c3" * 32  # owns the target database the log is restored onto
ROWS = "SELECT id, body, author, created_at FROM messages ORDER BY id"
EVERY_REACH = ("listed", "unlisted", "refused")
# reasons outside verify.REASONS: records.RecordError, ordering, appliers
OTHER_REASONS = {"bad-json", "not-utf8", "bad-shape", "bad-value", "missing-tag", "bad-tag",
                 "oversize", "sequence-gap", "sequence-rewind", "chain-mismatch",
                 "unknown-action", "argument-mismatch", "bad-argument", "action-id-mismatch"}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus(OWNER_KEY, ATTACKER_KEY)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwilNodeStandIn]:
    standin = KwilNodeStandIn.start(version="v0.10", block_interval=0.02,
                                    data_dir=tmp_path_factory.mktemp("chain"))
    try:
        yield standin
    finally:
        standin.stop()


def fresh_target(node: KwilNodeStandIn, name: str) -> str:
    return node.deploy(EthereumKey(ADMIN_KEY).address, name, MESSAGES_SCHEMA)


def assert_clean_replay(corpus: Corpus, node: KwilNodeStandIn, target: str, ledger: Ledger,
                        key: str, reaches: tuple[str, ...]) -> None:
    assert node.chain.data_dir is not None
    verdict = judge(corpus, executions(node.chain.data_dir, target, "v0.10"),
                    ledger.quarantined(key), reaches=reaches)
    counts = verdict.tally
    assert counts.unexpected == [] and counts.duplicates == [] and counts.missing == []
    assert counts.applied == counts.expected == len(corpus.good)
    assert verdict.wrong_reason == {}
    rows = node.rows(target, ROWS)
    assert rows == corpus.expected_rows()  # SQL-looking values stored literally, table intact
    assert {r["body"] for r in rows} >= set(SQL_VALUES[:2])
    assert {r["author"] for r in rows} >= {SQL_VALUES[2]}


def test_the_corpus_covers_the_hostile_kinds(corpus: Corpus) -> None:
    kinds = corpus.kinds
    assert len(kinds) == len(set(kinds)) >= 15
    assert {h.reason for h in corpus.hostile} <= set(REASONS) | OTHER_REASONS
    for h in corpus.hostile:  # gateways drop exactly the items whose signature fails
        assert h.item.verify() == (h.reach != "refused"), h.kind
    honest_ids = {i.id for i in corpus.chain}
    outside = [h for h in corpus.hostile if h.item.id not in honest_ids]
    assert len(outside) + len(corpus.chain) == len(corpus.memory_items())
    assert len(corpus.memory_items()) < 100  # one GraphQL page: see the module docstring
    assert max(len(h.item.data) for h in corpus.hostile) > MAX_DOCUMENT_BYTES


def test_core_replayer_from_memory_quarantines_every_kind(corpus: Corpus, node: KwilNodeStandIn,
                                                          tmp_path: Path) -> None:
    target = fresh_target(node, "from_memory")
    source = ItemSource(corpus.memory_items(), page_size=100)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        replayer = Replayer(source, source, KwilApplier(KwilClient(node.url), ADMIN_KEY, target),
                            ledger, TrustPolicy(corpus.original_dbid), target_id=target)
        report = replayer.run()
        assert report.applied == len(corpus.good) and report.failed == 0
        assert sum(report.quarantined.values()) == len(corpus.hostile)
        assert_clean_replay(corpus, node, target, ledger, target, EVERY_REACH)
        # A rerun applies nothing and refuses the same records again, except the three
        # misfits (they filled their sequence slots, so they are now known repeats) and
        # those tagged with an Action-Id the ledger holds as resolved: not even fetched.
        again = replayer.run()
        misfits = {h.item.id for h in corpus.hostile if h.item in corpus.chain}
        items = corpus.memory_items()
        resolved = ledger.sequenced_among(target, [a for i in items if (a := i.tag("Action-Id"))])
        skipped = {i.id for i in items if i.tag("Action-Id") in resolved}
        assert again.applied == 0 and len(misfits) == 3 and again.known == len(skipped)
        assert {r.item_id for r in again.refusals} == \
            {r.item_id for r in report.refusals} - misfits - skipped
        assert_clean_replay(corpus, node, target, ledger, target, EVERY_REACH)


@pytest.fixture(scope="module")
def on_arlocal(arlocal: Arlocal, corpus: Corpus) -> Arlocal:
    """The corpus on arlocal: the owner's chain in one bundle, the rest in a later one."""
    post_bundles(arlocal, corpus.gateway_items())
    listed = len(corpus.chain) + sum(1 for h in corpus.hostile if h.reach == "listed"
                                     and h.item.id not in {i.id for i in corpus.chain})
    pager = GraphQLPager(f"{arlocal.url}/graphql", "gateway")
    deadline, seen = time.monotonic() + 60, 0
    while time.monotonic() < deadline:
        seen = sum(1 for _ in pager.records({"Original-DBID": [corpus.original_dbid]}))
        if seen >= listed:
            break
        time.sleep(0.5)
    assert seen == listed, "arlocal did not index the corpus"
    return arlocal


@pytest.mark.arlocal
def test_core_replayer_from_arlocal(corpus: Corpus, on_arlocal: Arlocal,
                                    node: KwilNodeStandIn, tmp_path: Path) -> None:
    target = fresh_target(node, "from_arlocal")
    source = GraphQLSource(GraphQLPager(f"{on_arlocal.url}/graphql", "gateway"),
                           corpus.original_dbid)
    with Ledger(tmp_path / "ledger.sqlite") as ledger, \
            GatewayDataClient(on_arlocal.url, max_bytes=MAX_DOCUMENT_BYTES) as documents:
        report = Replayer(source, documents,
                          KwilApplier(KwilClient(node.url), ADMIN_KEY, target), ledger,
                          TrustPolicy(corpus.original_dbid), target_id=target).run()
        assert report.applied == len(corpus.good) and report.pages == 1
        assert_clean_replay(corpus, node, target, ledger, target, ("listed",))
        unlisted = {h.item.id for h in corpus.hostile if h.reach != "listed"}
        assert not unlisted & {q.item_id for q in ledger.quarantined(target)}


@pytest.mark.arlocal
@pytest.mark.prefect
def test_restore_flow_from_arlocal(corpus: Corpus, on_arlocal: Arlocal, node: KwilNodeStandIn,
                                   shared_prefect: str, tmp_path: Path) -> None:
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.flows.restore import restore

    target = fresh_target(node, "from_flow")
    KwilNode(rpc_url=node.url, version="v0.10", private_key=SecretStr(ADMIN_KEY)).save(
        "hostile-target", overwrite=True)
    ArweaveGateway(graphql_url=f"{on_arlocal.url}/graphql", dialect="gateway",
                   data_url=on_arlocal.url).save("hostile-gateway", overwrite=True)
    summary: dict[str, Any] = restore(corpus.original_dbid, target, node="hostile-target",
                                      gateway="hostile-gateway",
                                      ledger_path=str(tmp_path / "ledger.sqlite"))
    listed = [h for h in corpus.hostile if h.reach == "listed"]
    assert summary["applied"] == len(corpus.good)
    assert sum(summary["quarantined"].values()) == len(listed)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert_clean_replay(corpus, node, target, ledger, f"{node.chain_id}/{target}",
                            ("listed",))
