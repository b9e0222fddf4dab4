"""Arweave's deep hash (SHA-384), the message every data item and L1 tx signs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeAlias

DeepHashChunk: TypeAlias = "bytes | Sequence[DeepHashChunk]"

__all__ = ["DeepHashChunk", "deep_hash"]


def _sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def deep_hash(chunk: DeepHashChunk) -> bytes:
    """Hash bytes or a nested list of bytes as arweave-js `deepHash` does."""
    if isinstance(chunk, bytes | bytearray | memoryview):
        data = bytes(chunk)
        tag = b"blob" + str(len(data)).encode()
        return _sha384(_sha384(tag) + _sha384(data))
    acc = _sha384(b"list" + str(len(chunk)).encode())
    for item in chunk:
        acc = _sha384(acc + deep_hash(item))
    return acc
