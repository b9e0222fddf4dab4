"""Kwil action payloads: encode and decode, for kwild v0.9 (RLP) and v0.10 (binary).

An argument is a dict ``{"type": name, "value": v}`` with optional ``"metadata": [a, b]``
(present only when not ``[0, 0]``) and optional ``"is_array": True`` (then ``value`` is a
list). ``arguments`` is a list of argument sets (one per batched call), each a list of
such dicts. Objects with ``type``/``value``/``metadata``/``is_array`` attributes are
accepted as well.

Python values per base type (both versions):

=============  ==========================  =========================================
type           value                       wire
=============  ==========================  =========================================
text           ``str``                     UTF-8
int / int8     ``int`` (signed 64-bit)     8 bytes big-endian two's complement
bool           ``bool``                    one byte, 1 or 0
blob / bytea   ``bytes``                   raw
uuid           ``str`` (also UUID, bytes)  16 raw bytes; decodes to the lowercase form
uint256        ``int`` (v0.9 only)         minimal big-endian
decimal /      ``str`` (also Decimal,      UTF-8 text
numeric        int)
null           ``None``                    see below
=============  ==========================  =========================================

v0.9 (kwild v0.9.x): ``00 01`` + RLP of ``[dbid, action, [[EncodedValue, ...], ...]]``
with ``EncodedValue = [[name, is_array, [m0, m1]?], [datum, ...]]``. Type names are the
v0.9 ones: ``text, int, bool, blob, uuid, uint256, decimal, null``. Like kwil-js 0.8
(and unlike Go, which omits it) the data list is always written, and a null is written
with one empty datum; the decoder accepts both forms. RLP cannot mark a null element
inside a typed value, so ``None`` is only allowed for type ``null`` in v0.9.

v0.10 (kwild v0.10.x): the little-endian layout of kwil-db ``core/types/payloads.go``
(DataType big-endian inside). Every datum is ``00`` (null) or ``01 | value``; a value of
any type may be ``None``, and array elements may be ``None``. A null of type ``null`` is
written as one ``00`` datum, as kwil-js 0.9 does (Go writes none; both decode).

The decoder is strict: wrong versions, lengths, trailing bytes, unknown types, bad
UTF-8 or a datum of the wrong size raise :class:`PayloadError`, never anything else.
"""

from __future__ import annotations

import struct
import uuid as _uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import rlp

from kwil_sync.errors import KwilSyncError

__all__ = [
    "VERSIONS",
    "V09",
    "V010",
    "ActionCall",
    "PayloadError",
    "encode_action",
    "decode_action",
    "encode_call",
    "decode_call",
    "base_type",
    "normalize_argument",
]

V09 = "v0.9"
V010 = "v0.10"
VERSIONS = (V09, V010)

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT16_MAX = 0xFFFF
UINT32_MAX = 0xFFFFFFFF

# v0.9 Go type names (core/types/schema.go); the decoder knows no aliases.
_V09_TYPES = {
    "text": "text",
    "int": "int",
    "bool": "bool",
    "blob": "blob",
    "uuid": "uuid",
    "uint256": "uint256",
    "decimal": "decimal",
    "null": "null",
}
# v0.10 Go typeAlias (core/types/data_types.go) plus null, mapped to our base names.
_V010_TYPES = {
    "string": "text",
    "text": "text",
    "int": "int",
    "integer": "int",
    "bigint": "int",
    "int8": "int",
    "bool": "bool",
    "boolean": "bool",
    "blob": "blob",
    "bytea": "blob",
    "uuid": "uuid",
    "decimal": "decimal",
    "numeric": "decimal",
    "null": "null",
}


class PayloadError(KwilSyncError, ValueError):
    """A payload or argument that cannot be encoded, or bytes that do not decode."""


@dataclass(frozen=True)
class ActionCall:
    """A decoded action execution (or view call): target, action and argument sets.

    ``target`` is the dbid (v0.9) or the namespace (v0.10). For :func:`decode_action`
    ``arguments`` is a list of argument sets; for :func:`decode_call` it is one set.
    """

    target: str
    action: str
    arguments: list = field(default_factory=list)


