"""ANS-104 tags: the Avro array-of-{name, value} encoding, with the standard's limits."""

from __future__ import annotations

from kwil_sync.errors import KwilSyncError

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_BYTES",
    "MAX_NAME_BYTES",
    "MAX_VALUE_BYTES",
    "Tag",
    "TagError",
    "encode_tags",
    "decode_tags",
]

Tag = tuple[str, str]

MAX_TAGS = 128
MAX_NAME_BYTES = 1024
MAX_VALUE_BYTES = 3072
MAX_TAG_BYTES = 4096


class TagError(KwilSyncError, ValueError):
    """Tags break the ANS-104 limits or do not decode."""


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def check_tags(tags: list[Tag]) -> None:
    """Raise TagError naming the first tag that breaks an ANS-104 limit."""
    if len(tags) > MAX_TAGS:
        raise TagError(f"{len(tags)} tags; ANS-104 allows at most {MAX_TAGS}")
    for i, (name, value) in enumerate(tags):
        try:
            n, v = len(name.encode()), len(value.encode())
        except UnicodeEncodeError as exc:
            raise TagError(f"tag {i} is not encodable as UTF-8: {exc.reason}") from exc
        if not 1 <= n <= MAX_NAME_BYTES:
            raise TagError(f"tag {i} name is {n} bytes; it must be 1..{MAX_NAME_BYTES}")
        if not 1 <= v <= MAX_VALUE_BYTES:
            raise TagError(
                f"tag {i} ({name!r}) value is {v} bytes; it must be 1..{MAX_VALUE_BYTES}"
            )


def encode_tags(tags: list[Tag]) -> bytes:
    """Avro-encode tags as arbundles does; no tags encode to no bytes."""
    check_tags(tags)
    if not tags:
        return b""
    out = bytearray(_zigzag(len(tags)))
    for name, value in tags:
        for text in (name, value):
            raw = text.encode()
            out += _zigzag(len(raw)) + raw
    out.append(0)
    if len(out) > MAX_TAG_BYTES:
        raise TagError(f"tags take {len(out)} bytes; ANS-104 allows at most {MAX_TAG_BYTES}")
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def long(self) -> int:
        shift = z = 0
        while True:
            if self.pos >= len(self.data):
                raise TagError("tag bytes end inside a number")
            b = self.data[self.pos]
            self.pos += 1
            z |= (b & 0x7F) << shift
            if not b & 0x80:
                return (z >> 1) ^ -(z & 1)
            shift += 7
            if shift > 63:
                raise TagError("tag number is longer than 64 bits")

    def text(self) -> str:
        n = self.long()
        if n < 0 or self.pos + n > len(self.data):
            raise TagError("tag string length runs past the tag bytes")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise TagError("tag is not UTF-8") from exc


def decode_tags(data: bytes) -> list[Tag]:
    """Decode Avro tag bytes (any block layout Avro allows) into (name, value) pairs."""
    if not data:
        return []
    reader = _Reader(data)
    tags: list[Tag] = []
    while True:
        count = reader.long()
        if count == 0:
            break
        if count < 0:  # a block that also states its byte size
            count = -count
            reader.long()
        if len(tags) + count > MAX_TAGS:
            raise TagError(f"more than {MAX_TAGS} tags")
        for _ in range(count):
            tags.append((reader.text(), reader.text()))
    if reader.pos != len(data):
        raise TagError(f"{len(data) - reader.pos} stray bytes after the tags")
    return tags
