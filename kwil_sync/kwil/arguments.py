"""Action arguments: checked, normalised to one dict form, and their scalar wire bytes.

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
null           ``None``                    see the codecs (``codec_v09``, ``codec_v010``)
=============  ==========================  =========================================

The version codecs (:mod:`kwil_sync.kwil.codec_v09`, :mod:`kwil_sync.kwil.codec_v010`)
frame these values; the type tables and the scalar bytes they share live here.
"""

from __future__ import annotations

import struct
import uuid as _uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.kwil.versions import V09, VERSIONS

__all__ = [
    "V09_TYPES",
    "V010_TYPES",
    "PayloadError",
    "argument_sets",
    "base_type",
    "check_version",
    "normalize_argument",
    "scalar_bytes",
    "scalar_value",
    "text_bytes",
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT16_MAX = 0xFFFF
UINT32_MAX = 0xFFFFFFFF

# v0.9 Go type names (core/types/schema.go); the decoder knows no aliases.
V09_TYPES = {
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
V010_TYPES = {
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


def check_version(version: str) -> str:
    """`version` itself when it is one this package speaks; PayloadError otherwise."""
    if version not in VERSIONS:
        raise PayloadError(f"unknown Kwil payload version {version!r}; use 'v0.9' or 'v0.10'")
    return version


def base_type(version: str, name: str) -> str:
    """The base type (text, int, bool, blob, uuid, uint256, decimal, null) of a wire name."""
    table = V09_TYPES if check_version(version) == V09 else V010_TYPES
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


def scalar_bytes(base: str, v: Any) -> bytes:
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


def scalar_value(version: str, name: str, base: str, data: bytes) -> Any:
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


def argument_sets(arguments: Any) -> list[list[Any]]:
    """`arguments` as a list of argument sets (lists); None is no set at all."""
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


def text_bytes(s: Any, what: str) -> bytes:
    """A str field of the payload (`what`: target, action) as UTF-8."""
    if not isinstance(s, str):
        raise PayloadError(f"{what} must be a str, got {type(s).__name__}")
    return _utf8(s, what)
