"""A corpus of hostile sync records for one messages database, and how to judge a replay.

`build_corpus` signs the owner's honest chain (posts, some with SQL-looking values that
must be stored as data) and, around it, records an attacker or a misbehaving provider
could publish. Each `Hostile` names the quarantine reason the pipeline must give it
and how far it gets on a real gateway (`reach`):

- "listed": the gateway indexes it under this database, so a restore reads it;
- "unlisted": it is valid but indexed under another database, so a restore never sees it;
- "refused": its item signature does not verify, so gateways (arlocal, like ar.io)
  drop the whole bundle holding it; only an in-memory source can feed it.

The owner's chain holds three records that are signed and sequenced but do not fit
the target's schema (unknown action, wrong argument count, a value that is not an
integer on kwild v0.10): they fill their sequence slot and are quarantined at plan
time, so the records after them still apply. Every other owner-signed hostile record
reuses a sequence number or sits past the chain's end, so it never opens a gap for
honest records. The whole corpus fits one GraphQL page (under 100 records).

`executions` reads what a Kwil node stand-in executed (started with a data dir);
`judge` compares that and the ledger's quarantine with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.signers import ArweaveSigner, b64url
from kwil_sync.arweave.tags import Tag, encode_tags
from kwil_sync.arweave.uploaders import DirectL1Uploader
from kwil_sync.kwil.dbid import dbid
from kwil_sync.kwil.payload import decode_action
from kwil_sync.kwil.tx import parse_tx
from kwil_sync.ledger import QuarantineEntry
from kwil_sync.records import (
    RecordError,
    action_id,
    build_record,
    canonical_text,
    encode_document,
    parse_document,
)
from kwil_sync.refusals import Reason
from kwil_sync.testing.arlocal import Arlocal

__all__ = ["Corpus", "Hostile", "Judgement", "POST", "build_corpus", "call_key", "executions",
           "expected_rows", "honest_chain", "judge", "post_bundles", "tally", "Tally"]

T0_MS = 1_700_000_000_000
POST = "post_message_sync"
SQL_VALUES = ("'); DROP TABLE messages; --", '"; DELETE FROM messages WHERE 1=1; --',
              "x' OR '1'='1")
Reach = Literal["listed", "unlisted", "refused"]
TagEdit = Callable[[list[Tag]], list[Tag]]


@dataclass(frozen=True)
class Hostile:
    """One hostile record: its `kind`, the data item, the reason it must be quarantined
    with, and its `reach` on a gateway."""

    kind: str
    item: DataItem
    reason: Reason
    reach: Reach = "listed"


@dataclass
class Corpus:
    """The owner's chain (in order, three misfits included), the hostile records, and
    the honest calls a replay must execute exactly once."""

    original_dbid: str
    owner: str
    chain: list[DataItem]
    hostile: list[Hostile]
    good: list[tuple[str, list[str]]]  # (action, values in parameter order)

    @property
    def kinds(self) -> list[str]:
        return [h.kind for h in self.hostile]

    def gateway_items(self) -> tuple[list[DataItem], list[DataItem]]:
        """What can be posted to a gateway: the chain, then every listed or unlisted
        hostile record not already in the chain (post them in this order, two bundles)."""
        in_chain = {i.id for i in self.chain}
        return list(self.chain), [h.item for h in self.hostile
                                  if h.reach != "refused" and h.item.id not in in_chain]

    def memory_items(self) -> list[DataItem]:
        """Every record, for an in-memory source: the chain first, then the rest."""
        first, second = self.gateway_items()
        return first + second + [h.item for h in self.hostile if h.reach == "refused"]

    def expected_rows(self) -> list[dict[str, Any]]:
        """The messages table after a correct replay, by id."""
        return expected_rows(self.good)


def expected_rows(calls: Iterable[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """The messages table once `calls` (posts) are applied, by id."""
    rows = [{"id": int(v[0]), "body": v[1], "author": v[2], "created_at": int(v[3])}
            for a, v in calls if a == POST]
    return sorted(rows, key=lambda r: r["id"])


def call_key(action: str, values: Iterable[Any]) -> str:
    """How a call is counted: lower-case action name and its values as strings."""
    return f"{action.lower()}{json.dumps([str(v) for v in values], ensure_ascii=False)}"


def _post(n: int, body: str, author: str, t0_ms: int) -> list[tuple[str, str]]:
    return [("$id", str(n)), ("$body", body), ("$author", author),
            ("$created_at", str(t0_ms + n))]


class _Signer:
    """Signs v2 records for one (key, database), with any document bytes and tag edits."""

    def __init__(self, signer: EthereumSigner, name: str, original: str, t0_ms: int) -> None:
        self.signer, self.name, self.original, self.t0 = signer, name, original, t0_ms

    def record(self, action: str, data: list[tuple[str, str]], seq: int, prev: str) -> DataItem:
        return build_record(self.signer, original_dbid=self.original,
                            local_dbid=dbid(self.signer.address, self.name),
                            local_db_name=self.name, action_name=action, data=data,
                            sequence=seq, prev_action_id=prev,
                            created_at_ms=self.t0 + 1000 * seq)

    def raw(self, document: bytes, seq: int, prev: str, *, aid: str | None = None,
            provider: str | None = None, edit: TagEdit | None = None,
            item_signer: EthereumSigner | None = None) -> DataItem:
        """A v2 record over any bytes; `edit` changes the tags after signing them."""
        digest = hashlib.sha256(document).hexdigest()
        aid = aid or _derived_id(self.original, document)
        created = self.t0 + 1000 * seq
        text = canonical_text(original_dbid=self.original, action_id=aid, sequence=seq,
                              prev_action_id=prev, payload_sha256=digest, created_at_ms=created)
        tags: list[Tag] = [
            ("Application", "KwilDb"), ("Content-Type", "application/json"),
            ("Original-DBID", self.original), ("Local-DBID", dbid(self.signer.address, self.name)),
            ("Local-DB-Name", self.name), ("Type", "Action-Sync"), ("Action-Id", aid),
            ("Provider-Address", provider or self.signer.address),
            ("Signature", "0x" + self.signer.key.sign_personal(text).hex()),
            ("Sync-Version", "2"), ("Sequence", str(seq)), ("Prev-Action-Id", prev),
            ("Payload-SHA256", digest), ("Created-At", str(created))]
        return DataItem.create(document, edit(tags) if edit else tags, item_signer or self.signer)


def honest_chain(owner_key: str, count: int, *, name: str = "messages", first_id: int = 1,
                 first_sequence: int = 1, prev: str = "-", original: str | None = None,
                 t0_ms: int = T0_MS) -> tuple[list[DataItem], list[tuple[str, list[str]]]]:
    """`count` honest posts (ids from `first_id`) signed with `owner_key` for `name`:
    sequences from `first_sequence`, chained to `prev` (the Action-Id before it), into the
    log of `original` (default: the key's own database). Returns the items and calls."""
    owner = EthereumSigner(owner_key)
    me = _Signer(owner, name, original or dbid(owner.address, name), t0_ms)
    items, calls = [], []
    for n in range(count):
        data = _post(first_id + n, f"message {first_id + n} ✓", owner.address, t0_ms)
        items.append(me.record(POST, data, first_sequence + n, prev))
        calls.append((POST, [v for _, v in data]))
        prev = items[-1].tag("Action-Id") or ""
    return items, calls


def _derived_id(original: str, document: bytes) -> str:
    """The Action-Id an honest writer derives; a stand-in when the document is unreadable."""
    try:
        name, data = parse_document(document)
    except RecordError:
        return b64url(hashlib.sha256(document).digest())[:32]
    return action_id(original, name, [v for _, v in data])


def _replace(name: str, value: str) -> TagEdit:
    return lambda tags: [(n, value if n == name else v) for n, v in tags]


def _with_copied_signature(item: DataItem, tags: list[Tag]) -> DataItem:
    """`item` with other tags but its own signature: a data item that does not verify."""
    tag_bytes = encode_tags(tags)
    return DataItem.parse(b"".join((
        item.signature_type.to_bytes(2, "little"), item.signature, item.owner, b"\x00", b"\x00",
        len(tags).to_bytes(8, "little"), len(tag_bytes).to_bytes(8, "little"), tag_bytes,
        item.data)))


def build_corpus(owner_key: str, attacker_key: str, *, name: str = "messages", good: int = 24,
                 t0_ms: int = T0_MS) -> Corpus:
    """The owner's chain of `good` posts (plus three misfits) and the hostile records.

    Keys are hex private keys; they are used to sign and never kept or shown.
    """
    if good < 8:
        raise ValueError("build_corpus needs at least 8 honest posts to place misfits among")
    owner, attacker = EthereumSigner(owner_key), EthereumSigner(attacker_key)
    db = dbid(owner.address, name)
    me, them = _Signer(owner, name, db, t0_ms), _Signer(attacker, name, db, t0_ms)
    not_an_int = [("$id", "seven")] + _post(9003, "y", "z", t0_ms)[1:]
    misfits = {
        good // 4: (Reason.UNKNOWN_ACTION, "drop_everything", [("$table", "messages")]),
        good // 2: (Reason.ARGUMENT_MISMATCH, POST, _post(9002, "three", "x", t0_ms)[:3]),
        3 * good // 4: (Reason.BAD_ARGUMENT, POST, not_an_int)}
    chain: list[DataItem] = []
    hostile: list[Hostile] = []
    calls: list[tuple[str, list[str]]] = []
    prev = "-"
    for n in range(1, good + 1):
        body = SQL_VALUES[n % 2] if n % 7 == 0 else f"message {n} ✓ 'quoted'"
        author = SQL_VALUES[2] if n == 5 else owner.address
        data = _post(n, body, author, t0_ms)
        chain.append(me.record(POST, data, len(chain) + 1, prev))
        calls.append((POST, [v for _, v in data]))
        prev = chain[-1].tag("Action-Id") or ""
        if n in misfits:
            reason, action, bad = misfits[n]
            chain.append(me.record(action, bad, len(chain) + 1, prev))
            hostile.append(Hostile(reason.value, chain[-1], reason))
            prev = chain[-1].tag("Action-Id") or ""
    aid = [item.tag("Action-Id") or "" for item in chain]
    honest = chain[1]  # sequence 2

    def add(kind: str, item: DataItem, reason: Reason, reach: Reach = "listed") -> None:
        hostile.append(Hostile(kind, item, reason, reach))

    first = them.record(POST, _post(9001, "hello", attacker.address, t0_ms), 1, "-")
    add("untrusted-signer", first, Reason.UNTRUSTED_SIGNER)
    add("untrusted-sql", them.record(POST, _post(9004, SQL_VALUES[0], attacker.address, t0_ms),
                                     2, first.tag("Action-Id") or ""),
        Reason.UNTRUSTED_SIGNER)
    add("spoofed-provider", them.raw(encode_document(POST, _post(9005, "spoof", "x", t0_ms)),
                                     2, aid[0], provider=owner.address),
        Reason.SIGNER_MISMATCH)
    evil = honest.data.replace(b"message 2", b"HACKED 2")
    add("tampered-document", DataItem.create(evil, list(honest.tags), attacker),
        Reason.PAYLOAD_HASH_MISMATCH)
    add("rewrapped-record", DataItem.create(honest.data, list(honest.tags), attacker),
        Reason.ITEM_OWNER_MISMATCH)
    swapped = list(honest.tags)
    swapped[10], swapped[13] = swapped[13], swapped[10]  # Sequence <-> Created-At
    add("reordered-tags", DataItem.create(honest.data, swapped, attacker),
        Reason.ITEM_OWNER_MISMATCH)
    twin = me.record(POST, _post(2, "a twin never posted", owner.address, t0_ms), 2, aid[0])
    twin_tags = list(twin.tags)
    twin_tags[10], twin_tags[13] = twin_tags[13], twin_tags[10]
    add("reordered-tags-copied-signature", _with_copied_signature(twin, twin_tags),
        Reason.BAD_ITEM_SIGNATURE, "refused")
    other_db = dbid(owner.address, name + "_archive")
    archive = _Signer(owner, name + "_archive", other_db, t0_ms)
    foreign = archive.record(POST, _post(9006, "archive", owner.address, t0_ms), 1, "-")
    add("foreign-database", foreign, Reason.FOREIGN_DATABASE, "unlisted")
    relabeled = _replace("Original-DBID", db)(list(foreign.tags))
    add("cross-database-relabel", DataItem.create(foreign.data, relabeled, attacker),
        Reason.SIGNER_MISMATCH)
    doc = encode_document(POST, _post(9007, "dup", owner.address, t0_ms))
    add("duplicated-tag", me.raw(doc, 2, aid[0], edit=lambda t: t + [("Original-DBID",
                                                                       other_db)]),
        Reason.DUPLICATE_TAG)
    for kind, reason, document in (
            ("malformed-json", Reason.BAD_JSON, b'{"actionName":"post_message_sync","data":['),
            ("duplicate-json-key", Reason.BAD_JSON,
             b'{"actionName":"drop","actionName":"post_message_sync","data":[]}'),
            ("huge-json", Reason.OVERSIZE,
             encode_document(POST, _post(9008, "x" * 70_000, "x", t0_ms))),
            ("non-utf8", Reason.NOT_UTF8,
             b'{"actionName":"post_message_sync","data":[{"name":"$body","value":"\xff\xfe"}]}'),
            ("bad-shape", Reason.BAD_SHAPE,
             b'{"actionName":"post_message_sync","data":{"$id":"1"}}'),
            ("non-string-value", Reason.BAD_VALUE,
             b'{"actionName":"post_message_sync","data":[{"name":"$id","value":7}]}')):
        add(kind, me.raw(document, 2, aid[0]), reason)
    add("sync-version-4", me.raw(doc, 2, aid[0], edit=_replace("Sync-Version", "4")),
        Reason.BAD_TAG)
    add("missing-tag", me.raw(doc, 2, aid[0],
                              edit=lambda t: [(n, v) for n, v in t if n != "Sequence"]),
        Reason.MISSING_TAG)
    add("bad-signature-tag", them.raw(doc, 3, aid[1], edit=_replace("Signature", "0xnothex")),
        Reason.BAD_SIGNATURE)
    add("legacy-copied-signature", _legacy_forgery(owner, attacker, name, db, t0_ms),
        Reason.ITEM_OWNER_MISMATCH)
    add("sequence-rewind", _rewind(me, aid, owner.address, t0_ms), Reason.SEQUENCE_REWIND)
    top = len(chain)
    add("chain-fork", me.raw(encode_document(POST, _post(9009, "fork", owner.address, t0_ms)),
                             top + 1, "not-the-previous-action"), Reason.CHAIN_MISMATCH)
    add("replayed-action-id", me.raw(encode_document(POST, _post(1, "replayed", owner.address,
                                                                  t0_ms)),
                                     top + 1, aid[-1], aid=aid[0]),
        Reason.ACTION_ID_MISMATCH)
    add("sequence-gap", me.record(POST, _post(9010, "after a gap", owner.address, t0_ms),
                                  top + 10, "unknown"), Reason.SEQUENCE_GAP)
    return Corpus(db, owner.address, chain, hostile, calls)


def _rewind(me: _Signer, aid: list[str], author: str, t0_ms: int) -> DataItem:
    """A second record for sequence 3 whose Action-Id sorts after the honest one, so
    whichever arrives first, the honest record fills the slot."""
    for k in range(10_000):
        data = _post(3, f"rewritten {k}", author, t0_ms)
        if action_id(me.original, POST, [v for _, v in data]) > aid[2]:
            return me.record(POST, data, 3, aid[1])
    raise AssertionError("no rewind record sorts after the honest one")


def _legacy_forgery(owner: EthereumSigner, attacker: EthereumSigner, name: str, db: str,
                    t0_ms: int) -> DataItem:
    """A 2023-format record reusing the owner's Signature over a genuine Action-Id (which
    binds nothing else) with another document, wrapped in the attacker's item."""
    legacy_id = "V1StGXR8_Z5jdHi6B-myT"
    tags: list[Tag] = [
        ("Application", "KwilDb"), ("Content-Type", "application/json"),
        ("Original-DBID", db), ("Local-DBID", db), ("Local-DB-Name", name),
        ("Type", "Action-Sync"), ("Action-Id", legacy_id), ("Provider-Address", owner.address),
        ("Signature", "0x" + owner.key.sign_personal(legacy_id.encode()).hex())]
    document = encode_document(POST, _post(9011, "forged 2023", owner.address, t0_ms))
    return DataItem.create(document, tags, attacker)


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
