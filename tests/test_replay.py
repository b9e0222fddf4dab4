"""The replay pipeline onto the Kwil stand-in node: order, trust, exactly once, crashes.

Records come from an `ItemSource` (data items in memory) here; the end-to-end tests at
the bottom read them back from arlocal after uploading them through the bundler stand-in.
"""

import copy
import dataclasses
import json
import random
import threading
from typing import Literal

import pytest

from kwil_sync.appliers import KwilApplier, PlannedCall, Refusal, plan_call
from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.data import (
    DocumentNotFound,
    FetchResult,
    GatewayDataClient,
    GatewayError,
)
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.dbid import dbid
from kwil_sync.ledger import Ledger
from kwil_sync.records import MAX_DOCUMENT_BYTES, SyncRecord, action_id, build_record
from kwil_sync.replay import Replayer
from kwil_sync.replay_steps import apply_batch, fetch_documents, fetch_page, verify_batch
from kwil_sync.sources import GraphQLSource, ItemSource, Position, Start, follow_start
from kwil_sync.testing.kwil_node import ActionDef, KwilNodeStandIn, Schema
from kwil_sync.verify import TrustPolicy

OWNER = EthereumSigner("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SECOND = EthereumSigner("22" * 32)
STRANGER = EthereumSigner("33" * 32)
ADMIN_KEY = "44" * 32
ADMIN = EthereumSigner(ADMIN_KEY)
DB = dbid(OWNER.address, "chat")
T0 = 1_700_000_000_000

SCHEMA = Schema(
    tables=["CREATE TABLE messages (id TEXT PRIMARY KEY, body TEXT NOT NULL, wallet TEXT)",
            "CREATE TABLE applied (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT)"],
    actions=[ActionDef("insert_message_sync",
                       [("$id", "text"), ("$body", "text"), ("$caller", "text")], False,
                       "INSERT INTO messages VALUES ($id, $body, $caller); "
                       "INSERT INTO applied (id) VALUES ($id)")])


class Chain:
    """Records of one provider, sequence after sequence, as the shim writes them."""

    def __init__(self, signer: EthereumSigner, name: str = "chat", original: str = DB) -> None:
        self.signer, self.name, self.original = signer, name, original
        self.sequence, self.prev = 0, "-"

    def record(self, msg_id: str, body: str = "hi", *, action: str = "insert_message_sync",
               data: list | None = None) -> DataItem:
        self.sequence += 1
        values = data if data is not None else [("$id", msg_id), ("$body", body),
                                                ("$caller", self.signer.address)]
        item = build_record(self.signer, original_dbid=self.original,
                            local_dbid=dbid(self.signer.address, self.name),
                            local_db_name=self.name, action_name=action, data=values,
                            sequence=self.sequence, prev_action_id=self.prev,
                            created_at_ms=T0 + 1000 * self.sequence)
        self.prev = dict(item.tags)["Action-Id"]
        return item


@pytest.fixture(params=["v0.9", "v0.10"])
def node(request):
    standin = KwilNodeStandIn.start(version=request.param, block_interval=0.02)
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def world(node, tmp_path):
    target = node.deploy(ADMIN.address, "chat", SCHEMA)
    client = KwilClient(node.url)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield node, target, client, ledger
    ledger.close()
    client.close()


def replayer(world, source, policy=None, fetcher=None, applier=None, **kw) -> Replayer:
    node, target, client, ledger = world
    return Replayer(source, fetcher or source, applier or KwilApplier(client, ADMIN_KEY, target),
                    ledger, policy or TrustPolicy(DB), target_id=key(target), **kw)


def key(target: str) -> str:
    """The ledger key the flows use: chain id and target."""
    return f"kwil-standin/{target}"


def ids_in_order(world) -> list[str]:
    node, target, _, _ = world
    return [r["id"] for r in node.rows(target, "SELECT id FROM applied ORDER BY n")]


def test_restore_applies_in_order_and_a_rerun_applies_nothing(world):
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}", f"body {i}") for i in range(1, 13)]
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)  # the index lists them in another order
    source = ItemSource(shuffled, timestamps=[T0] * len(items), page_size=5)
    report = replayer(world, source, batch_size=4).run()
    assert (report.applied, report.failed, report.pages, report.records) == (12, 0, 3, 12)
    assert ids_in_order(world) == [f"m{i}" for i in range(1, 13)]
    node, target, _, ledger = world
    assert node.rows(target, "SELECT body, wallet FROM messages WHERE id='m3'") == [
        {"body": "body 3", "wallet": OWNER.address}]
    assert report.by_provider == {OWNER.address: 12} and report.bytes > 0
    assert ledger.sequence_start(key(target)) == {OWNER.address.lower(): 12}
    fetched: list[str] = []

    class Watched:
        def fetch_many(self, ids):
            fetched.extend(ids)
            return source.fetch_many(ids)

    again = replayer(world, source, fetcher=Watched()).run()
    assert (again.applied, again.duplicates, again.already_applied, again.known) == (0, 0, 0, 12)
    assert fetched == []  # every row's action is resolved in the ledger: nothing to fetch
    assert ids_in_order(world) == [f"m{i}" for i in range(1, 13)]
    assert ledger.counts(key(target)).done == 12