def _check_version(version: str) -> str:
    if version not in VERSIONS:
        raise PayloadError(f"unknown Kwil payload version {version!r}; use 'v0.9' or 'v0.10'")
    return version


def base_type(version: str, name: str) -> str:
    """The base type (text, int, bool, blob, uuid, uint256, decimal, null) of a wire name."""
    table = _V09_TYPES if _check_version(version) == V09 else _V010_TYPES
    try:
        return table[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(set(table)))
        raise PayloadError(f"unknown {version} type {name!r} (known: {known})") from None


# ---------------------------------------------------------------------------
# arguments as dicts


def _field(arg: Any, key: str, default: Any = None) -> Any:
    if isinstance(arg, Mapping):
        return arg.get(key, default)
    return getattr(arg, key, default)


def normalize_argument(version: str, arg: Any) -> dict:
    """Check one argument and return it in canonical dict form (what decode returns).

    Raises:
        PayloadError: on an unknown type, a bad metadata pair or a value that does not
            fit its type.
    """
    if not isinstance(arg, Mapping) and not hasattr(arg, "type"):
        raise PayloadError(f"an argument is a dict with 'type' and 'value', got {arg!r:.80}")
    name = _field(arg, "type")
    if isinstance(arg, Mapping) and "value" not in arg:
        raise PayloadError(f"argument of type {name!r} has no 'value'")
    value = _field(arg, "value")
    is_array = _field(arg, "is_array", False)
    if not isinstance(is_array, bool):
        raise PayloadError(f"is_array must be a bool, got {is_array!r}")
    metadata = _metadata(_field(arg, "metadata"))
    base = base_type(version, name)
    out: dict[str, Any] = {"type": name}
    if is_array and version == V09 and base == "null":
        raise PayloadError("v0.9 has no arrays of type 'null'")
    if is_array:
        if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
            raise PayloadError(f"an array argument of type {name!r} needs a list value")
        out["value"] = [_canon(version, name, base, v) for v in value]
        out["is_array"] = True
    else:
        out["value"] = _canon(version, name, base, value)
    if metadata != (0, 0):
        out["metadata"] = list(metadata)
    return out


def _metadata(meta: Any) -> tuple[int, int]:
    if meta is None:
        return (0, 0)
    if isinstance(meta, (str, bytes)) or not isinstance(meta, Sequence) or len(meta) != 2:
        raise PayloadError(f"metadata is a pair of uint16, got {meta!r}")
    a, b = meta
    for m in (a, b):
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= UINT16_MAX:
            raise PayloadError(f"metadata is a pair of uint16, got {list(meta)!r}")
    return (a, b)


def _canon(version: str, name: str, base: str, v: Any) -> Any:
    """Check a scalar value against its base type; return its canonical Python form."""
    if v is None:
        if version == V09 and base != "null":
            raise PayloadError(
                f"v0.9 cannot carry a null inside type {name!r}: use type 'null' instead"
            )
        return None
    if base == "null":
        raise PayloadError(f"type {name!r} only takes None, got {v!r:.80}")
    if base == "text":
        if not isinstance(v, str):
            raise PayloadError(f"type {name!r} takes a str, got {type(v).__name__}")
        _utf8(v, name)
        return v
    if base == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise PayloadError(f"type {name!r} takes an int, got {type(v).__name__}")
        if not INT64_MIN <= v <= INT64_MAX:
            raise PayloadError(f"type {name!r} holds a signed 64-bit integer, got {v}")
        return v
    if base == "bool":
        if not isinstance(v, bool):
            raise PayloadError(f"type {name!r} takes a bool, got {type(v).__name__}")
        return v
    if base == "blob":
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise PayloadError(f"type {name!r} takes bytes, got {type(v).__name__}")
        return bytes(v)
    if base == "uuid":
        return str(_uuid_of(v, name))
    if base == "uint256":
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << 256):
            raise PayloadError(f"type {name!r} takes an int in [0, 2**256), got {v!r:.80}")
        return v
    if base == "decimal":
        if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
            raise PayloadError(f"type {name!r} takes a decimal str, got {type(v).__name__}")
        s = v if isinstance(v, str) else str(v)
        _utf8(s, name)
        return s
    raise PayloadError(f"no encoding for type {name!r}")  # pragma: no cover


