"""Trust: decide whether a parsed record may be applied (docs/RECORD.md, "Trust").

Every refusal carries a stable `kwil_sync.refusals.Reason` (for quarantine tables,
reports and alerts) and a sentence for people (`REASONS`). The checks, in order: tag
sanity, the `Signature` tag (it must recover `Provider-Address`), the payload hash
(v2), the data item's own signature where the source supplies enough to rebuild it,
and finally the trusted set.

Sources differ in what they supply. Gateways report the owner key, signature, anchor
and target, so the item's signing message can be rebuilt exactly (arlocal, though,
reports no anchor for bundled items). Irys reports the signature but neither owner key
nor anchor: the owner is then the public key `Signature` recovers. The 2023 Bundlr
client gave every item a random anchor, so for a 2023 record whose source reports no
anchor a failed check cannot be told from a missing anchor: it counts as
"unverifiable", not "bad". kwil-sync writes v2 items without an anchor, so any v2
failure is real. A 2023 record must pass the item check (its `Signature` binds only the
random Action-Id); for a v2 record it is checked where the source supplies the
signature (the canonical text already binds the payload hash).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Literal

from eth_utils import is_address, to_checksum_address

from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.arweave.signers import b64url, b64url_decode, owner_address, verify_signature
from kwil_sync.arweave.tags import TagError, encode_tags
from kwil_sync.errors import KwilSyncError
from kwil_sync.ethkeys import address_from_public_key, recover_personal
from kwil_sync.kwil.dbid import dbid
from kwil_sync.records import (
    APPLICATION,
    COMMON_TAGS,
    CONTENT_TYPE,
    LEGACY_VERSION,
    RECORD_TYPE,
    V2_TAGS,
    V3_TAGS,
    ItemProof,
    SyncRecord,
    record_action_id,
)
from kwil_sync.refusals import Reason

__all__ = ["REASONS", "TrustPolicy", "Verdict", "verify_record"]

# What each trust refusal means, for people (the start of every Verdict message).
REASONS: dict[Reason, str] = {
    Reason.WRONG_APPLICATION: "tag Application is not KwilDb",
    Reason.WRONG_TYPE: "tag Type is not Action-Sync",
    Reason.WRONG_CONTENT_TYPE: "tag Content-Type is not application/json",
    Reason.DUPLICATE_TAG: "a record tag appears more than once",
    Reason.FOREIGN_DATABASE: "Original-DBID names another database",
    Reason.BAD_ADDRESS: "Provider-Address is not an Ethereum address",
    Reason.BAD_SIGNATURE: "the Signature tag is not a 65-byte signature that recovers a key",
    Reason.SIGNER_MISMATCH: "Signature was made by another key than Provider-Address",
    Reason.PAYLOAD_HASH_MISMATCH: "the document does not hash to Payload-SHA256",
    Reason.ACTION_ID_MISMATCH: "the Action-Id is not the one its database, action, values (and "
                          "kwild transaction, version 3) derive (a replayed or reused id)",
    Reason.ITEM_ID_MISMATCH: "the item id is not the hash of its signature",
    Reason.BAD_ITEM_SIGNATURE: "the data item signature does not verify",
    Reason.ITEM_OWNER_MISMATCH: "the data item was signed by another key than Provider-Address",
    Reason.ITEM_SIGNATURE_UNVERIFIABLE: "the source does not supply enough to check the item "
                                   "signature, which a 2023 record needs",
    Reason.UNTRUSTED_SIGNER: "the signer is neither the original provider nor configured",
}


@dataclass(frozen=True)
class TrustPolicy:
    """Who may write a database's log.

    Args:
        original_dbid: The database being replayed; records of others are refused.
        trusted_providers: Extra provider addresses to trust (any case).
        allow_unverified_legacy: Accept 2023 records whose item signature cannot be
            checked (Irys rows); they are then trusted on the index's word.
    """

    original_dbid: str
    trusted_providers: frozenset[str] = field(default_factory=frozenset)
    allow_unverified_legacy: bool = False

    def __init__(self, original_dbid: str,
                 trusted_providers: set[str] | frozenset[str] = frozenset(),
                 allow_unverified_legacy: bool = False) -> None:
        bad = [a for a in trusted_providers if not is_address(a)]
        if bad:
            raise ValueError(f"trusted providers must be 0x addresses, got {bad}")
        object.__setattr__(self, "original_dbid", original_dbid)
        object.__setattr__(self, "trusted_providers",
                           frozenset(to_checksum_address(a) for a in trusted_providers))
        object.__setattr__(self, "allow_unverified_legacy", allow_unverified_legacy)

    def is_original_provider(self, address: str, local_db_name: str) -> bool:
        return dbid(address, local_db_name) == self.original_dbid

    def trusts(self, address: str, local_db_name: str) -> bool:
        return (_checksummed(address) in self.trusted_providers
                or self.is_original_provider(address, local_db_name))


@functools.lru_cache(maxsize=1024)  # a log has a few signers; EIP-55 hashes each time
def _checksummed(address: str) -> str:
    return to_checksum_address(address)


@dataclass(frozen=True)
class Verdict:
    """The outcome: `ok`, why it was refused (`reason`; "ok" when accepted), the
    recovered `signer` (when the signature recovered) and a human `message`."""

    ok: bool
    reason: Reason | Literal["ok"]
    signer: str | None = None
    message: str = ""


class _Failed(KwilSyncError):
    """Unwinds `verify_record`'s checks at the first that fails (never leaves it)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def verify_record(record: SyncRecord, tx: TxRecord | None, policy: TrustPolicy) -> Verdict:
    """Check one record against `policy`; never raises for hostile input.

    Args:
        record: The parsed record.
        tx: The GraphQL row it came from, if any (its item proof and reported owner
            are used); None to use the proof the record carries (a whole data item).
        policy: The database and the trusted set.
    """
    signer: str | None = None
    try:
        _check_tags(record, policy)
        public_key = _recover(record)
        signer = address_from_public_key(public_key)
        if record.version != LEGACY_VERSION:
            actual = hashlib.sha256(record.document).hexdigest()
            if actual != record.payload_sha256:
                raise _Failed(Reason.PAYLOAD_HASH_MISMATCH, f"sha256 is {actual}")
            derived = record_action_id(record.original_dbid, record.action_name,
                                       record.values, record.tx)
            if record.action_id != derived:
                raise _Failed(Reason.ACTION_ID_MISMATCH, f"{record.action_id} should be {derived}")
        _check_item(record, tx, public_key, policy)
        if not policy.trusts(signer, record.local_db_name):
            raise _Failed(Reason.UNTRUSTED_SIGNER, f"{signer} is not trusted for "
                           f"{policy.original_dbid}; add it to the trusted providers if it is")
    except _Failed as failed:
        message = REASONS[failed.reason] + (f": {failed.detail}" if failed.detail else "")
        return Verdict(False, failed.reason, signer, f"record {record.tx_id}: {message}")
    return Verdict(True, "ok", signer, f"record {record.tx_id} signed by {signer}")