def test_hostile_records_are_quarantined_and_the_rest_applies(world):
    owner, stranger = Chain(OWNER), Chain(STRANGER, original=DB)
    first = owner.record("m1")
    untrusted = stranger.record("evil")
    spoof_tags = [(n, OWNER.address if n == "Provider-Address" else v)
                  for n, v in stranger.record("evil2").tags]
    spoofed = DataItem.create(b'{"actionName":"x","data":[]}', spoof_tags, STRANGER)
    unknown = owner.record("m2", action="drop_everything", data=[("$x", "1")])
    mismatch = owner.record("m3", data=[("$id", "m3"), ("$other", "x"), ("$caller", "c")])
    fine = owner.record("m4")
    changed = owner.record("m5")
    items = [first, untrusted, spoofed, unknown, mismatch, fine, changed]
    tampered = ItemSource(items)
    tampered._data[changed.id] = changed.data.replace(b'"hi"', b'"HACKED"')
    report = replayer(world, ItemSource(items), fetcher=tampered).run()
    assert report.quarantined == {"untrusted-signer": 1, "signer-mismatch": 1,
                                  "unknown-action": 1, "argument-mismatch": 1,
                                  "payload-hash-mismatch": 1}
    assert ids_in_order(world) == ["m1", "m4"]
    node, target, _, ledger = world
    reasons = {(q.reason, q.item_id) for q in ledger.quarantined(key(target))}
    assert ("payload-hash-mismatch", changed.id) in reasons
    assert ("untrusted-signer", untrusted.id) in reasons
    # the right bytes for m5 (another gateway): it applies; the misfits stay out
    report = replayer(world, ItemSource(items)).run()
    assert ids_in_order(world) == ["m1", "m4", "m5"] and report.applied == 1


def test_a_refused_record_holds_its_provider_behind_the_gap(world):
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}") for i in range(1, 5)]
    tampered = ItemSource(items)
    tampered._data[items[1].id] = items[1].data.replace(b'"hi"', b'"HACKED"')
    report = replayer(world, ItemSource(items), fetcher=tampered).run()
    assert report.quarantined == {"payload-hash-mismatch": 1, "sequence-gap": 2}
    assert ids_in_order(world) == ["m1"]  # never m3 and m4 without m2
    assert [(g.expected, g.held_from) for g in report.gaps] == [(2, 3)]
    replayer(world, ItemSource(items)).run()
    assert ids_in_order(world) == ["m1", "m2", "m3", "m4"]


def test_oversize_and_malformed_documents(world):
    chain = Chain(OWNER)
    ok = chain.record("m1")
    tags = list(chain.record("m2").tags)
    bad_json = DataItem.create(b"{nope", tags, OWNER)
    big = chain.record("m3", body="x" * 1000)
    report = replayer(world, ItemSource([ok, bad_json, big]), max_document_bytes=900).run()
    assert report.quarantined["bad-json"] == 1 and report.quarantined["oversize"] == 1
    assert ids_in_order(world) == ["m1"]
    assert MAX_DOCUMENT_BYTES == 64 * 1024


