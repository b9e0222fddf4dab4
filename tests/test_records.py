"""Sync records: version 2 built as RECORD.md says; both versions parsed; bad input refused."""

import base64
import hashlib
import json

import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.ethkeys import recover_personal
from kwil_sync.kwil.dbid import dbid
from kwil_sync.records import (
    MAX_DOCUMENT_BYTES,
    RecordError,
    SyncRecord,
    action_id,
    build_record,
    canonical_text,
    encode_document,
    parse_document,
)

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SIGNER = EthereumSigner(KEY)
DB = dbid(SIGNER.address, "chat")


def make(sequence: int = 1, prev: str = "-", data=(("$id", "7"), ("$body", "hi")),
         created: int = 1_700_000_000_000) -> DataItem:
    return build_record(SIGNER, original_dbid=DB, local_dbid=DB, local_db_name="chat",
                        action_name="insert_message_sync", data=list(data), sequence=sequence,
                        prev_action_id=prev, created_at_ms=created)


def row(item: DataItem, tags=None, timestamp_ms: int | None = 1_700_000_000_123) -> TxRecord:
    return TxRecord(id=item.id, owner_address=item.owner_address, owner_key=None,
                    signature=item.signature, anchor=None, target=None,
                    tags=list(tags if tags is not None else item.tags),
                    timestamp_ms=timestamp_ms, height=None, cursor="c")


def test_document_is_the_2023_compact_json():
    doc = encode_document("insert_message_sync", [("$id", "7"), ("$body", "hé")])
    assert doc == ('{"actionName":"insert_message_sync","data":[{"name":"$id","value":"7"},'
                   '{"name":"$body","value":"hé"}]}').encode()
    assert parse_document(doc) == ("insert_message_sync", (("$id", "7"), ("$body", "hé")))


def test_action_id_is_deterministic_and_matches_the_spec_formula():
    first = action_id(DB, "insert_message_sync", ["7", "hi"])
    assert first == action_id(DB, "insert_message_sync", ["7", "hi"])
    assert len(first) == 32
    assert first != action_id(DB, "insert_message_sync", ["7", "ho"])
    assert first != action_id("x" + "0" * 56, "insert_message_sync", ["7", "hi"])
    # RECORD.md: base64url(sha256(json.dumps([dbid, name, values]) compact))[:32]
    text = json.dumps([DB, "insert_message_sync", ["7", "hi"]], separators=(",", ":"))
    want = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode()[:32]
    assert first == want


def test_built_record_has_the_tags_in_order_and_a_recoverable_signature():
    item = make()
    assert item.verify()
    names = [n for n, _ in item.tags]
    assert names == ["Application", "Content-Type", "Original-DBID", "Local-DBID",
                     "Local-DB-Name", "Type", "Action-Id", "Provider-Address", "Signature",
                     "Sync-Version", "Sequence", "Prev-Action-Id", "Payload-SHA256", "Created-At"]
    tags = dict(item.tags)
    assert tags["Payload-SHA256"] == hashlib.sha256(item.data).hexdigest()
    assert tags["Provider-Address"] == SIGNER.address
    text = canonical_text(original_dbid=DB, action_id=tags["Action-Id"], sequence=1,
                          prev_action_id="-", payload_sha256=tags["Payload-SHA256"],
                          created_at_ms=1_700_000_000_000)
    assert text.decode().splitlines()[0] == "kwil-sync record v2"
    assert text.endswith(b"Created-At: 1700000000000\n")
    pub = recover_personal(text, bytes.fromhex(tags["Signature"][2:]))
    assert pub == SIGNER.owner


def test_from_item_and_from_parts_agree():
    item = make(sequence=3, prev="abc")
    a = SyncRecord.from_item(item)
    b = SyncRecord.from_parts(row(item), item.data)
    assert a.version == b.version == 2
    assert (a.action_name, a.data, a.sequence, a.prev_action_id) == \
        ("insert_message_sync", (("$id", "7"), ("$body", "hi")), 3, "abc")
    assert a.timestamp_ms == 1_700_000_000_000  # Created-At when no index timestamp
    assert b.timestamp_ms == 1_700_000_000_123
    assert b.order_key == (1_700_000_000_123, SIGNER.address.lower(), 3, a.action_id)
    assert a.signed_text() == b.signed_text()
    assert b.proof.signature == item.signature and b.proof.owner is None


