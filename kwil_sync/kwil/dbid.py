"""Kwil database ids (kwild v0.9 and earlier; v0.10 names namespaces directly)."""

from __future__ import annotations

import hashlib

__all__ = ["dbid", "owner_bytes"]


def owner_bytes(owner: str | bytes) -> bytes:
    """The owner identifier as bytes: the 20 address bytes of a secp256k1 signer.

    Accepts an address as hex (with or without ``0x``, any case) or raw bytes.
    """
    if isinstance(owner, (bytes, bytearray)):
        return bytes(owner)
    if not isinstance(owner, str):
        raise TypeError(f"owner must be a hex address or bytes, got {type(owner).__name__}")
    h = owner[2:] if owner[:2].lower() == "0x" else owner
    try:
        raw = bytes.fromhex(h)
    except ValueError:
        raise ValueError(f"owner {owner!r} is not hex") from None
    return raw


def dbid(owner_address: str | bytes, name: str) -> str:
    """``"x" + sha224(lower(name) utf-8 + owner bytes).hexdigest()`` (kwil-db v0.9)."""
    digest = hashlib.sha224(name.lower().encode("utf-8") + owner_bytes(owner_address))
    return "x" + digest.hexdigest()