def test_replayed_action_id_applies_once_across_providers(world):
    owner, second = Chain(OWNER), Chain(SECOND, original=DB)
    # two validators' shims both recorded the same kwild transaction
    a = owner.record("m1")
    b = second.record("m1", data=[("$id", "m1"), ("$body", "hi"), ("$caller", OWNER.address)])
    assert dict(a.tags)["Action-Id"] == dict(b.tags)["Action-Id"]
    c = second.record("m2")
    policy = TrustPolicy(DB, {SECOND.address})
    report = replayer(world, ItemSource([a, b, c]), policy=policy).run()
    assert (report.applied, report.duplicates) == (2, 1)
    assert ids_in_order(world) == ["m1", "m2"]


def test_until_a_timestamp_or_an_action_id(world):
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}") for i in range(1, 7)]
    source = ItemSource(items, page_size=2)
    report = replayer(world, source).run(until=T0 + 2000)
    assert report.reached_until and ids_in_order(world) == ["m1", "m2"]
    stop_at = dict(items[3].tags)["Action-Id"]
    # An untrusted row carrying m4's Action-Id, ahead of m4: it must not end the run.
    forged = Chain(STRANGER, original=DB).record(
        "m4", data=[("$id", "m4"), ("$body", "hi"), ("$caller", OWNER.address)])
    assert dict(forged.tags)["Action-Id"] == stop_at
    report = replayer(world, ItemSource(items[:3] + [forged] + items[3:], page_size=2)).run(
        until=stop_at)
    assert report.reached_until and report.quarantined == {"untrusted-signer": 1}
    assert ids_in_order(world) == ["m1", "m2", "m3", "m4"]
    assert report.records == 5  # nothing read past m4 is judged
    # Resolved in the ledger already: m2 ends a rerun without being fetched.
    again = replayer(world, source).run(until=dict(items[1].tags)["Action-Id"])
    assert again.reached_until and (again.records, again.known, again.applied) == (2, 2, 0)


def test_dry_run_plans_and_writes_nothing(world):
    chain = Chain(OWNER)
    items = [chain.record("m1"), chain.record("m2", action="missing_action", data=[("$a", "1")]),
             Chain(STRANGER, original=dbid(STRANGER.address, "chat")).record("x")]
    report = replayer(world, ItemSource(items)).run(dry_run=True)
    node, target, client, ledger = world
    assert report.dry_run and report.applied == 0 and report.planned == 1
    assert report.missing_actions == {"missing_action"}
    assert report.signers == {OWNER.address: 2}
    assert report.quarantined == {"unknown-action": 1, "foreign-database": 1}
    assert ids_in_order(world) == [] and ledger.quarantined(key(target)) == []
    assert ledger.counts(key(target)).done == 0
    json.dumps(report.to_dict(), default=str)


def test_follow_skips_its_own_records_and_rereads_what_a_gap_holds(world):
    local, remote = Chain(ADMIN, original=DB), Chain(OWNER)
    r1, r2, r3 = remote.record("m1"), remote.record("m2"), remote.record("m3")
    own = local.record("mine")
    visible = ItemSource([r1, own, r3], timestamps=[T0 + 1, T0 + 2, T0 + 3])
    report = replayer(world, visible).run(follow=True, skip_provider=ADMIN.address)
    assert (report.applied, report.skipped_own, report.held) == (1, 1, 1)
    assert report.quarantined == {}
    assert report.resume == Position(None, T0 + 3, None)  # not past the held record
    start = follow_start(report.resume, lookback_ms=10)
    assert start == Start(since_ms=T0 - 7, min_block=None)
    late = ItemSource([r1, own, r3, r2], timestamps=[T0 + 1, T0 + 2, T0 + 3, T0 + 9])
    report = replayer(world, late).run(start, follow=True, skip_provider=ADMIN.address)
    assert ids_in_order(world) == ["m1", "m2", "m3"] and report.held == 0


