"""The v0.10 action payload codec (kwild v0.10.x): little-endian binary.

The little-endian layout of kwil-db ``core/types/payloads.go``
(DataType big-endian inside). Every datum is ``00`` (null) or ``01 | value``; a value of
any type may be ``None``, and array elements may be ``None``. A null of type ``null`` is
written as one ``00`` datum, as kwil-js 0.9 does (Go writes none; both decode).
"""

from __future__ import annotations

import struct
from typing import Any

from kwil_sync.kwil.arguments import (
    UINT16_MAX,
    UINT32_MAX,
    V010_TYPES,
    PayloadError,
    base_type,
    scalar_bytes,
    scalar_value,
)
from kwil_sync.kwil.versions import V010

__all__ = ["decode_action", "decode_call", "encode_action", "encode_call"]


def _u16(n: int, what: str) -> bytes:
    if not 0 <= n <= UINT16_MAX:
        raise PayloadError(f"too many {what}: {n} (at most {UINT16_MAX})")
    return struct.pack("<H", n)


def _lenp(b: bytes) -> bytes:
    if len(b) >= UINT32_MAX:
        raise PayloadError("a field of 4 GiB or more does not fit a Kwil payload")
    return struct.pack("<I", len(b)) + b


def _v010_datatype(name: str, is_array: bool, meta: tuple[int, int]) -> bytes:
    nb = name.encode()
    return (
        struct.pack(">HI", 0, len(nb)) + nb + (b"\x01" if is_array else b"\x00")
        + struct.pack(">HH", *meta)
    )


def _v010_value(arg: dict) -> bytes:
    name = arg["type"]
    base = V010_TYPES[name]
    is_array = arg.get("is_array", False)
    meta = tuple(arg.get("metadata") or (0, 0))
    values = arg["value"] if is_array else [arg["value"]]
    out = [struct.pack("<H", 0), _lenp(_v010_datatype(name, is_array, meta))]  # type: ignore[arg-type]
    out.append(_u16(len(values), "array elements"))
    for v in values:
        out.append(_lenp(b"\x00" if v is None else b"\x01" + scalar_bytes(base, v)))
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int, field_name: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise PayloadError(
                f"v0.10 {self.what}: {field_name} needs {n} bytes at offset {self.pos}, "
                f"only {len(self.data) - self.pos} left"
            )
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u16(self, field_name: str) -> int:
        return int(struct.unpack("<H", self.take(2, field_name))[0])

    def blob(self, field_name: str) -> bytes:
        n = struct.unpack("<I", self.take(4, field_name + " length"))[0]
        if n == UINT32_MAX:
            raise PayloadError(f"v0.10 {self.what}: {field_name} is a nil slice")
        return self.take(n, field_name)

    def text(self, field_name: str) -> str:
        try:
            return self.blob(field_name).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError(f"v0.10 {self.what}: {field_name} is not valid UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(
                f"v0.10 {self.what}: {len(self.data) - self.pos} trailing bytes at offset "
                f"{self.pos}"
            )


def _v010_decode_datatype(b: bytes) -> tuple[str, bool, tuple[int, int]]:
    if len(b) < 11:
        raise PayloadError(f"v0.10 DataType: {len(b)} bytes is too short")
    ver, name_len = struct.unpack(">HI", b[:6])
    if ver != 0:
        raise PayloadError(f"v0.10 DataType: unknown version {ver}")
    if len(b) != 6 + name_len + 5:
        raise PayloadError(f"v0.10 DataType: name length {name_len} does not match {len(b)} bytes")
    try:
        name = b[6 : 6 + name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("v0.10 DataType: name is not valid UTF-8") from None
    flag = b[6 + name_len]
    if flag not in (0, 1):
        raise PayloadError(f"v0.10 DataType: is_array byte must be 0 or 1, got {flag}")
    meta = struct.unpack(">HH", b[7 + name_len :])
    return name, flag == 1, (meta[0], meta[1])


def _v010_decode_value(b: bytes) -> dict:
    r = _Reader(b, "EncodedValue")
    ver = r.u16("version")
    if ver != 0:
        raise PayloadError(f"v0.10 EncodedValue: unknown version {ver}")
    name, is_array, meta = _v010_decode_datatype(r.blob("type"))
    base = base_type(V010, name)
    n = r.u16("data count")
    raw = [r.blob(f"datum {i}") for i in range(n)]
    r.end()
    values: list[Any] = []
    for i, d in enumerate(raw):
        if d == b"\x00":
            values.append(None)
        elif d[:1] == b"\x01" and base != "null":
            values.append(scalar_value(V010, name, base, d[1:]))
        elif base == "null" and d == b"" and not is_array and n == 1:
            values.append(None)  # Go's decoder accepts an empty datum for null
        else:
            raise PayloadError(
                f"v0.10 EncodedValue: datum {i} of type {name!r} must start with 00 (null) "
                f"or 01 (value), got {d[:4].hex() or 'nothing'}"
            )
    out: dict[str, Any] = {"type": name}
    if is_array:
        out["value"] = values
        out["is_array"] = True
    elif base == "null":
        if n > 1:
            raise PayloadError(f"v0.10 EncodedValue: a null has at most 1 datum, got {n}")
        out["value"] = None
    else:
        if n != 1:
            raise PayloadError(f"v0.10 EncodedValue: a scalar {name!r} has 1 datum, got {n}")
        out["value"] = values[0]
    if meta != (0, 0):
        out["metadata"] = list(meta)
    return out


def _v010_head(payload: Any, what: str) -> tuple[_Reader, str, str]:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError(f"a {what} payload is bytes, got {type(payload).__name__}")
    r = _Reader(bytes(payload), what)
    ver = r.u16("version")
    if ver != 0:
        raise PayloadError(f"v0.10 {what}: unknown version {ver}")
    return r, r.text("namespace"), r.text("action")


# ---------------------------------------------------------------------------
# payloads (target and action as UTF-8, arguments normalised by `arguments`)


def encode_action(target: bytes, action: bytes, sets: list[list[dict]]) -> bytes:
    """An action execution payload: one list of normalised arguments per batched call."""
    out = [struct.pack("<H", 0), _lenp(target), _lenp(action), _u16(len(sets), "argument sets")]
    for s in sets:
        out.append(_u16(len(s), "arguments"))
        out.extend(_lenp(_v010_value(a)) for a in s)
    return b"".join(out)


def decode_action(payload: bytes) -> tuple[str, str, list[list[dict]]]:
    """(namespace, action, argument sets) of an action execution payload."""
    r, target, action = _v010_head(payload, "action execution")
    sets = []
    for _ in range(r.u16("call count")):
        n = r.u16("argument count")
        sets.append([_v010_decode_value(r.blob("argument")) for _ in range(n)])
    r.end()
    return target, action, sets


def encode_call(target: bytes, action: bytes, args: list[dict]) -> bytes:
    """A view call body payload: one list of normalised arguments."""
    out = [struct.pack("<H", 0), _lenp(target), _lenp(action), _u16(len(args), "arguments")]
    out.extend(_lenp(_v010_value(a)) for a in args)
    return b"".join(out)


def decode_call(payload: bytes) -> tuple[str, str, list[dict]]:
    """(namespace, action, arguments) of a view call body payload."""
    r, target, action = _v010_head(payload, "action call")
    args = [_v010_decode_value(r.blob("argument")) for _ in range(r.u16("argument count"))]
    r.end()
    return target, action, args
