"""The sync record (docs/RECORD.md): build versions 2 and 3, read 2023, 2 and 3.

A record is one ANS-104 data item: a JSON document naming an action and its string
values, fourteen tags in a fixed order (seventeen in version 3, which adds the kwild
transaction the action committed in), signed by the provider's Ethereum key. This
module only builds and parses; `kwil_sync.verify` decides whether a record is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.arweave.signers import b64url, b64url_decode
from kwil_sync.arweave.tags import Tag
from kwil_sync.errors import KwilSyncError
from kwil_sync.refusals import Reason

__all__ = [
    "APPLICATION",
    "MAX_DOCUMENT_BYTES",
    "RECORD_TYPE",
    "RecordError",
    "SyncRecord",
    "TxRef",
    "action_id",
    "build_record",
    "canonical_text",
    "encode_document",
    "parse_document",
    "record_action_id",
    "tied_action_id",
]

MAX_DOCUMENT_BYTES = 64 * 1024
APPLICATION = "KwilDb"
RECORD_TYPE = "Action-Sync"
CONTENT_TYPE = "application/json"
SYNC_VERSION = "2"
TIED_SYNC_VERSION = "3"  # adds the kwild transaction (docs/RECORD.md, version 3)
LEGACY_VERSION = 1  # the 2023 extension's records: no Sync-Version tag
FIRST_PREV_ACTION_ID = "-"
# Tags every record carries (2023 and v2), then those only v2 adds.
COMMON_TAGS = ("Application", "Content-Type", "Original-DBID", "Local-DBID", "Local-DB-Name",
               "Type", "Action-Id", "Provider-Address", "Signature")
V2_TAGS = ("Sync-Version", "Sequence", "Prev-Action-Id", "Payload-SHA256", "Created-At")
V3_TAGS = ("Kwil-Tx-Hash", "Kwil-Height", "Kwil-Tx-Call")
_TX_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TxRef:
    """The kwild transaction a tied action ran in.

    Attributes:
        tx_hash: 64 lowercase hex digits (kwild's `@txid`, the hash `tx_query` takes).
        height: The block height the action ran at (`@height`).
        call_index: 0-based position of this save among the transaction's distinct
            saves, in execution order (the argument set, when each set saves once).
    """

    tx_hash: str
    height: int
    call_index: int = 0

    def __post_init__(self) -> None:
        if not _TX_HASH.match(self.tx_hash):
            raise RecordError(Reason.BAD_TAG, f"a kwild tx hash is 64 lowercase hex digits, got "
                              f"{self.tx_hash[:80]!r}")
        if self.height < 1 or self.call_index < 0:
            raise RecordError(Reason.BAD_TAG, f"height must be >= 1 and the call index >= 0, got "
                              f"{self.height} and {self.call_index}")


class RecordError(KwilSyncError, ValueError):
    """A record that cannot be read or written.

    Attributes:
        reason: Why, as its stable code (`Reason.BAD_JSON`, `NOT_UTF8`, `BAD_SHAPE`,
            `BAD_VALUE`, `MISSING_TAG`, `BAD_TAG`, `OVERSIZE`) for quarantine tables
            and reports.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode_document(action_name: str, data: Sequence[tuple[str, str]]) -> bytes:
    """The compact JSON document the 2023 extension wrote (`JSON.stringify` layout)."""
    doc = {"actionName": action_name, "data": [{"name": n, "value": v} for n, v in data]}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise RecordError(Reason.BAD_JSON, f"the document repeats a JSON key among {sorted(keys)}")
    return dict(pairs)


def parse_document(raw: bytes) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Read `{"actionName", "data": [{"name", "value"}]}`; every name and value a string.

    Raises:
        RecordError: With reason `oversize`, `not-utf8`, `bad-json`, `bad-shape` or `bad-value`.
    """
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise RecordError(Reason.OVERSIZE, f"document is {len(raw)} bytes, over the "
                          f"{MAX_DOCUMENT_BYTES}-byte limit")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(Reason.NOT_UTF8, f"document is not UTF-8 ({exc.reason} at byte "
                          f"{exc.start})") from exc
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise RecordError(Reason.BAD_JSON, f"document is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or "actionName" not in doc or "data" not in doc:
        raise RecordError(Reason.BAD_SHAPE,
                          'document must be an object with "actionName" and "data"')
    name, data = doc["actionName"], doc["data"]
    if not isinstance(name, str) or not name:
        raise RecordError(Reason.BAD_VALUE, '"actionName" must be a non-empty string')
    if not isinstance(data, list):
        raise RecordError(Reason.BAD_SHAPE, '"data" must be a list of {"name", "value"} objects')
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or set(entry) != {"name", "value"}:
            raise RecordError(Reason.BAD_SHAPE, f'data[{i}] must be exactly {{"name", "value"}}')
        if not isinstance(entry["name"], str) or not isinstance(entry["value"], str):
            raise RecordError(Reason.BAD_VALUE, f"data[{i}] name and value must be strings, got "
                              f"{type(entry['name']).__name__}/{type(entry['value']).__name__}")
        pairs.append((entry["name"], entry["value"]))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise RecordError(Reason.BAD_SHAPE, f"data repeats a parameter name among {names}")
    return name, tuple(pairs)


def action_id(original_dbid: str, action_name: str, values: Sequence[str]) -> str:
    """The deterministic version 2 Action-Id: same action and values, same id."""
    text = json.dumps([original_dbid, action_name, list(values)], separators=(",", ":"),
                      ensure_ascii=False)
    return b64url(hashlib.sha256(text.encode()).digest())[:32]


def tied_action_id(original_dbid: str, action_name: str, values: Sequence[str],
                   tx_hash: str) -> str:
    """The version 3 Action-Id: one id per (database, transaction, action, values).

    A node replaying the block, or another validator, makes the same call with the same
    transaction hash, so it gets the same id; the same values in another transaction
    are another action.
    """
    text = json.dumps([original_dbid, action_name, list(values), tx_hash],
                      separators=(",", ":"), ensure_ascii=False)
    return b64url(hashlib.sha256(text.encode()).digest())[:32]


def record_action_id(original_dbid: str, action_name: str, values: Sequence[str],
                     tx: TxRef | None) -> str:
    """The Action-Id a v2 (untied) or v3 (tied) record must carry."""
    if tx is None:
        return action_id(original_dbid, action_name, values)
    return tied_action_id(original_dbid, action_name, values, tx.tx_hash)


def canonical_text(*, original_dbid: str, action_id: str, sequence: int, prev_action_id: str,
                   payload_sha256: str, created_at_ms: int, tx: TxRef | None = None) -> bytes:
    """What a version 2 (or, with `tx`, version 3) `Signature` tag signs, as UTF-8 bytes."""
    lines = [f"kwil-sync record v{TIED_SYNC_VERSION if tx else SYNC_VERSION}",
             f"Original-DBID: {original_dbid}",
             f"Action-Id: {action_id}", f"Sequence: {sequence}",
             f"Prev-Action-Id: {prev_action_id}", f"Payload-SHA256: {payload_sha256}",
             f"Created-At: {created_at_ms}"]
    if tx is not None:
        lines += [f"Kwil-Tx-Hash: {tx.tx_hash}", f"Kwil-Height: {tx.height}",
                  f"Kwil-Tx-Call: {tx.call_index}"]
    return ("\n".join(lines) + "\n").encode()


def build_record(signer: EthereumSigner, *, original_dbid: str, local_dbid: str,
                 local_db_name: str, action_name: str, data: list[tuple[str, str]],
                 sequence: int, prev_action_id: str, created_at_ms: int,
                 tx: TxRef | None = None) -> DataItem:
    """Sign a record for one action as a data item, ready to upload.

    Without `tx` the record is version 2 (untied: the 2023 `save_action` form); with
    it, version 3, carrying and signing the kwild transaction the action committed in.

    Raises:
        RecordError: If a value is not a string, the document is over
            `MAX_DOCUMENT_BYTES`, or sequence and prev_action_id disagree.
    """
    if any(not isinstance(n, str) or not isinstance(v, str) for n, v in data):
        raise RecordError(Reason.BAD_VALUE, "every parameter name and value must be a string")
    if sequence < 1:
        raise RecordError(Reason.BAD_TAG, f"Sequence starts at 1, got {sequence}")
    if (sequence == 1) != (prev_action_id == FIRST_PREV_ACTION_ID):
        raise RecordError(Reason.BAD_TAG, "Prev-Action-Id is '-' exactly when Sequence is 1")
    document = encode_document(action_name, data)
    if len(document) > MAX_DOCUMENT_BYTES:
        raise RecordError(Reason.OVERSIZE, f"document is {len(document)} bytes, over the "
                          f"{MAX_DOCUMENT_BYTES}-byte limit: shorten the action's values")
    aid = record_action_id(original_dbid, action_name, [v for _, v in data], tx)
    digest = hashlib.sha256(document).hexdigest()
    text = canonical_text(original_dbid=original_dbid, action_id=aid, sequence=sequence,
                          prev_action_id=prev_action_id, payload_sha256=digest,
                          created_at_ms=created_at_ms, tx=tx)
    signature = "0x" + signer.key.sign_personal(text).hex()
    tags: list[Tag] = [
        ("Application", APPLICATION), ("Content-Type", CONTENT_TYPE),
        ("Original-DBID", original_dbid), ("Local-DBID", local_dbid),
        ("Local-DB-Name", local_db_name), ("Type", RECORD_TYPE), ("Action-Id", aid),
        ("Provider-Address", signer.address), ("Signature", signature),
        ("Sync-Version", TIED_SYNC_VERSION if tx else SYNC_VERSION),
        ("Sequence", str(sequence)), ("Prev-Action-Id", prev_action_id),
        ("Payload-SHA256", digest), ("Created-At", str(created_at_ms)),
    ]
    if tx is not None:
        tags += [("Kwil-Tx-Hash", tx.tx_hash), ("Kwil-Height", str(tx.height)),
                 ("Kwil-Tx-Call", str(tx.call_index))]
    return DataItem.create(document, tags, signer)


@dataclass(frozen=True)
class ItemProof:
    """The data item's own signature parts, where the source supplies them."""

    signature_type: int
    signature: bytes | None
    owner: bytes | None
    target: bytes | None
    anchor: bytes | None


@dataclass(frozen=True)
class SyncRecord:
    """One parsed record of either version. Parsing checks shape, not trust."""

    tx_id: str
    version: int  # 1 = the 2023 format, 2 or 3 = that Sync-Version
    tags: tuple[Tag, ...]
    original_dbid: str
    local_dbid: str
    local_db_name: str
    action_id: str
    provider_address: str
    signature: str
    action_name: str
    data: tuple[tuple[str, str], ...]
    document: bytes
    timestamp_ms: int
    proof: ItemProof
    sequence: int | None = None
    prev_action_id: str | None = None
    payload_sha256: str | None = None
    created_at_ms: int | None = None
    tx: TxRef | None = None  # version 3: the kwild transaction it committed in

    @property
    def values(self) -> list[str]:
        return [v for _, v in self.data]

    @property
    def order_key(self) -> tuple[int, str, int, str]:
        """(timestamp_ms, provider, sequence, action_id); 2023 records sort as sequence 0."""
        return (self.timestamp_ms, self.provider_address.lower(), self.sequence or 0,
                self.action_id)

    def signed_text(self) -> bytes:
        """What `Signature` signs: the canonical text (v2, v3) or the Action-Id (2023)."""
        if self.version == LEGACY_VERSION:
            return self.action_id.encode()
        assert self.sequence is not None and self.prev_action_id is not None
        assert self.payload_sha256 is not None and self.created_at_ms is not None
        return canonical_text(original_dbid=self.original_dbid, action_id=self.action_id,
                              sequence=self.sequence, prev_action_id=self.prev_action_id,
                              payload_sha256=self.payload_sha256,
                              created_at_ms=self.created_at_ms, tx=self.tx)

    @classmethod
    def from_item(cls, item: DataItem, *, timestamp_ms: int | None = None) -> SyncRecord:
        """Read a record from a whole data item (the shim's outbox, a bundle, a test).

        Args:
            item: The data item.
            timestamp_ms: The bundler's or block's timestamp; defaults to Created-At
                (v2) or 0 (2023) when not known.

        Raises:
            RecordError: Naming what is malformed.
        """
        proof = ItemProof(item.signature_type, item.signature, item.owner, item.target,
                          item.anchor)
        return _parse(item.id, item.tags, bytes(item.data), timestamp_ms, proof)

    @classmethod
    def from_parts(cls, tx: TxRecord, document: bytes) -> SyncRecord:
        """Read a record from a GraphQL row and the document fetched for its id.

        Raises:
            RecordError: Naming what is malformed.
        """
        owner = tx.owner_key
        sig_type = 1 if owner is not None and len(owner) == 512 else 3
        proof = ItemProof(sig_type, tx.signature, owner, _b64(tx.target, "target"), tx.anchor)
        return _parse(tx.id, [(n, v) for n, v in tx.tags], bytes(document), tx.timestamp_ms,
                      proof)


def _b64(text: str | None, what: str) -> bytes | None:
    if not text:
        return None
    try:
        return b64url_decode(text)
    except ValueError as exc:
        raise RecordError(Reason.BAD_TAG, f"the item's {what} is not base64url") from exc


def _tag_values(tags: Sequence[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in tags:
        values.setdefault(name, value)  # first wins; verify refuses repeats
    return values


def _int_tag(values: dict[str, str], name: str) -> int:
    text = values[name]
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise RecordError(Reason.BAD_TAG, f"tag {name} must be a decimal number, got {text[:40]!r}")
    return int(text)


def _parse(tx_id: str, tags: Sequence[tuple[str, str]], document: bytes,
           timestamp_ms: int | None, proof: ItemProof) -> SyncRecord:
    values = _tag_values(tags)
    version = LEGACY_VERSION
    if "Sync-Version" in values:
        if values["Sync-Version"] not in (SYNC_VERSION, TIED_SYNC_VERSION):
            raise RecordError(Reason.BAD_TAG,
                              f"unknown Sync-Version {values['Sync-Version'][:20]!r}; this "
                              "reader knows 2 and 3 (and the 2023 records without it)")
        version = int(values["Sync-Version"])
    required = COMMON_TAGS + (V2_TAGS if version >= 2 else ()) + (V3_TAGS if version == 3
                                                                  else ())
    missing = [name for name in required if not values.get(name)]
    if missing:
        raise RecordError(Reason.MISSING_TAG, f"record {tx_id} lacks tag(s) {', '.join(missing)}")
    action_name, data = parse_document(document)
    v2: dict[str, Any] = {}
    if version >= 2:
        v2 = {"sequence": _int_tag(values, "Sequence"),
              "prev_action_id": values["Prev-Action-Id"],
              "payload_sha256": values["Payload-SHA256"],
              "created_at_ms": _int_tag(values, "Created-At")}
        if v2["sequence"] < 1:
            raise RecordError(Reason.BAD_TAG, "tag Sequence starts at 1")
    if version == 3:
        v2["tx"] = TxRef(values["Kwil-Tx-Hash"], _int_tag(values, "Kwil-Height"),
                         _int_tag(values, "Kwil-Tx-Call"))
    if timestamp_ms is None:
        timestamp_ms = v2.get("created_at_ms", 0)
    return SyncRecord(
        tx_id=tx_id, version=version, tags=tuple((n, v) for n, v in tags),
        original_dbid=values["Original-DBID"], local_dbid=values["Local-DBID"],
        local_db_name=values["Local-DB-Name"], action_id=values["Action-Id"],
        provider_address=values["Provider-Address"], signature=values["Signature"],
        action_name=action_name, data=data, document=document, timestamp_ms=timestamp_ms,
        proof=proof, **v2)