def test_a_gap_in_follow_times_out_across_runs(world):
    chain = Chain(OWNER)
    r1, _, r3 = chain.record("m1"), chain.record("m2"), chain.record("m3")
    clock = [1000.0]
    source = ItemSource([r1, r3])
    first = replayer(world, source, gap_timeout_s=60, clock=lambda: clock[0]).run(follow=True)
    assert first.held == 1
    _, target, _, ledger = world
    assert set(ledger.gaps(key(target))) == {OWNER.address.lower()}
    clock[0] += 61
    second = replayer(world, source, gap_timeout_s=60, clock=lambda: clock[0]).run(follow=True)
    assert second.quarantined == {"sequence-gap": 1} and second.gaps[0].expected == 2
    assert ids_in_order(world) == ["m1"]


def test_a_failed_action_is_final_and_reported(world):
    chain = Chain(OWNER)
    items = [chain.record("m1", "first"), chain.record("m1", "clash"), chain.record("m2")]
    report = replayer(world, ItemSource(items)).run()
    assert (report.applied, report.failed) == (2, 1)
    assert report.quarantined == {"apply-failed": 1}
    assert ids_in_order(world) == ["m1", "m2"]
    again = replayer(world, ItemSource(items)).run()
    assert (again.applied, again.failed) == (0, 0)


class Crash(RuntimeError):
    pass


class CrashingApplier(KwilApplier):
    """Dies once a group of intents is stored, after `after_sends` of its transactions
    went out (0: before any), or after the node answered but before the ledger hears
    of it (`after_results`)."""

    def __init__(self, *args, after_sends: int | None = None, after_results: bool = False,
                 **kw) -> None:
        super().__init__(*args, **kw)
        self.after_sends, self.after_results, self.stored = after_sends, after_results, 0
        self.client = copy.copy(self.client)  # the dying broadcast stays on this applier
        broadcast, sends = self.client.broadcast, [0]

        def dying_broadcast(tx, sync="mempool"):
            if self.stored and sends[0] == self.after_sends:
                raise Crash(f"killed after {sends[0]} broadcasts of a stored group")
            sends[0] += 1
            return broadcast(tx, sync)

        self.client.broadcast = dying_broadcast

    def apply(self, calls, on_signed):
        def storing(group):
            on_signed(group)
            self.stored += len(group)

        results = super().apply(calls, storing)
        if self.after_results:
            raise Crash("killed after the results, before the ledger recorded them")
        return results


@pytest.mark.parametrize("crash", [dict(after_sends=0), dict(after_sends=5),
                                   dict(after_results=True)])
def test_a_crash_then_a_rerun_leaves_no_duplicate_and_no_gap(world, crash):
    node, target, client, ledger = world
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}") for i in range(1, 9)]
    # one transaction per record: the crash windows are the pipeline's, per transaction
    dying = CrashingApplier(client, ADMIN_KEY, target, max_calls_per_tx=1, **crash)
    with pytest.raises(Crash):
        replayer(world, ItemSource(items), applier=dying, batch_size=8).run()
    pending = ledger.pending(key(target))
    if "after_sends" in crash:  # the whole group was stored before the first send
        assert len(pending) == 8 and [i.nonce for i in pending] == list(
            range(pending[0].nonce, pending[0].nonce + 8))
    assert pending  # intents left for the next run
    report = replayer(world, ItemSource(items)).run()
    assert report.recovery is not None and not ledger.pending(key(target))
    assert ids_in_order(world) == [f"m{i}" for i in range(1, 9)]
    assert ledger.counts(key(target)).done == 8
    assert report.applied + len(report.recovery.completed) == 8
    if crash.get("after_sends") == 0:
        assert len(report.recovery.resent) == 8  # the same stored bytes, in nonce order