def _check_tags(record: SyncRecord, policy: TrustPolicy) -> None:
    names = [n for n, _ in record.tags]
    known = COMMON_TAGS + V2_TAGS + V3_TAGS
    repeated = sorted({n for n in names if n in known and names.count(n) > 1})
    if repeated:
        raise _Failed(Reason.DUPLICATE_TAG, ", ".join(repeated))
    first = dict(reversed(record.tags))  # the first value of each name
    for name, want, reason in (("Application", APPLICATION, Reason.WRONG_APPLICATION),
                               ("Type", RECORD_TYPE, Reason.WRONG_TYPE),
                               ("Content-Type", CONTENT_TYPE, Reason.WRONG_CONTENT_TYPE)):
        if first.get(name) != want:
            raise _Failed(reason, f"got {first.get(name, '')[:40]!r}")
    if record.original_dbid != policy.original_dbid:
        raise _Failed(Reason.FOREIGN_DATABASE, f"{record.original_dbid[:64]!r}, replaying "
                       f"{policy.original_dbid}")
    if not is_address(record.provider_address):
        raise _Failed(Reason.BAD_ADDRESS, repr(record.provider_address[:64]))


def _recover(record: SyncRecord) -> bytes:
    text = record.signature.removeprefix("0x")
    try:
        public_key = recover_personal(record.signed_text(), bytes.fromhex(text))
    except ValueError as exc:
        raise _Failed(Reason.BAD_SIGNATURE, str(exc)) from exc
    recovered = address_from_public_key(public_key)
    if recovered.lower() != record.provider_address.lower():
        raise _Failed(Reason.SIGNER_MISMATCH, f"recovered {recovered}, the tag says "
                       f"{record.provider_address}")
    return public_key


