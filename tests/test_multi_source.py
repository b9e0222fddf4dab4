"""The log read from several indexes at once (kwil_sync.merged_source): a k-way merge in
log order, deduplicated by item id, a breaker per index, and the items each index lacks.

Unit tests merge in-memory sources; the rest replay one bundle of v2 records from arlocal
through a second index that lies (a proxy dropping every tenth item, one that alters
documents, one that orders a height by id) or is down for the whole run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from helpers_records import Provider, expected_rows, messages_calls, put_on_arlocal, sign_chain

from kwil_sync.appliers import KwilApplier
from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLError, GraphQLPager
from kwil_sync.arweave.graphql_queries import Page
from kwil_sync.kwil.client import KwilClient
from kwil_sync.ledger import Ledger
from kwil_sync.merged_source import MergedSource, NamedSource
from kwil_sync.replay import Replayer, ReplayReport
from kwil_sync.sources import DocumentFetcher, GraphQLSource, IndexGap, ItemSource, Start
from kwil_sync.testing.arlocal import Arlocal, wait_indexed
from kwil_sync.testing.faultproxy import FaultProxy
from kwil_sync.testing.kwil_node import KwilNodeStandIn
from kwil_sync.testing.lying_index import LyingIndex, drop_ids, order_height_by_id
from kwil_sync.testing.workload import MESSAGES_SCHEMA
from kwil_sync.verify import TrustPolicy

ADMIN_KEY = "a1" * 32
SQL = "SELECT id, body, author, created_at FROM messages ORDER BY id"


def _items(provider: Provider, count: int, seed: int = 5) -> list[DataItem]:
    return sign_chain(provider, messages_calls(count, provider.address, seed=seed))


def _ids(pages: Iterator[Page]) -> list[str]:
    return [tx.id for page in pages for tx in page.records]


# --- merging in memory -----------------------------------------------------------------


def test_merge_applies_each_item_once_and_names_what_each_index_lacks() -> None:
    items = _items(Provider("a2" * 32), 12)
    stamps = [1000 + 10 * (i // 3) for i in range(12)]  # three items per time
    full = ItemSource(items, timestamps=stamps, page_size=5)
    keep = [i for i in range(12) if i % 4 != 3]
    partial = ItemSource([items[i] for i in keep], timestamps=[stamps[i] for i in keep],
                         page_size=2)
    for order in ([("full", full), ("partial", partial)], [("partial", partial),
                                                           ("full", full)]):
        merged = MergedSource([NamedSource(n, s) for n, s in order])
        ids = _ids(merged.pages(Start()))
        assert sorted(ids) == sorted(i.id for i in items) and len(ids) == len(set(ids))
        assert [stamps[[i.id for i in items].index(x)] for x in ids] == sorted(stamps)
        assert merged.index_health().gaps == [IndexGap(items[i].id, "partial")
                                              for i in range(12) if i % 4 == 3]
        assert merged.index_health().down == []


def test_one_time_is_released_in_the_first_index_order_whoever_answers_first() -> None:
    items = _items(Provider("a3" * 32), 6)
    by_id = sorted(items, key=lambda i: i.id)
    arrival = ItemSource(items, timestamps=[7] * 6)
    sorted_source = ItemSource(by_id, timestamps=[7] * 6)
    first = MergedSource([NamedSource("arrival", arrival), NamedSource("by-id", sorted_source)])
    second = MergedSource([NamedSource("by-id", sorted_source), NamedSource("arrival", arrival)])
    assert _ids(first.pages(Start())) == [i.id for i in items]
    assert _ids(second.pages(Start())) == [i.id for i in by_id]
    assert first.index_health().gaps == second.index_health().gaps == []


class _Failing:
    """An index that serves one page, then fails as a pager does after its retries."""

    def __init__(self, source: ItemSource, pages: int = 1) -> None:
        self.source, self.pages_before = source, pages

    def pages(self, start: Start) -> Iterator[Page]:
        for n, page in enumerate(self.source.pages(start)):
            if n >= self.pages_before:
                raise GraphQLError("http://127.0.0.1:9/graphql failed 4 times, last: refused")
            yield page


def test_an_index_that_fails_is_cut_off_and_reported_not_fatal() -> None:
    items = _items(Provider("a4" * 32), 9)
    stamps = list(range(100, 109))
    good = ItemSource(items, timestamps=stamps, page_size=2)
    broken = _Failing(ItemSource(items, timestamps=stamps, page_size=2))
    merged = MergedSource([NamedSource("broken", broken), NamedSource("good", good)])
    assert sorted(_ids(merged.pages(Start()))) == sorted(i.id for i in items)
    health = merged.index_health()
    assert [d.source for d in health.down] == ["broken"] and "refused" in health.down[0].reason
    assert health.gaps == []  # an index that is down is reported as down, not as gaps

    alone = MergedSource([NamedSource("broken", _Failing(ItemSource(items), pages=0))])
    with pytest.raises(ConnectionError, match="every index of the log is down"):
        _ids(alone.pages(Start()))


def test_a_compound_cursor_resumes_every_index_where_it_stood() -> None:
    items = _items(Provider("a5" * 32), 10)
    stamps = list(range(10))
    merged = MergedSource([NamedSource("a", ItemSource(items, timestamps=stamps, page_size=3)),
                           NamedSource("b", ItemSource(items, timestamps=stamps, page_size=4))])
    pages = merged.pages(Start())
    first = next(pages)
    pages.close()  # type: ignore[attr-defined]
    assert first.end_cursor is not None and first.end_cursor.startswith("merged:")
    rest = _ids(merged.pages(Start(after=first.end_cursor)))
    seen = [tx.id for tx in first.records]
    assert seen + [x for x in rest if x not in seen] == [i.id for i in items]
    with pytest.raises(ValueError, match="not issued by a merged read"):
        next(iter(merged.pages(Start(after="12"))))


# --- through arlocal ---------------------------------------------------------------------

COUNT = 30
WRITER = Provider("a6" * 32)


@pytest.fixture(scope="module")
def log(arlocal: Arlocal) -> list[DataItem]:
    items = _items(WRITER, COUNT, seed=8)
    put_on_arlocal(arlocal, items)
    wait_indexed(arlocal.url, WRITER.dbid, COUNT)
    return items


@pytest.fixture(scope="module")
def node() -> Iterator[KwilNodeStandIn]:
    standin = KwilNodeStandIn.start(version="v0.9", block_interval=0.02)
    try:
        yield standin
    finally:
        standin.stop()


def _source(url: str, *, retries: int = 4) -> GraphQLSource:
    return GraphQLSource(GraphQLPager(f"{url}/graphql", "gateway", retries=retries,
                                      backoff=0.05), WRITER.dbid)


def _replay(node: KwilNodeStandIn, tmp_path, name: str, source: MergedSource,
            docs: DocumentFetcher) -> tuple[ReplayReport, str]:
    target = node.deploy(EthereumSigner(ADMIN_KEY).address, name, MESSAGES_SCHEMA)
    with Ledger(tmp_path / f"{name}.sqlite") as ledger, KwilClient(node.url) as client:
        report = Replayer(source, docs, KwilApplier(client, ADMIN_KEY, target), ledger,
                          TrustPolicy(WRITER.dbid), target_id=target).run()
    return report, target


def _want(items: list[DataItem]) -> list[dict[str, object]]:
    return expected_rows(messages_calls(len(items), WRITER.address, seed=8))


@pytest.mark.timeout(180)
def test_a_lying_index_loses_every_tenth_item_the_merge_applies_all_and_names_them(
        arlocal: Arlocal, log: list[DataItem], node: KwilNodeStandIn, tmp_path) -> None:
    lost = [item.id for item in log[9::10]]
    with LyingIndex.start(arlocal.url, rewrite_edges=drop_ids(lost)) as liar, \
            GatewayDataClient(arlocal.url) as docs:
        for n, names in enumerate((["liar", "honest"], ["honest", "liar"])):
            urls = {"liar": liar.url, "honest": arlocal.url}
            merged = MergedSource([NamedSource(x, _source(urls[x])) for x in names])
            report, target = _replay(node, tmp_path, f"lying_{n}", merged, docs)
            assert (report.applied, dict(report.quarantined), report.held) == (COUNT, {}, 0)
            assert sorted((g.item_id, g.source) for g in report.index_gaps) == \
                sorted((x, "liar") for x in lost)
            assert report.sources_down == []
            assert node.rows(target, SQL) == _want(log)
        # the liar alone: its gaps hold everything after the first lost record back
        alone = MergedSource([NamedSource("liar", _source(liar.url))])
        report, _ = _replay(node, tmp_path, "lying_alone", alone, docs)
        assert report.applied == 9 and report.quarantined["sequence-gap"] == COUNT - 9 - 3


@pytest.mark.timeout(180)
def test_documents_altered_by_the_data_gateway_are_quarantined(
        arlocal: Arlocal, log: list[DataItem], node: KwilNodeStandIn, tmp_path) -> None:
    altered = {item.id for item in log[4::7]}

    def alter(id: str, body: bytes) -> bytes:
        return body.replace(b"message", b"MESSAGE") if id in altered else body

    with LyingIndex.start(arlocal.url, rewrite_data=alter) as liar, \
            GatewayDataClient(liar.url) as docs:
        merged = MergedSource([NamedSource("a", _source(arlocal.url))])
        report, target = _replay(node, tmp_path, "altered", merged, docs)
    refused = {(r.item_id, r.reason) for r in report.refusals}
    assert {(x, "payload-hash-mismatch") for x in altered} <= refused
    first = min(i for i, item in enumerate(log) if item.id in altered)
    # v2: what follows an altered record on its provider's chain waits behind the gap
    assert report.applied == first and report.quarantined["payload-hash-mismatch"] == len(altered)
    assert not any(item.id in altered for item in log[:first])
    assert len(node.rows(target, SQL)) == len(_want(log[:first]))


@pytest.mark.timeout(180)
def test_an_index_down_for_the_whole_run_is_reported_and_the_other_serves(
        arlocal: Arlocal, log: list[DataItem], node: KwilNodeStandIn, tmp_path) -> None:
    with FaultProxy.start(arlocal.url) as proxy, GatewayDataClient(arlocal.url) as docs:
        proxy.down(600, status=503)
        merged = MergedSource([NamedSource("down", _source(proxy.url, retries=2)),
                               NamedSource("up", _source(arlocal.url))])
        report, target = _replay(node, tmp_path, "one_down", merged, docs)
        assert proxy.stats().faults.get("down", 0) >= 2  # it was asked, and retried
    assert (report.applied, dict(report.quarantined)) == (COUNT, {})
    assert [d.source for d in report.sources_down] == ["down"]
    assert "503" in report.sources_down[0].reason and report.index_gaps == []
    assert node.rows(target, SQL) == _want(log)


@pytest.mark.timeout(180)
def test_two_indexes_ordering_one_height_differently_agree(
        arlocal: Arlocal, log: list[DataItem], node: KwilNodeStandIn, tmp_path) -> None:
    with LyingIndex.start(arlocal.url, rewrite_edges=order_height_by_id) as by_id, \
            GatewayDataClient(arlocal.url) as docs:
        arrival = _ids(_source(arlocal.url).pages(Start()))
        sorted_ids = _ids(_source(by_id.url).pages(Start()))
        assert sorted(arrival) == sorted_ids and arrival != sorted_ids  # one height, two orders
        for n, names in enumerate((["arlocal", "ario"], ["ario", "arlocal"])):
            urls = {"arlocal": arlocal.url, "ario": by_id.url}
            merged = MergedSource([NamedSource(x, _source(urls[x])) for x in names])
            read = _ids(merged.pages(Start()))
            assert read == (arrival if names[0] == "arlocal" else sorted_ids)
            report, target = _replay(node, tmp_path, f"orders_{n}", merged, docs)
            assert (report.applied, report.duplicates, report.index_gaps) == (COUNT, 0, [])
            assert node.rows(target, SQL) == _want(log)


def test_rows_from_several_indexes_keep_the_one_with_most_proof() -> None:
    items = _items(Provider("a7" * 32), 3)
    rich = ItemSource(items, timestamps=[5, 5, 5])
    poor_rows = [dataclasses.replace(r, owner_key=None, anchor=None) for r in rich.rows()]

    class Poor:
        def pages(self, start: Start) -> Iterator[Page]:
            yield Page(poor_rows, poor_rows[-1].cursor, False)

    merged = MergedSource([NamedSource("poor", Poor()), NamedSource("rich", rich)])
    rows = [tx for page in merged.pages(Start()) for tx in page.records]
    assert [r.id for r in rows] == [i.id for i in items]
    assert all(r.owner_key is not None for r in rows)


def test_an_irys_row_carries_the_height_the_gateways_passed_at_its_time() -> None:
    items = _items(Provider("a8" * 32), 6)
    irys = ItemSource(items, timestamps=[10, 20, 30, 40, 50, 60])
    gateway_rows = [dataclasses.replace(r, height=100 + n, timestamp_ms=15 + 10 * n)
                    for n, r in enumerate(ItemSource(items[:4]).rows())]

    class Gateway:
        def pages(self, start: Start) -> Iterator[Page]:
            yield Page(gateway_rows, gateway_rows[-1].cursor, False)

    merged = MergedSource([NamedSource("irys", irys), NamedSource("gateway", Gateway())])
    rows = [tx for page in merged.pages(Start()) for tx in page.records]
    assert [r.id for r in rows] == [i.id for i in items]
    # items 1..4 first show on Irys (earlier times); the gateway has passed heights by then
    assert [r.height for r in rows] == [None, 100, 101, 102, 103, 103]
    assert merged.index_health().gaps == [IndexGap(items[4].id, "gateway"),
                                          IndexGap(items[5].id, "gateway")]