def test_a_rerun_waits_out_a_node_restarting_as_it_starts(world):
    node, target, client, ledger = world
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}") for i in range(1, 6)]
    dying = CrashingApplier(client, ADMIN_KEY, target, after_sends=2, max_calls_per_tx=1)
    with pytest.raises(Crash):
        replayer(world, ItemSource(items), applier=dying).run()
    assert len(ledger.pending(key(target))) == 5
    node.go_down()  # recovery's first queries and the schema read meet a closed port
    threading.Timer(0.8, node.come_up).start()
    report = replayer(world, ItemSource(items)).run()
    assert report.recovery is not None and not ledger.pending(key(target))
    assert len(report.recovery.completed) == 5 and len(report.recovery.resent) == 3
    assert ids_in_order(world) == [f"m{i}" for i in range(1, 6)]


def test_irys_rows_without_owner_keys_replay_too(world):
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}") for i in range(1, 4)]

    class IrysRows(ItemSource):
        def rows(self):
            return [dataclasses.replace(r, owner_key=None, anchor=None, owner_address=OWNER.address)
                    for r in super().rows()]

    replayer(world, IrysRows(items)).run()
    assert ids_in_order(world) == ["m1", "m2", "m3"]
    assert action_id(DB, "insert_message_sync", ["m1", "hi", OWNER.address]) == \
        dict(items[0].tags)["Action-Id"]


def test_the_steps_run_one_page_or_batch_at_a_time(world):
    node, target, client, ledger = world
    chain = Chain(OWNER)
    items = [chain.record(f"m{i}") for i in range(1, 6)]
    source = ItemSource(items, page_size=2)
    page = fetch_page(source, Start())
    assert [r.id for r in page.records] == [i.id for i in items[:2]] and page.has_next
    second = fetch_page(source, Start(after=page.end_cursor))
    assert [r.id for r in second.records] == [i.id for i in items[2:4]]
    checked = verify_batch(fetch_documents(source, page.records), TrustPolicy(DB))
    assert [r.action_id for r in checked.accepted] == [dict(i.tags)["Action-Id"]
                                                       for i in items[:2]]
    assert checked.signers == {OWNER.address: 2} and checked.refused == []
    applier = KwilApplier(client, ADMIN_KEY, target)
    applied = apply_batch(applier, ledger, key(target), checked.accepted, applier.actions())
    assert [r.code for r in applied.results] == [0, 0] and ids_in_order(world) == ["m1", "m2"]
    assert ledger.filter_new(key(target), [r.action_id for r in checked.accepted]) == []
    assert fetch_page(ItemSource([]), Start()).records == []


def test_missing_documents_are_quarantined_and_gateway_failures_raise(world):
    chain = Chain(OWNER)
    items = [chain.record("m1"), chain.record("m2")]

    class Flaky(ItemSource):
        error: Exception = DocumentNotFound(items[1].id, "404")

        def fetch_many(self, ids):
            for result in super().fetch_many(ids):
                yield FetchResult(result.id, None, self.error) if result.id == items[1].id \
                    else result

    flaky = Flaky(items)
    report = replayer(world, ItemSource(items), fetcher=flaky).run()
    assert report.quarantined == {"document-missing": 1} and ids_in_order(world) == ["m1"]
    flaky.error = GatewayError(items[1].id, "503 four times")
    with pytest.raises(GatewayError):
        replayer(world, ItemSource(items), fetcher=flaky).run()
    replayer(world, ItemSource(items)).run()
    assert ids_in_order(world) == ["m1", "m2"]


