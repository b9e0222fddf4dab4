"""ANS-104 data items: create, parse and verify, byte-compatible with arbundles.

Layout (little-endian integers): signature type (2), signature, owner, target flag
(+32), anchor flag (+32), tag count (8), tag bytes length (8), Avro tags, data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.signers import (
    SIGNATURE_TYPES,
    ArweaveSigner,
    EthereumSigner,
    Signer,
    b64url,
    owner_address,
    verify_signature,
)
from kwil_sync.arweave.tags import Tag, TagError, decode_tags, encode_tags
from kwil_sync.errors import KwilSyncError

__all__ = ["ArweaveSigner", "DataItem", "DataItemError", "EthereumSigner"]


class DataItemError(KwilSyncError, ValueError):
    """Bytes that are not a well-formed ANS-104 data item."""


@dataclass(frozen=True)
class DataItem:
    """One signed ANS-104 data item. Build with `create`, read with `parse`."""

    signature_type: int
    signature: bytes
    owner: bytes
    target: bytes | None
    anchor: bytes | None
    tags: list[Tag]
    data: bytes
    raw: bytes = field(repr=False)
    tag_bytes: bytes = field(repr=False, default=b"")

    @property
    def id(self) -> str:
        """base64url(sha256(signature)), the id gateways serve the item under."""
        return b64url(hashlib.sha256(self.signature).digest())

    @property
    def owner_address(self) -> str:
        """The signer's native address (0x EIP-55 for Ethereum keys)."""
        return owner_address(self.signature_type, self.owner)

    @property
    def arweave_address(self) -> str:
        """base64url(sha256(owner)): the address gateways index the owner under."""
        return b64url(hashlib.sha256(self.owner).digest())

    def tag(self, name: str) -> str | None:
        """The value of the first tag called `name`, or None."""
        return next((v for n, v in self.tags if n == name), None)

    def signing_message(self) -> bytes:
        return _signing_message(self.signature_type, self.owner, self.target, self.anchor,
                                self.tag_bytes, self.data)

    def verify(self) -> bool:
        """True when the signature is the owner's over this exact content."""
        return verify_signature(self.signature_type, self.owner, self.signing_message(),
                                self.signature)

    @classmethod
    def create(
        cls,
        data: bytes,
        tags: list[Tag],
        signer: Signer,
        *,
        target: bytes | None = None,
        anchor: bytes | None = None,
    ) -> DataItem:
        """Sign `data` and `tags` into a new data item.

        Raises:
            TagError: If the tags break an ANS-104 limit.
            DataItemError: If target or anchor is not 32 bytes.
        """
        for name, value in (("target", target), ("anchor", anchor)):
            if value is not None and len(value) != 32:
                raise DataItemError(f"{name} must be 32 bytes, got {len(value)}")
        tag_bytes = encode_tags(tags)
        message = _signing_message(signer.signature_type, signer.owner, target, anchor,
                                   tag_bytes, data)
        signature = signer.sign(message)
        raw = b"".join((
            signer.signature_type.to_bytes(2, "little"),
            signature,
            signer.owner,
            b"\x01" + target if target else b"\x00",
            b"\x01" + anchor if anchor else b"\x00",
            len(tags).to_bytes(8, "little"),
            len(tag_bytes).to_bytes(8, "little"),
            tag_bytes,
            data,
        ))
        return cls(signer.signature_type, signature, signer.owner, target, anchor,
                   list(tags), data, raw, tag_bytes)

    @classmethod
    def parse(cls, raw: bytes) -> DataItem:
        """Read a data item; checks structure, not the signature (call `verify`).

        Raises:
            DataItemError: Naming what is wrong with the bytes.
        """
        raw = bytes(raw)
        if len(raw) < 2:
            raise DataItemError("data item is shorter than its signature type")
        sig_type = int.from_bytes(raw[:2], "little")
        if sig_type not in SIGNATURE_TYPES:
            raise DataItemError(f"unsupported signature type {sig_type} (known: 1, 3)")
        sig_len, owner_len = SIGNATURE_TYPES[sig_type]
        pos = 2

        def take(n: int, what: str) -> bytes:
            nonlocal pos
            if pos + n > len(raw):
                raise DataItemError(f"data item ends inside its {what}")
            chunk = raw[pos : pos + n]
            pos += n
            return chunk

        signature = take(sig_len, "signature")
        owner = take(owner_len, "owner")
        optional: list[bytes | None] = []
        for what in ("target", "anchor"):
            flag = take(1, f"{what} flag")[0]
            if flag not in (0, 1):
                raise DataItemError(f"{what} flag must be 0 or 1, got {flag}")
            optional.append(take(32, what) if flag else None)
        tag_count = int.from_bytes(take(8, "tag count"), "little")
        tag_len = int.from_bytes(take(8, "tag length"), "little")
        if tag_len > 4096:
            raise DataItemError(f"tag bytes length {tag_len} exceeds ANS-104's 4096")
        tag_bytes = take(tag_len, "tags")
        try:
            tags = decode_tags(tag_bytes)
        except TagError as exc:
            raise DataItemError(f"tags do not decode: {exc}") from exc
        if len(tags) != tag_count:
            raise DataItemError(f"header says {tag_count} tags, the tag bytes hold {len(tags)}")
        return cls(sig_type, signature, owner, optional[0], optional[1], tags, raw[pos:], raw,
                   tag_bytes)


def _signing_message(sig_type: int, owner: bytes, target: bytes | None, anchor: bytes | None,
                     tag_bytes: bytes, data: bytes) -> bytes:
    return deep_hash([b"dataitem", b"1", str(sig_type).encode(), owner, target or b"",
                      anchor or b"", tag_bytes, data])
