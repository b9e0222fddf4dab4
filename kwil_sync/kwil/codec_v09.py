"""The v0.9 action payload codec (kwild v0.9.x): RLP.

``00 01`` + RLP of ``[dbid, action, [[EncodedValue, ...], ...]]``
with ``EncodedValue = [[name, is_array, [m0, m1]?], [datum, ...]]``. Type names are the
v0.9 ones: ``text, int, bool, blob, uuid, uint256, decimal, null``. Like kwil-js 0.8
(and unlike Go, which omits it) the data list is always written, and a null is written
with one empty datum; the decoder accepts both forms. RLP cannot mark a null element
inside a typed value, so ``None`` is only allowed for type ``null`` in v0.9.
"""

from __future__ import annotations

from typing import Any

import rlp

from kwil_sync.kwil.arguments import (
    UINT16_MAX,
    V09_TYPES,
    PayloadError,
    base_type,
    scalar_bytes,
    scalar_value,
)
from kwil_sync.kwil.versions import V09

__all__ = ["decode_action", "decode_call", "encode_action", "encode_call"]


def _rlp_uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _v09_value(arg: dict) -> list:
    name = arg["type"]
    base = V09_TYPES[name]
    is_array = arg.get("is_array", False)
    dtype: list = [name.encode(), b"\x01" if is_array else b""]
    meta = arg.get("metadata")
    if meta:
        dtype.append([_rlp_uint(meta[0]), _rlp_uint(meta[1])])
    values = arg["value"] if is_array else [arg["value"]]
    data = [b"" if v is None else scalar_bytes(base, v) for v in values]
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
        out["value"] = [scalar_value(V09, name, base, d) for d in data]
        out["is_array"] = True
    else:
        if len(data) != 1:
            raise PayloadError(f"v0.9: a scalar of type {name!r} has 1 datum, got {len(data)}")
        out["value"] = scalar_value(V09, name, base, data[0])
    if meta != (0, 0):
        out["metadata"] = list(meta)
    return out


def _v09_decode_set(item: Any) -> list[dict]:
    if not isinstance(item, list):
        raise PayloadError("v0.9: an argument set is an RLP list")
    return [_v09_decode_value(v) for v in item]


# ---------------------------------------------------------------------------
# payloads (target and action as UTF-8, arguments normalised by `arguments`)


def encode_action(target: bytes, action: bytes, sets: list[list[dict]]) -> bytes:
    """An action execution payload: one list of normalised arguments per batched call."""
    return _v09_encode([target, action, [[_v09_value(a) for a in s] for s in sets]])


def decode_action(payload: bytes) -> tuple[str, str, list[list[dict]]]:
    """(dbid, action, argument sets) of an action execution payload."""
    root = _v09_root(payload, "action execution")
    target = _rlp_str(root[0], "dbid")
    action = _rlp_str(root[1], "action")
    if not isinstance(root[2], list):
        raise PayloadError("v0.9: arguments must be an RLP list")
    return target, action, [_v09_decode_set(s) for s in root[2]]


def encode_call(target: bytes, action: bytes, args: list[dict]) -> bytes:
    """A view call body payload: one list of normalised arguments."""
    return _v09_encode([target, action, [_v09_value(a) for a in args]])


def decode_call(payload: bytes) -> tuple[str, str, list[dict]]:
    """(dbid, action, arguments) of a view call body payload."""
    root = _v09_root(payload, "action call")
    return _rlp_str(root[0], "dbid"), _rlp_str(root[1], "action"), _v09_decode_set(root[2])
