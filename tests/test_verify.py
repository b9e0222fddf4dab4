"""Trust: honest records pass from every source; forged, tampered and foreign ones are refused."""

import hashlib

import pytest

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.arweave.signers import b64url
from kwil_sync.kwil.dbid import dbid
from kwil_sync.records import SyncRecord, build_record, canonical_text
from kwil_sync.verify import REASONS, TrustPolicy, verify_record

OWNER = EthereumSigner("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER = EthereumSigner("22" * 32)
ATTACKER = EthereumSigner("33" * 32)
DB = dbid(OWNER.address, "chat")
POLICY = TrustPolicy(DB)
V2_ONLY = ("Sync-Version", "Sequence", "Prev-Action-Id", "Payload-SHA256", "Created-At")


def make(signer: EthereumSigner = OWNER, name: str = "chat", original: str = DB) -> DataItem:
    return build_record(signer, original_dbid=original, local_dbid=dbid(signer.address, name),
                        local_db_name=name, action_name="insert_message_sync",
                        data=[("$id", "7"), ("$body", "hi")], sequence=1, prev_action_id="-",
                        created_at_ms=1_700_000_000_000)


def resign(item: DataItem, signer: EthereumSigner, *, tags=None, data=None,
           anchor: bytes | None = None) -> DataItem:
    return DataItem.create(item.data if data is None else data,
                           list(item.tags if tags is None else tags), signer, anchor=anchor)


def legacy(signer: EthereumSigner = OWNER, anchor: bytes | None = b"A" * 32) -> DataItem:
    base = make(signer)
    tags = [(n, v) for n, v in base.tags if n not in V2_ONLY]
    aid = "V1StGXR8_Z5jdHi6B-myT"
    sig = "0x" + signer.key.sign_personal(aid.encode()).hex()
    tags = [(n, aid if n == "Action-Id" else sig if n == "Signature" else v) for n, v in tags]
    return DataItem.create(base.data, tags, signer, anchor=anchor)


def irys(item: DataItem, **changes) -> TxRecord:
    fields = dict(id=item.id, owner_address=item.owner_address, owner_key=None,
                  signature=item.signature, anchor=None, target=None, tags=list(item.tags),
                  timestamp_ms=1, height=None, cursor="c")
    return TxRecord(**{**fields, **changes})


def gateway(item: DataItem, **changes) -> TxRecord:
    fields = dict(id=item.id, owner_address=item.arweave_address, owner_key=item.owner,
                  signature=item.signature, anchor=item.anchor,
                  target=b64url(item.target) if item.target else None, tags=list(item.tags),
                  timestamp_ms=1000, height=1, cursor="c")
    return TxRecord(**{**fields, **changes})


def check(item: DataItem, tx: TxRecord | None, policy: TrustPolicy = POLICY,
          document: bytes | None = None):
    record = (SyncRecord.from_item(item) if tx is None
              else SyncRecord.from_parts(tx, item.data if document is None else document))
    return verify_record(record, tx, policy)


@pytest.mark.parametrize("source", [None, irys, gateway])
def test_honest_v2_record_passes_from_every_source(source):
    item = make()
    verdict = check(item, source(item) if source else None)
    assert verdict.ok, verdict.message
    assert verdict.reason == "ok" and verdict.signer == OWNER.address


def test_untrusted_signer_is_refused_until_configured():
    item = make(OTHER, original=DB)  # a second provider writing into the owner's database
    verdict = check(item, gateway(item))
    assert (verdict.ok, verdict.reason, verdict.signer) == (False, "untrusted-signer",
                                                             OTHER.address)
    assert "trusted providers" in verdict.message
    assert check(item, gateway(item), TrustPolicy(DB, {OTHER.address.lower()})).ok


def test_original_provider_is_the_one_whose_dbid_matches():
    policy = TrustPolicy(dbid(OTHER.address, "chat"))
    assert check(make(OTHER, original=policy.original_dbid), None, policy).ok
    # same database name, but the owner's dbid is not this database's
    verdict = check(make(OWNER, original=policy.original_dbid), None, policy)
    assert verdict.reason == "untrusted-signer"


def test_spoofed_provider_address_is_refused():
    honest = make()
    tags = [(n, OWNER.address if n == "Provider-Address" else v)
            for n, v in make(ATTACKER, original=DB).tags]
    forged = resign(honest, ATTACKER, tags=tags)
    for tx in (None, irys(forged), gateway(forged)):
        verdict = check(forged, tx)
        assert verdict.reason == "signer-mismatch", tx
        assert ATTACKER.address in verdict.message


def test_copied_signature_over_a_tampered_payload_is_refused():
    honest = make()
    evil = honest.data.replace(b'"hi"', b'"rm -rf"')
    forged = resign(honest, ATTACKER, data=evil)
    verdict = check(forged, gateway(forged))
    assert verdict.reason == "payload-hash-mismatch"
    # the gateway serving other bytes for an honest item is caught the same way
    assert check(honest, irys(honest), document=evil).reason == "payload-hash-mismatch"


def test_wrong_payload_hash_signed_by_the_provider_is_refused():
    honest = make()
    tags = dict(honest.tags)
    wrong = hashlib.sha256(b"other").hexdigest()
    text = canonical_text(original_dbid=DB, action_id=tags["Action-Id"], sequence=1,
                          prev_action_id="-", payload_sha256=wrong,
                          created_at_ms=1_700_000_000_000)
    sig = "0x" + OWNER.key.sign_personal(text).hex()
    new_tags = [(n, wrong if n == "Payload-SHA256" else sig if n == "Signature" else v)
                for n, v in honest.tags]
    verdict = check(resign(honest, OWNER, tags=new_tags), None)
    assert verdict.reason == "payload-hash-mismatch"


def test_rewrapped_genuine_record_is_refused_by_the_item_owner():
    honest = make()
    rewrapped = resign(honest, ATTACKER)  # same tags and document, attacker's item
    assert check(rewrapped, gateway(rewrapped)).reason == "item-owner-mismatch"
    assert check(rewrapped, irys(rewrapped)).reason == "item-owner-mismatch"
    assert check(rewrapped, None).reason == "item-owner-mismatch"


def test_item_signature_and_id_must_match_the_content():
    honest = make()
    assert check(honest, gateway(honest, id="A" * 43)).reason == "item-id-mismatch"
    flipped = bytearray(honest.signature)
    flipped[5] ^= 1
    bad = gateway(honest, signature=bytes(flipped), id=b64url(hashlib.sha256(flipped).digest()))
    assert check(honest, bad).reason == "bad-item-signature"
    extra = gateway(honest, anchor=b"Z" * 32)  # the gateway says there was an anchor
    assert check(honest, extra).reason == "bad-item-signature"


@pytest.mark.parametrize("change, reason", [
    (lambda t: t + [("Action-Id", "again")], "duplicate-tag"),
    (lambda t: [(n, "Other" if n == "Application" else v) for n, v in t], "wrong-application"),
    (lambda t: [(n, "Other" if n == "Type" else v) for n, v in t], "wrong-type"),
    (lambda t: [(n, "text/plain" if n == "Content-Type" else v) for n, v in t],
     "wrong-content-type"),
    (lambda t: [(n, "x" + "0" * 56 if n == "Original-DBID" else v) for n, v in t],
     "foreign-database"),
    (lambda t: [(n, "bob" if n == "Provider-Address" else v) for n, v in t], "bad-address"),
    (lambda t: [(n, "0x1234" if n == "Signature" else v) for n, v in t], "bad-signature"),
    (lambda t: [(n, "nothex" if n == "Signature" else v) for n, v in t], "bad-signature"),
])
def test_tag_sanity(change, reason):
    honest = make()
    item = resign(honest, OWNER, tags=change(list(honest.tags)))
    verdict = check(item, gateway(item))
    assert not verdict.ok and verdict.reason == reason
    assert verdict.message.startswith(f"record {item.id}: {REASONS[reason]}")


def test_legacy_record_needs_its_item_signature():
    item = legacy()
    assert check(item, gateway(item)).ok  # anchor, owner and signature reported
    assert check(item, None).ok  # the whole item
    # Irys reports neither owner key nor anchor: not checkable, so quarantined by default
    assert check(item, irys(item)).reason == "item-signature-unverifiable"
    assert check(item, irys(item, signature=None)).reason == "item-signature-unverifiable"
    assert check(item, irys(item), TrustPolicy(DB, allow_unverified_legacy=True)).ok
    # a gateway that does not report the anchor (arlocal) cannot check it either
    assert check(item, gateway(item, anchor=None)).reason == "item-signature-unverifiable"
    # without an anchor the item can be rebuilt from Irys' row
    plain = legacy(anchor=None)
    assert check(plain, irys(plain)).ok


def test_legacy_tampered_document_is_caught_by_the_item_signature():
    item = legacy()
    evil = item.data.replace(b'"hi"', b'"evil"')
    assert check(item, gateway(item), document=evil).reason == "bad-item-signature"


def test_legacy_record_from_another_signer_is_refused():
    item = legacy(ATTACKER)
    tags = [(n, OWNER.address if n == "Provider-Address" else v) for n, v in item.tags]
    forged = resign(item, ATTACKER, tags=tags, anchor=item.anchor)
    assert check(forged, gateway(forged)).reason == "signer-mismatch"
    assert check(item, gateway(item)).reason == "untrusted-signer"  # honest, not trusted


def test_policy_refuses_malformed_trusted_addresses():
    with pytest.raises(ValueError, match="0x addresses"):
        TrustPolicy(DB, {"not-an-address"})