def _proof(record: SyncRecord, tx: TxRecord | None) -> ItemProof:
    if tx is None:
        return record.proof
    owner = tx.owner_key
    sig_type = 1 if owner is not None and len(owner) == 512 else 3
    try:
        target = b64url_decode(tx.target) if tx.target else None
    except ValueError as exc:
        raise _Failed(Reason.BAD_ITEM_SIGNATURE, "the reported target is not base64url") from exc
    return ItemProof(sig_type, tx.signature, owner, target, tx.anchor)


def _check_item(record: SyncRecord, tx: TxRecord | None, public_key: bytes,
                policy: TrustPolicy) -> None:
    """Check the item's own signature; refuse, or return when it verified or is optional."""
    legacy = record.version == LEGACY_VERSION
    provider = record.provider_address.lower()
    reported = tx.owner_address if tx is not None else ""
    if reported.startswith("0x") and reported.lower() != provider:
        raise _Failed(Reason.ITEM_OWNER_MISMATCH, f"the index reports owner {reported}")
    proof = _proof(record, tx)
    if proof.owner is not None and \
            owner_address(proof.signature_type, proof.owner).lower() != provider:
        raise _Failed(Reason.ITEM_OWNER_MISMATCH, "the item owner is "
                       f"{owner_address(proof.signature_type, proof.owner)}")
    if proof.signature is None:
        if legacy and not policy.allow_unverified_legacy:
            raise _Failed(Reason.ITEM_SIGNATURE_UNVERIFIABLE, "the source reports no signature")
        return
    if b64url(hashlib.sha256(proof.signature).digest()) != record.tx_id:
        raise _Failed(Reason.ITEM_ID_MISMATCH, f"id {record.tx_id}")
    owner = proof.owner if proof.owner is not None else public_key
    try:
        tag_bytes = encode_tags(list(record.tags))
    except TagError as exc:
        raise _Failed(Reason.BAD_ITEM_SIGNATURE, f"tags do not re-encode: {exc}") from exc
    message = deep_hash([b"dataitem", b"1", str(proof.signature_type).encode(), owner,
                         proof.target or b"", proof.anchor or b"", tag_bytes, record.document])
    if verify_signature(proof.signature_type, owner, message, proof.signature):
        return
    # kwil-sync writes v2 items without an anchor, so a v2 failure is always real. A
    # 2023 item had a random anchor that Irys (and arlocal) do not report.
    if not legacy or proof.anchor is not None:
        raise _Failed(Reason.BAD_ITEM_SIGNATURE, "the signature does not match the content")
    if not policy.allow_unverified_legacy:
        raise _Failed(Reason.ITEM_SIGNATURE_UNVERIFIABLE, "the source reports no anchor, which "
                       "2023 items had; read through a gateway that does (ar.io), or allow "
                       "unverified 2023 records")
