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

Records are signed with `kwil_sync.testing.hostile_signing`; a replay of the corpus is
judged with `kwil_sync.testing.hostile_judge`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.tags import Tag
from kwil_sync.kwil.dbid import dbid
from kwil_sync.records import action_id, encode_document
from kwil_sync.refusals import Reason
from kwil_sync.testing.hostile_signing import (
    POST,
    T0_MS,
    RecordSigner,
    post_data,
    replace_tag,
    with_copied_signature,
)

__all__ = ["Corpus", "Hostile", "SQL_VALUES", "build_corpus", "expected_rows"]

SQL_VALUES = ("'); DROP TABLE messages; --", '"; DELETE FROM messages WHERE 1=1; --',
              "x' OR '1'='1")
Reach = Literal["listed", "unlisted", "refused"]


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


def build_corpus(owner_key: str, attacker_key: str, *, name: str = "messages", good: int = 24,
                 t0_ms: int = T0_MS) -> Corpus:
    """The owner's chain of `good` posts (plus three misfits) and the hostile records.

    Keys are hex private keys; they are used to sign and never kept or shown.
    """
    if good < 8:
        raise ValueError("build_corpus needs at least 8 honest posts to place misfits among")
    owner, attacker = EthereumSigner(owner_key), EthereumSigner(attacker_key)
    db = dbid(owner.address, name)
    me, them = RecordSigner(owner, name, db, t0_ms), RecordSigner(attacker, name, db, t0_ms)
    not_an_int = [("$id", "seven")] + post_data(9003, "y", "z", t0_ms)[1:]
    misfits = {
        good // 4: (Reason.UNKNOWN_ACTION, "drop_everything", [("$table", "messages")]),
        good // 2: (Reason.ARGUMENT_MISMATCH, POST, post_data(9002, "three", "x", t0_ms)[:3]),
        3 * good // 4: (Reason.BAD_ARGUMENT, POST, not_an_int)}
    chain: list[DataItem] = []
    hostile: list[Hostile] = []
    calls: list[tuple[str, list[str]]] = []
    prev = "-"
    for n in range(1, good + 1):
        body = SQL_VALUES[n % 2] if n % 7 == 0 else f"message {n} ✓ 'quoted'"
        author = SQL_VALUES[2] if n == 5 else owner.address
        data = post_data(n, body, author, t0_ms)
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

    first = them.record(POST, post_data(9001, "hello", attacker.address, t0_ms), 1, "-")
    add("untrusted-signer", first, Reason.UNTRUSTED_SIGNER)
    add("untrusted-sql", them.record(POST, post_data(9004, SQL_VALUES[0], attacker.address, t0_ms),
                                     2, first.tag("Action-Id") or ""),
        Reason.UNTRUSTED_SIGNER)
    add("spoofed-provider", them.raw(encode_document(POST, post_data(9005, "spoof", "x", t0_ms)),
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
    twin = me.record(POST, post_data(2, "a twin never posted", owner.address, t0_ms), 2, aid[0])
    twin_tags = list(twin.tags)
    twin_tags[10], twin_tags[13] = twin_tags[13], twin_tags[10]
    add("reordered-tags-copied-signature", with_copied_signature(twin, twin_tags),
        Reason.BAD_ITEM_SIGNATURE, "refused")
    other_db = dbid(owner.address, name + "_archive")
    archive = RecordSigner(owner, name + "_archive", other_db, t0_ms)
    foreign = archive.record(POST, post_data(9006, "archive", owner.address, t0_ms), 1, "-")
    add("foreign-database", foreign, Reason.FOREIGN_DATABASE, "unlisted")
    relabeled = replace_tag("Original-DBID", db)(list(foreign.tags))
    add("cross-database-relabel", DataItem.create(foreign.data, relabeled, attacker),
        Reason.SIGNER_MISMATCH)
    doc = encode_document(POST, post_data(9007, "dup", owner.address, t0_ms))
    add("duplicated-tag", me.raw(doc, 2, aid[0], edit=lambda t: t + [("Original-DBID",
                                                                       other_db)]),
        Reason.DUPLICATE_TAG)
    for kind, reason, document in (
            ("malformed-json", Reason.BAD_JSON, b'{"actionName":"post_message_sync","data":['),
            ("duplicate-json-key", Reason.BAD_JSON,
             b'{"actionName":"drop","actionName":"post_message_sync","data":[]}'),
            ("huge-json", Reason.OVERSIZE,
             encode_document(POST, post_data(9008, "x" * 70_000, "x", t0_ms))),
            ("non-utf8", Reason.NOT_UTF8,
             b'{"actionName":"post_message_sync","data":[{"name":"$body","value":"\xff\xfe"}]}'),
            ("bad-shape", Reason.BAD_SHAPE,
             b'{"actionName":"post_message_sync","data":{"$id":"1"}}'),
            ("non-string-value", Reason.BAD_VALUE,
             b'{"actionName":"post_message_sync","data":[{"name":"$id","value":7}]}')):
        add(kind, me.raw(document, 2, aid[0]), reason)
    add("sync-version-4", me.raw(doc, 2, aid[0], edit=replace_tag("Sync-Version", "4")),
        Reason.BAD_TAG)
    add("missing-tag", me.raw(doc, 2, aid[0],
                              edit=lambda t: [(n, v) for n, v in t if n != "Sequence"]),
        Reason.MISSING_TAG)
    add("bad-signature-tag", them.raw(doc, 3, aid[1], edit=replace_tag("Signature", "0xnothex")),
        Reason.BAD_SIGNATURE)
    add("legacy-copied-signature", _legacy_forgery(owner, attacker, name, db, t0_ms),
        Reason.ITEM_OWNER_MISMATCH)
    add("sequence-rewind", _rewind(me, aid, owner.address, t0_ms), Reason.SEQUENCE_REWIND)
    top = len(chain)
    add("chain-fork", me.raw(encode_document(POST, post_data(9009, "fork", owner.address, t0_ms)),
                             top + 1, "not-the-previous-action"), Reason.CHAIN_MISMATCH)
    add("replayed-action-id", me.raw(encode_document(POST, post_data(1, "replayed", owner.address,
                                                                  t0_ms)),
                                     top + 1, aid[-1], aid=aid[0]),
        Reason.ACTION_ID_MISMATCH)
    add("sequence-gap", me.record(POST, post_data(9010, "after a gap", owner.address, t0_ms),
                                  top + 10, "unknown"), Reason.SEQUENCE_GAP)
    return Corpus(db, owner.address, chain, hostile, calls)


def _rewind(me: RecordSigner, aid: list[str], author: str, t0_ms: int) -> DataItem:
    """A second record for sequence 3 whose Action-Id sorts after the honest one, so
    whichever arrives first, the honest record fills the slot."""
    for k in range(10_000):
        data = post_data(3, f"rewritten {k}", author, t0_ms)
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
    document = encode_document(POST, post_data(9011, "forged 2023", owner.address, t0_ms))
    return DataItem.create(document, tags, attacker)