def _utf8(s: str, name: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"type {name!r}: text is not valid UTF-8 ({exc.reason})") from None


def _uuid_of(v: Any, name: str) -> _uuid.UUID:
    if isinstance(v, _uuid.UUID):
        return v
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return _uuid.UUID(bytes=bytes(v))
    if isinstance(v, str):
        try:
            return _uuid.UUID(v)
        except ValueError:
            pass
    raise PayloadError(f"type {name!r} takes a UUID, got {v!r:.80}")


def _value_bytes(base: str, v: Any) -> bytes:
    """Wire bytes of a canonical, non-null scalar."""
    if base == "text" or base == "decimal":
        return v.encode("utf-8")
    if base == "int":
        return struct.pack(">q", v)
    if base == "bool":
        return b"\x01" if v else b"\x00"
    if base == "blob":
        return v
    if base == "uuid":
        return _uuid.UUID(v).bytes
    if base == "uint256":
        return v.to_bytes((v.bit_length() + 7) // 8, "big")
    raise PayloadError(f"no encoding for base type {base!r}")  # pragma: no cover


def _value_from(version: str, name: str, base: str, data: bytes) -> Any:
    """Canonical Python value of a non-null datum."""
    if base == "text" or base == "decimal":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError(f"type {name!r}: datum is not valid UTF-8") from None
    if base == "int":
        if len(data) != 8:
            raise PayloadError(f"type {name!r}: an int datum has 8 bytes, got {len(data)}")
        return struct.unpack(">q", data)[0]
    if base == "bool":
        if data not in (b"\x00", b"\x01"):
            raise PayloadError(f"type {name!r}: a bool datum is one byte 0 or 1, got {data!r}")
        return data == b"\x01"
    if base == "blob":
        return bytes(data)
    if base == "uuid":
        if len(data) != 16:
            raise PayloadError(f"type {name!r}: a uuid datum has 16 bytes, got {len(data)}")
        return str(_uuid.UUID(bytes=bytes(data)))
    if base == "uint256":
        if len(data) > 32 or (data[:1] == b"\x00"):
            raise PayloadError(f"type {name!r}: not a minimal 256-bit big-endian integer")
        return int.from_bytes(data, "big")
    raise PayloadError(f"no decoding for type {name!r}")  # pragma: no cover


def _arg_sets(arguments: Any) -> list[list[Any]]:
    if arguments is None:
        return []
    if isinstance(arguments, (str, bytes, Mapping)) or not isinstance(arguments, Iterable):
        raise PayloadError("arguments is a list of argument sets (lists of argument dicts)")
    sets = []
    for s in arguments:
        if isinstance(s, (str, bytes, Mapping)) or not isinstance(s, Iterable):
            raise PayloadError(
                "arguments is a list of argument sets: wrap one call's arguments in a list"
            )
        sets.append(list(s))
    return sets


def _text(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise PayloadError(f"{what} must be a str, got {type(s).__name__}")
    return _utf8(s, what)


# ---------------------------------------------------------------------------
# v0.9: RLP


def _rlp_uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _v09_value(arg: dict) -> list:
    name = arg["type"]
    base = _V09_TYPES[name]
    is_array = arg.get("is_array", False)
    dtype: list = [name.encode(), b"\x01" if is_array else b""]
    meta = arg.get("metadata")
    if meta:
        dtype.append([_rlp_uint(meta[0]), _rlp_uint(meta[1])])
    values = arg["value"] if is_array else [arg["value"]]
    data = [b"" if v is None else _value_bytes(base, v) for v in values]
    return [dtype, data]


def _v09_encode(obj: list) -> bytes:
    return b"\x00\x01" + rlp.encode(obj, sedes=rlp.sedes.raw)  # bytes and lists: no inference


def _v09_root(payload: bytes, what: str) -> list:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise PayloadError(f"a {what} payload is bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) < 3:
        raise PayloadError(f"v0.9 {what} payload too short ({len(payload)} bytes)")
    if payload[:2] != b"\x00\x01":
        raise PayloadError(
            f"v0.9 {what} payload must start with 00 01 (RLP), got {payload[:2].hex()}"
        )
    try:
        root = rlp.decode(payload[2:], strict=True)
    except Exception as exc:  # rlp raises its own DecodingError family
        raise PayloadError(f"v0.9 {what} payload is not valid RLP: {exc}") from None
    if not isinstance(root, list) or len(root) != 3:
        raise PayloadError(f"v0.9 {what} payload must be an RLP list of 3 items")
    return root


def _rlp_str(item: Any, what: str) -> str:
    if not isinstance(item, bytes):
        raise PayloadError(f"v0.9: {what} must be an RLP string")
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(f"v0.9: {what} is not valid UTF-8") from None


def _rlp_uint_from(item: Any, what: str, limit: int) -> int:
    if not isinstance(item, bytes):
        raise PayloadError(f"v0.9: {what} must be an RLP string")
    if item[:1] == b"\x00":
        raise PayloadError(f"v0.9: {what} has a leading zero byte")
    n = int.from_bytes(item, "big")
    if n > limit:
        raise PayloadError(f"v0.9: {what} is {n}, more than {limit}")
    return n


def _v09_decode_value(item: Any) -> dict:
    if not isinstance(item, list) or not 1 <= len(item) <= 2:
        raise PayloadError("v0.9: an EncodedValue is an RLP list [type, data?]")
    dtype = item[0]
    if not isinstance(dtype, list) or not 2 <= len(dtype) <= 3:
        raise PayloadError("v0.9: a DataType is an RLP list [name, is_array, metadata?]")
    name = _rlp_str(dtype[0], "type name")
    base = base_type(V09, name)
    if dtype[1] == b"":
        is_array = False
    elif dtype[1] == b"\x01":
        is_array = True
    else:
        raise PayloadError(f"v0.9: is_array must be RLP false or true, got {dtype[1]!r:.20}")
    meta = (0, 0)
    if len(dtype) == 3:
        m = dtype[2]
        if not isinstance(m, list) or len(m) != 2:
            raise PayloadError("v0.9: metadata is an RLP list of two uint16")
        meta = (
            _rlp_uint_from(m[0], "metadata[0]", UINT16_MAX),
            _rlp_uint_from(m[1], "metadata[1]", UINT16_MAX),
        )
    data: list = []
    if len(item) == 2:
        data = item[1]
        if not isinstance(data, list) or not all(isinstance(d, bytes) for d in data):
            raise PayloadError("v0.9: EncodedValue data is an RLP list of strings")
    out: dict[str, Any] = {"type": name}
    if base == "null":
        if is_array:
            raise PayloadError("v0.9: an array of type 'null' does not decode")
        if len(data) > 1 or (data and data[0] != b""):
            raise PayloadError("v0.9: a null carries no data (or one empty datum)")
        out["value"] = None
    elif is_array:
        out["value"] = [_value_from(V09, name, base, d) for d in data]
        out["is_array"] = True
    else:
        if len(data) != 1:
            raise PayloadError(f"v0.9: a scalar of type {name!r} has 1 datum, got {len(data)}")
        out["value"] = _value_from(V09, name, base, data[0])
    if meta != (0, 0):
        out["metadata"] = list(meta)
    return out


def _v09_decode_set(item: Any) -> list[dict]:
    if not isinstance(item, list):
        raise PayloadError("v0.9: an argument set is an RLP list")
    return [_v09_decode_value(v) for v in item]


# ---------------------------------------------------------------------------
# v0.10: little-endian binary


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
    base = _V010_TYPES[name]
    is_array = arg.get("is_array", False)
    meta = tuple(arg.get("metadata") or (0, 0))
    values = arg["value"] if is_array else [arg["value"]]
    out = [struct.pack("<H", 0), _lenp(_v010_datatype(name, is_array, meta))]  # type: ignore[arg-type]
    out.append(_u16(len(values), "array elements"))
    for v in values:
        out.append(_lenp(b"\x00" if v is None else b"\x01" + _value_bytes(base, v)))
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
            values.append(_value_from(V010, name, base, d[1:]))
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
# public API


def encode_action(version: str, target: str, action: str, arguments: Any) -> bytes:
    """Encode an action execution payload (transaction payload type ``execute``).

    Args:
        version: ``"v0.9"`` or ``"v0.10"``.
        target: The dbid (v0.9) or namespace (v0.10).
        action: The action name.
        arguments: A list of argument sets, each a list of argument dicts.

    Raises:
        PayloadError: If an argument does not fit its type or the sizes overflow.
    """
    _check_version(version)
    tb, ab = _text(target, "target"), _text(action, "action")
    sets = [[normalize_argument(version, a) for a in s] for s in _arg_sets(arguments)]
    if version == V09:
        return _v09_encode([tb, ab, [[_v09_value(a) for a in s] for s in sets]])
    out = [struct.pack("<H", 0), _lenp(tb), _lenp(ab), _u16(len(sets), "argument sets")]
    for s in sets:
        out.append(_u16(len(s), "arguments"))
        out.extend(_lenp(_v010_value(a)) for a in s)
    return b"".join(out)


def decode_action(version: str, payload: bytes) -> ActionCall:
    """Decode an action execution payload; the exact inverse of :func:`encode_action`.

    Raises:
        PayloadError: If the bytes are not a well-formed payload of that version.
    """
    _check_version(version)
    if version == V09:
        root = _v09_root(payload, "action execution")
        target = _rlp_str(root[0], "dbid")
        action = _rlp_str(root[1], "action")
        if not isinstance(root[2], list):
            raise PayloadError("v0.9: arguments must be an RLP list")
        return ActionCall(target, action, [_v09_decode_set(s) for s in root[2]])
    r, target, action = _v010_head(payload, "action execution")
    sets = []
    for _ in range(r.u16("call count")):
        n = r.u16("argument count")
        sets.append([_v010_decode_value(r.blob("argument")) for _ in range(n)])
    r.end()
    return ActionCall(target, action, sets)


def encode_call(version: str, target: str, action: str, arguments: Any) -> bytes:
    """Encode a view call body payload (``user.call``): one argument set, not a list."""
    _check_version(version)
    tb, ab = _text(target, "target"), _text(action, "action")
    if isinstance(arguments, (str, bytes, Mapping)) or not isinstance(arguments, Iterable):
        raise PayloadError("call arguments is one list of argument dicts")
    args = [normalize_argument(version, a) for a in (arguments or [])]
    if version == V09:
        return _v09_encode([tb, ab, [_v09_value(a) for a in args]])
    out = [struct.pack("<H", 0), _lenp(tb), _lenp(ab), _u16(len(args), "arguments")]
    out.extend(_lenp(_v010_value(a)) for a in args)
    return b"".join(out)


def decode_call(version: str, payload: bytes) -> ActionCall:
    """Decode a view call body payload; ``arguments`` is one list of argument dicts."""
    _check_version(version)
    if version == V09:
        root = _v09_root(payload, "action call")
        return ActionCall(
            _rlp_str(root[0], "dbid"), _rlp_str(root[1], "action"), _v09_decode_set(root[2])
        )
    r, target, action = _v010_head(payload, "action call")
    args = [_v010_decode_value(r.blob("argument")) for _ in range(r.u16("argument count"))]
    r.end()
    return ActionCall(target, action, args)
