"""Why a record is set aside: one `Reason` vocabulary and one `Refusal` type.

Every stage that refuses a record says why with a `Reason`: the document's parsing
(`kwil_sync.records.RecordError`), the fetch, trust (`kwil_sync.verify`), order
(`kwil_sync.ordering`), planning against the target's schema
(`kwil_sync.appliers.plan_call`) and the node's answer. The values are the stable codes
the ledger's quarantine stores and events, reports and alerts carry, so they never
change; a `Reason` compares equal to its code string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kwil_sync.records import SyncRecord

__all__ = ["Reason", "Refusal"]


class Reason(StrEnum):
    """A stable quarantine reason code (the value is what is stored and reported)."""

    # the document and its tags (kwil_sync.records)
    BAD_JSON = "bad-json"
    NOT_UTF8 = "not-utf8"
    BAD_SHAPE = "bad-shape"
    BAD_VALUE = "bad-value"
    MISSING_TAG = "missing-tag"
    BAD_TAG = "bad-tag"
    OVERSIZE = "oversize"
    # fetching (kwil_sync.replay_steps)
    DOCUMENT_MISSING = "document-missing"
    # trust (kwil_sync.verify, which describes each in REASONS)
    WRONG_APPLICATION = "wrong-application"
    WRONG_TYPE = "wrong-type"
    WRONG_CONTENT_TYPE = "wrong-content-type"
    DUPLICATE_TAG = "duplicate-tag"
    FOREIGN_DATABASE = "foreign-database"
    BAD_ADDRESS = "bad-address"
    BAD_SIGNATURE = "bad-signature"
    SIGNER_MISMATCH = "signer-mismatch"
    PAYLOAD_HASH_MISMATCH = "payload-hash-mismatch"
    ACTION_ID_MISMATCH = "action-id-mismatch"
    ITEM_ID_MISMATCH = "item-id-mismatch"
    BAD_ITEM_SIGNATURE = "bad-item-signature"
    ITEM_OWNER_MISMATCH = "item-owner-mismatch"
    ITEM_SIGNATURE_UNVERIFIABLE = "item-signature-unverifiable"
    UNTRUSTED_SIGNER = "untrusted-signer"
    # order (kwil_sync.ordering)
    SEQUENCE_GAP = "sequence-gap"
    SEQUENCE_REWIND = "sequence-rewind"
    CHAIN_MISMATCH = "chain-mismatch"
    # the target (kwil_sync.appliers) and the node's answer (kwil_sync.replay)
    UNKNOWN_ACTION = "unknown-action"
    ARGUMENT_MISMATCH = "argument-mismatch"
    BAD_ARGUMENT = "bad-argument"
    APPLY_FAILED = "apply-failed"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record set aside: which item, why (`reason`), a detail for people, and, where
    known, its action id and provider (what the ledger's quarantine keeps)."""

    item_id: str
    reason: Reason
    detail: str
    action_id: str | None = None
    provider: str | None = None

    @classmethod
    def of(cls, record: SyncRecord, reason: Reason, detail: str) -> Refusal:
        """The refusal of a parsed record (its item id, action id and provider)."""
        return cls(record.tx_id, reason, detail, record.action_id, record.provider_address)
