"""ANS-104 bundles: many data items in the data of one Arweave L1 transaction.

Layout (integers little-endian, 32 bytes each): item count N, then N headers of
(item size, raw item id = sha256(signature)), then the items back to back. The L1
transaction carrying a bundle is tagged `BUNDLE_TAGS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from kwil_sync.arweave.ans104 import DataItem, DataItemError
from kwil_sync.arweave.signers import b64url
from kwil_sync.arweave.tags import Tag
from kwil_sync.errors import KwilSyncError

__all__ = ["BUNDLE_TAGS", "Bundle", "BundleError", "encode_bundle"]

BUNDLE_TAGS: list[Tag] = [("Bundle-Format", "binary"), ("Bundle-Version", "2.0.0")]

_WORD = 32  # every integer and id in the header is 32 bytes
_ENTRY = 2 * _WORD


class BundleError(KwilSyncError, ValueError):
    """Bytes that are not a well-formed ANS-104 bundle."""


def _word(n: int) -> bytes:
    return n.to_bytes(_WORD, "little")


def encode_bundle(items: Sequence[DataItem]) -> bytes:
    """Bundle signed data items, in order, into ANS-104 binary bundle bytes."""
    headers = b"".join(_word(len(item.raw)) + hashlib.sha256(item.signature).digest()
                       for item in items)
    return b"".join((_word(len(items)), headers, *(item.raw for item in items)))


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle: its items and the ids its header states for them."""

    items: list[DataItem]
    header_ids: list[bytes] = field(repr=False)
    raw: bytes = field(repr=False)

    @property
    def ids(self) -> list[str]:
        """The item ids the header states (base64url), in bundle order."""
        return [b64url(raw_id) for raw_id in self.header_ids]

    @classmethod
    def from_items(cls, items: Sequence[DataItem]) -> Bundle:
        return cls.parse(encode_bundle(items))

    @classmethod
    def parse(cls, raw: bytes) -> Bundle:
        """Read a bundle; checks its structure and each item's, not signatures (`verify`).

        Raises:
            BundleError: Naming what is truncated or inconsistent.
        """
        raw = bytes(raw)
        if len(raw) < _WORD:
            raise BundleError(f"bundle is {len(raw)} bytes, shorter than its 32-byte item count")
        count = int.from_bytes(raw[:_WORD], "little")
        start = _WORD + _ENTRY * count
        if start > len(raw):
            raise BundleError(f"bundle header states {count} items but the bundle ends inside "
                              f"the header ({len(raw)} bytes, the header needs {start})")
        items: list[DataItem] = []
        header_ids: list[bytes] = []
        pos = start
        for i in range(count):
            entry = _WORD + _ENTRY * i
            size = int.from_bytes(raw[entry : entry + _WORD], "little")
            header_ids.append(raw[entry + _WORD : entry + _ENTRY])
            if pos + size > len(raw):
                raise BundleError(f"item {i} of {count} is stated as {size} bytes at offset "
                                  f"{pos}, but the bundle ends at {len(raw)}")
            try:
                items.append(DataItem.parse(raw[pos : pos + size]))
            except DataItemError as exc:
                raise BundleError(f"item {i} of {count} is not a data item: {exc}") from exc
            pos += size
        if pos != len(raw):
            raise BundleError(f"{len(raw) - pos} stray bytes after the last of {count} items")
        return cls(items, header_ids, raw)

    def verify(self) -> bool:
        """True when every item's signature verifies and its header id is its real id."""
        return all(
            hashlib.sha256(item.signature).digest() == raw_id and item.verify()
            for item, raw_id in zip(self.items, self.header_ids, strict=True)
        )