def test_legacy_record_parses_without_v2_tags():
    item = make()
    legacy = [t for t in item.tags if t[0] not in
              ("Sync-Version", "Sequence", "Prev-Action-Id", "Payload-SHA256", "Created-At")]
    rec = SyncRecord.from_parts(row(item, legacy), item.data)
    assert rec.version == 1 and rec.sequence is None
    assert rec.signed_text() == rec.action_id.encode()
    assert rec.order_key[2] == 0


@pytest.mark.parametrize("document, reason", [
    (b"{not json", "bad-json"),
    (b"\xff\xfe{}", "not-utf8"),
    (b"[1, 2]", "bad-shape"),
    (b'{"actionName": "a"}', "bad-shape"),
    (b'{"actionName": "", "data": []}', "bad-value"),
    (b'{"actionName": 5, "data": []}', "bad-value"),
    (b'{"actionName": "a", "data": {"name": "x"}}', "bad-shape"),
    (b'{"actionName": "a", "data": [{"name": "$x", "value": 5}]}', "bad-value"),
    (b'{"actionName": "a", "data": [{"name": "$x", "value": null}]}', "bad-value"),
    (b'{"actionName": "a", "data": [{"name": "$x"}]}', "bad-shape"),
    (b'{"actionName": "a", "data": [{"name": "$x", "value": "1", "more": "2"}]}', "bad-shape"),
    (b'{"actionName": "a", "data": [{"name": "$x", "value": "1"}, '
     b'{"name": "$x", "value": "2"}]}', "bad-shape"),
    (b'{"actionName": "a", "actionName": "b", "data": []}', "bad-json"),
    (b'{"actionName": "a", "data": [], "pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}', "oversize"),
])
def test_malformed_documents_are_refused_with_a_reason(document, reason):
    item = make()
    with pytest.raises(RecordError) as info:
        SyncRecord.from_parts(row(item), document)
    assert info.value.reason == reason
    assert str(info.value)


def test_missing_and_malformed_tags_are_refused():
    item = make()
    without_sig = [t for t in item.tags if t[0] != "Signature"]
    with pytest.raises(RecordError) as info:
        SyncRecord.from_parts(row(item, without_sig), item.data)
    assert info.value.reason == "missing-tag" and "Signature" in str(info.value)
    without_seq = [t for t in item.tags if t[0] != "Sequence"]
    with pytest.raises(RecordError, match="Sequence") as info:
        SyncRecord.from_parts(row(item, without_seq), item.data)
    assert info.value.reason == "missing-tag"
    for bad in ("-1", "0", "01", "1e3", "٣"):
        tags = [(n, bad if n == "Sequence" else v) for n, v in item.tags]
        with pytest.raises(RecordError) as info:
            SyncRecord.from_parts(row(item, tags), item.data)
        assert info.value.reason == "bad-tag", bad
    tags = [(n, "4" if n == "Sync-Version" else v) for n, v in item.tags]
    with pytest.raises(RecordError, match="Sync-Version") as info:
        SyncRecord.from_parts(row(item, tags), item.data)


def test_build_refuses_what_cannot_be_a_record():
    with pytest.raises(RecordError) as info:
        make(data=[("$big", "x" * MAX_DOCUMENT_BYTES)])
    assert info.value.reason == "oversize"
    with pytest.raises(RecordError) as info:
        make(data=[("$n", 5)])
    assert info.value.reason == "bad-value"
    with pytest.raises(RecordError):
        make(sequence=1, prev="abc")
    with pytest.raises(RecordError):
        make(sequence=2, prev="-")
    with pytest.raises(RecordError):
        make(sequence=0)


def test_repr_of_the_signer_hides_the_key():
    assert KEY not in repr(SIGNER) and KEY not in repr(SyncRecord.from_item(make()))
