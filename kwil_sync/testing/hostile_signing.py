"""Signing sync records for the hostile corpus: honest chains and records over any bytes.

`RecordSigner` signs v2 records for one key and database, including ones whose document
or tags an honest writer would never produce; `honest_chain` signs a run of honest posts.
Keys are used to sign and never kept or shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.signers import b64url
from kwil_sync.arweave.tags import Tag, encode_tags
from kwil_sync.kwil.dbid import dbid
from kwil_sync.records import (
    RecordError,
    action_id,
    build_record,
    canonical_text,
    parse_document,
)

__all__ = ["POST", "T0_MS", "RecordSigner", "TagEdit", "derived_action_id", "honest_chain",
           "post_data", "replace_tag", "with_copied_signature"]

T0_MS = 1_700_000_000_000
POST = "post_message_sync"
TagEdit = Callable[[list[Tag]], list[Tag]]


def post_data(n: int, body: str, author: str, t0_ms: int) -> list[tuple[str, str]]:
    return [("$id", str(n)), ("$body", body), ("$author", author),
            ("$created_at", str(t0_ms + n))]


class RecordSigner:
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
        aid = aid or derived_action_id(self.original, document)
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
    me = RecordSigner(owner, name, original or dbid(owner.address, name), t0_ms)
    items, calls = [], []
    for n in range(count):
        data = post_data(first_id + n, f"message {first_id + n} ✓", owner.address, t0_ms)
        items.append(me.record(POST, data, first_sequence + n, prev))
        calls.append((POST, [v for _, v in data]))
        prev = items[-1].tag("Action-Id") or ""
    return items, calls


def derived_action_id(original: str, document: bytes) -> str:
    """The Action-Id an honest writer derives; a stand-in when the document is unreadable."""
    try:
        name, data = parse_document(document)
    except RecordError:
        return b64url(hashlib.sha256(document).digest())[:32]
    return action_id(original, name, [v for _, v in data])


def replace_tag(name: str, value: str) -> TagEdit:
    return lambda tags: [(n, value if n == name else v) for n, v in tags]


def with_copied_signature(item: DataItem, tags: list[Tag]) -> DataItem:
    """`item` with other tags but its own signature: a data item that does not verify."""
    tag_bytes = encode_tags(tags)
    return DataItem.parse(b"".join((
        item.signature_type.to_bytes(2, "little"), item.signature, item.owner, b"\x00", b"\x00",
        len(tags).to_bytes(8, "little"), len(tag_bytes).to_bytes(8, "little"), tag_bytes,
        item.data)))
