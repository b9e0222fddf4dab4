"""Arweave's chunked Merkle tree: the `data_root` of v2 transactions and chunk proofs.

Data is cut into 256 KiB chunks; when the remainder after a full chunk would be
smaller than 32 KiB, the last two chunks split the rest evenly (the first one takes
the extra byte). Data whose size is a multiple of 256 KiB ends with an empty chunk
that is part of the tree but never uploaded. Hashes are SHA-256 and offsets are
32-byte big-endian "notes", exactly as arweave-js and the Erlang node build them:
leaf id = H(H(chunk_hash) + H(note(end))), branch id = H(H(left) + H(right) +
H(note(left_end))); an odd node at the end of a layer moves up unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = [
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "Chunk",
    "ChunkedData",
    "chunk_ranges",
    "chunk_data",
    "compute_root",
    "validate_path",
]

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024
NOTE_SIZE = 32
HASH_SIZE = 32


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _note(n: int) -> bytes:
    return n.to_bytes(NOTE_SIZE, "big")


@dataclass(frozen=True)
class Chunk:
    """One chunk of the data: bytes [start, end), with its proof (data_path)."""

    start: int
    end: int
    data_path: bytes

    @property
    def offset(self) -> int:
        """The offset POST /chunk takes: the chunk's last byte."""
        return self.end - 1


@dataclass(frozen=True)
class ChunkedData:
    """The Merkle root of some data and its uploadable chunks (empty ones left out)."""

    data_root: bytes
    chunks: list[Chunk]


@dataclass(frozen=True)
class _Node:
    id: bytes
    end: int  # one past the node's last byte
    # A leaf keeps its chunk; a branch keeps its children and its split point.
    chunk_hash: bytes = b""
    start: int = 0
    children: tuple[_Node, _Node] | None = None
    split: int = 0


def chunk_ranges(size: int) -> list[tuple[int, int]]:
    """The [start, end) ranges arweave-js cuts `size` bytes into (trailing empty included)."""
    ranges: list[tuple[int, int]] = []
    cursor, rest = 0, size
    while rest >= MAX_CHUNK_SIZE:
        chunk = MAX_CHUNK_SIZE
        after = rest - MAX_CHUNK_SIZE
        if 0 < after < MIN_CHUNK_SIZE:
            chunk = (rest + 1) // 2  # rebalance so the last chunk is not tiny
        ranges.append((cursor, cursor + chunk))
        cursor += chunk
        rest -= chunk
    ranges.append((cursor, cursor + rest))
    return ranges


def _build(data: bytes) -> tuple[_Node, list[_Node]]:
    leaves = [
        _Node(id=_sha256(_sha256(h := _sha256(data[s:e])), _sha256(_note(e))), end=e,
              chunk_hash=h, start=s)
        for s, e in chunk_ranges(len(data))
    ]
    layer = leaves
    while len(layer) > 1:
        nxt: list[_Node] = []
        for i in range(0, len(layer), 2):
            if i + 1 == len(layer):
                nxt.append(layer[i])
                continue
            left, right = layer[i], layer[i + 1]
            nxt.append(_Node(
                id=_sha256(_sha256(left.id), _sha256(right.id), _sha256(_note(left.end))),
                end=right.end, start=left.start, children=(left, right), split=left.end,
            ))
        layer = nxt
    return layer[0], leaves


def compute_root(data: bytes) -> bytes:
    """The Merkle root of `data` as arweave-js `computeRootHash` gives it (even for b"")."""
    return _build(data)[0].id


def chunk_data(data: bytes) -> ChunkedData:
    """Root and chunk proofs for `data`, as arweave-js `generateTransactionChunks`."""
    root, _ = _build(data)
    chunks: list[Chunk] = []
    stack: list[tuple[_Node, bytes]] = [(root, b"")]
    while stack:  # depth first, left before right: chunks come out in data order
        node, path = stack.pop()
        if node.children is None:
            chunks.append(Chunk(node.start, node.end, path + node.chunk_hash + _note(node.end)))
            continue
        left, right = node.children
        path += left.id + right.id + _note(node.split)
        stack.append((right, path))
        stack.append((left, path))
    if chunks[-1].start == chunks[-1].end:
        chunks.pop()  # the empty trailing chunk is never uploaded
    return ChunkedData(root.id, chunks)


def validate_path(root: bytes, offset: int, data_size: int, path: bytes) -> tuple[int, int] | None:
    """Check a chunk proof against `root`; return the chunk's [start, end) or None.

    Args:
        root: The transaction's data_root.
        offset: Any byte offset inside the chunk the proof is for.
        data_size: The transaction's data size.
        path: The proof (data_path) bytes.
    """
    if data_size <= 0:
        return None
    offset = min(max(offset, 0), data_size - 1)
    node_id, left_bound, right_bound = root, 0, data_size
    while len(path) > HASH_SIZE + NOTE_SIZE:
        left, right = path[:HASH_SIZE], path[HASH_SIZE : 2 * HASH_SIZE]
        note = path[2 * HASH_SIZE : 2 * HASH_SIZE + NOTE_SIZE]
        if _sha256(_sha256(left), _sha256(right), _sha256(note)) != node_id:
            return None
        split = int.from_bytes(note, "big")
        if offset < split:
            node_id, right_bound = left, min(right_bound, split)
        else:
            node_id, left_bound = right, max(left_bound, split)
        path = path[2 * HASH_SIZE + NOTE_SIZE :]
    if len(path) != HASH_SIZE + NOTE_SIZE:
        return None
    chunk_hash, note = path[:HASH_SIZE], path[HASH_SIZE:]
    if _sha256(_sha256(chunk_hash), _sha256(note)) != node_id:
        return None
    return left_bound, right_bound