def test_plan_call_maps_names_onto_parameters_and_converts():
    record = SyncRecordFactory([("id", "7"), ("$Count", "12"), ("$note", "x")])
    schema = {"add": [("$note", "text"), ("$id", "text"), ("$count", "int8")]}
    call = plan_call(record, schema, "v0.10", "ns")
    assert isinstance(call, PlannedCall) and call.target == "ns" and call.action == "add"
    assert [a["value"] for a in call.arguments[0]] == ["x", "7", 12]
    bad = plan_call(SyncRecordFactory([("id", "7"), ("count", "many"), ("note", "x")]),
                    schema, "v0.10", "ns")
    assert isinstance(bad, Refusal) and bad.reason == "bad-argument" and "count" in bad.detail
    fewer = plan_call(SyncRecordFactory([("id", "7")]), schema, "v0.10", "ns")
    assert isinstance(fewer, Refusal) and fewer.reason == "argument-mismatch"
    unknown = plan_call(SyncRecordFactory([], action="nope"), schema, "v0.9", "x1")
    assert isinstance(unknown, Refusal) and unknown.reason == "unknown-action"


def SyncRecordFactory(data, action="ADD"):  # noqa: N802 (reads like the class it builds)
    item = build_record(OWNER, original_dbid=DB, local_dbid=DB, local_db_name="chat",
                        action_name=action, data=data, sequence=1, prev_action_id="-",
                        created_at_ms=T0)
    return SyncRecord.from_item(item)


# -- end to end: bundler stand-in -> arlocal -> replay -> stand-in node ----------------


@pytest.mark.arlocal
def test_end_to_end_through_the_bundler_and_arlocal(arlocal, tmp_path):
    from kwil_sync.arweave.uploaders import IrysUploader
    from kwil_sync.testing.bundler import BundlerStandIn

    chain = Chain(OWNER, name="e2e", original=dbid(OWNER.address, "e2e"))
    items = [chain.record(f"e{i}", f"body {i}") for i in range(1, 106)]
    node = KwilNodeStandIn.start(version="v0.9", block_interval=0.02)
    with BundlerStandIn.start(arlocal_url=arlocal.url, data_dir=tmp_path / "bundler") as bundler:
        # one at a time: the bundle (and so the index) holds them in sequence order, so the
        # first page is sequences 1 to 100 (concurrent uploads may swap neighbours)
        IrysUploader(bundler.url, "ethereum", concurrency=1).upload(items)
        bundler.flush()
        target = node.deploy(ADMIN.address, "e2e", SCHEMA)
        client = KwilClient(node.url)
        try:
            dialects: list[tuple[Literal["gateway", "irys"], str]] = [
                ("gateway", arlocal.url), ("irys", bundler.url)]
            for dialect, url in dialects:
                ledger = Ledger(tmp_path / f"{dialect}.sqlite")
                fresh = node.deploy(ADMIN.address, f"e2e_{dialect}", SCHEMA)
                source = GraphQLSource(GraphQLPager(f"{url}/graphql", dialect), chain.original)
                with GatewayDataClient(arlocal.url) as docs:
                    def make(applier: KwilApplier) -> Replayer:
                        return Replayer(source, docs, applier, ledger,  # noqa: B023
                                        TrustPolicy(chain.original), target_id=fresh)  # noqa: B023

                    dying = CrashingApplier(client, ADMIN_KEY, fresh, after_sends=102,
                                            max_calls_per_tx=1)
                    with pytest.raises(Crash):  # killed in the second page's batch
                        make(dying).run()
                    assert ledger.pending(fresh)
                    run = make(KwilApplier(client, ADMIN_KEY, fresh))
                    report = run.run()
                    assert report.recovery is not None
                    # the first batch was done before the crash; the second is recovered
                    assert report.known == 100, dialect  # not even fetched again
                    assert report.applied + report.already_applied == 5
                    assert ledger.counts(fresh).done == 105
                    assert report.quarantined == {} and report.pages == 2
                    rows = node.rows(fresh, "SELECT id, body FROM messages ORDER BY id")
                    assert rows == sorted(({"id": f"e{i}", "body": f"body {i}"}
                                           for i in range(1, 106)), key=lambda r: r["id"])
                    order = [r["id"] for r in node.rows(fresh, "SELECT id FROM applied "
                                                               "ORDER BY n")]
                    assert order == [f"e{i}" for i in range(1, 106)]
                    again = run.run()
                    assert again.applied == 0 and again.known == 105
                ledger.close()
            assert target
        finally:
            client.close()
            node.stop()
