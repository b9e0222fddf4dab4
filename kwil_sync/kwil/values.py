"""Turn record values (strings, 2023 format) into typed Kwil action arguments.

Sync records carry every argument as a string (or null). Before an action can be
executed the strings become argument dicts for :func:`kwil_sync.kwil.encode_action`:

- v0.9 (kwil-js 0.8 behaviour): every value is sent as ``text`` and kwild converts it;
  ``None`` is sent as type ``null``. The declared types are not used.
- v0.10: values are converted to the action's declared parameter types
  (``info.actions.parameter_types``):

  ================  ========================================================
  declared type     accepted string
  ================  ========================================================
  int8 (int, ...)   a base-10 integer in the signed 64-bit range
  bool              true/false, t/f, yes/no, on/off, 1/0 (any case)
  numeric(p,s)      a decimal number that fits p digits with at most s after
                    the point (no NaN, no infinity); ``numeric`` without
                    (p,s) takes its precision and scale from the value
  uuid              the 36-character form (any case; sent as 16 bytes)
  bytea             ``0x`` or ``\\x`` followed by hex, otherwise standard
                    base64 (with padding)
  text              anything
  T[]               a JSON array whose elements convert as T (JSON null is
                    an SQL NULL; for int8[]/numeric[] numbers or strings)
  ================  ========================================================

  ``None`` becomes an SQL NULL of the declared type. Like kwil-js 0.9, int8 values carry
  metadata ``(digits, 0)`` (kwild ignores it for integers); numeric values carry the
  declared ``(precision, scale)``, which kwild uses to parse them.

A value that does not convert raises :class:`ValueConversionError` naming the
parameter, the value (truncated) and the type.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid as _uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.kwil.arguments import INT64_MAX, INT64_MIN, V010_TYPES
from kwil_sync.kwil.versions import V010, V09, VERSIONS

__all__ = [
    "ValueConversionError",
    "DeclaredType",
    "parse_type",
    "convert_arguments",
    "convert_value",
]

MAX_PRECISION = 1000  # kwil-db maxPrecision
_CANONICAL = {
    "text": "text",
    "int": "int8",
    "bool": "bool",
    "blob": "bytea",
    "uuid": "uuid",
    "decimal": "numeric",
    "null": "null",
}
_TYPE_RE = re.compile(r"^([a-z0-9_]+)\s*(?:\(\s*(\d+)\s*,\s*(\d+)\s*\))?\s*(\[\])?$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


class ValueConversionError(KwilSyncError, ValueError):
    """A record value that does not convert to its parameter's declared type."""

    def __init__(self, param: str | None, value: Any, type_: str | None, reason: str) -> None:
        self.param = param
        self.value = value
        self.type = type_
        self.reason = reason
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        where = f"parameter {param}" if param else "arguments"
        super().__init__(f"{where} ({type_ or 'untyped'}): cannot convert {shown}: {reason}")


class DeclaredType:
    """A parsed parameter type: canonical name, array flag and (precision, scale)."""

    __slots__ = ("name", "base", "is_array", "precision", "scale")

    def __init__(self, name: str, base: str, is_array: bool, precision: int, scale: int):
        self.name, self.base, self.is_array = name, base, is_array
        self.precision, self.scale = precision, scale

    def __repr__(self) -> str:
        meta = f"({self.precision},{self.scale})" if self.base == "decimal" else ""
        return f"{self.name}{meta}{'[]' if self.is_array else ''}"


def parse_type(declared: str) -> DeclaredType:
    """Parse ``int8``, ``TEXT[]``, ``numeric(10,2)``, ``decimal(5,1)[]``, ... (v0.10 names
    and kwil-db aliases).

    Raises:
        ValueError: An unknown type, or metadata on a type other than numeric.
    """
    if not isinstance(declared, str):
        raise ValueError(f"a type is a string, got {declared!r}")
    m = _TYPE_RE.match(declared.strip().lower())
    if not m:
        raise ValueError(f"unknown type {declared!r}")
    raw, p, s, arr = m.groups()
    base = V010_TYPES.get(raw)
    if base is None:
        raise ValueError(f"unknown type {declared!r}")
    precision = scale = 0
    if p is not None:
        if base != "decimal":
            raise ValueError(f"only numeric takes (precision, scale), not {declared!r}")
        precision, scale = int(p), int(s)
        if not 1 <= precision <= MAX_PRECISION or scale > precision:
            raise ValueError(f"bad numeric precision/scale in {declared!r}")
    return DeclaredType(_CANONICAL[base], base, arr is not None, precision, scale)


def convert_arguments(
    version: str, params: Sequence[tuple[str, str | None]], values: Sequence[Any]
) -> list[dict]:
    """Convert one call's record values to argument dicts, in parameter order.

    Args:
        version: ``"v0.9"`` or ``"v0.10"``.
        params: ``(name, declared type)`` per action parameter (the type may be None
            for v0.9, whose schema lists names only).
        values: One value per parameter: a string, or None for NULL.

    Raises:
        ValueConversionError: A count mismatch, an unknown declared type, or a value
            that does not convert.
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown Kwil version {version!r}")
    if len(params) != len(values):
        raise ValueConversionError(
            None, list(values), None,
            f"{len(values)} values for {len(params)} parameters "
            f"({', '.join(p for p, _ in params) or 'none'})",
        )
    pairs = zip(params, values, strict=True)
    return [convert_value(version, name, typ, v) for (name, typ), v in pairs]


def convert_value(version: str, param: str, declared: str | None, value: Any) -> dict:
    """Convert one value for parameter ``param`` of type ``declared`` (see module doc)."""
    if version == V09:
        return _v09(param, declared, value)
    assert version == V010
    if declared is None:
        raise ValueConversionError(param, value, None, "v0.10 needs the declared type")
    try:
        t = parse_type(declared)
    except ValueError as exc:
        raise ValueConversionError(param, value, declared, str(exc)) from None
    if t.is_array:
        return _array(param, declared, t, value)
    v, meta = _scalar(param, declared, t, value)
    return _arg(t, v, meta)


def _arg(t: DeclaredType, value: Any, meta: tuple[int, int]) -> dict:
    out: dict[str, Any] = {"type": t.name, "value": value}
    if t.is_array:
        out["is_array"] = True
    if meta != (0, 0):
        out["metadata"] = list(meta)
    return out


def _v09(param: str, declared: str | None, value: Any) -> dict:
    # kwil-js 0.8: `val?.toString()` as text; null as type null.
    if value is None:
        return {"type": "null", "value": None}
    if isinstance(value, bool):
        return {"type": "text", "value": "true" if value else "false"}
    if isinstance(value, (int, Decimal)):
        return {"type": "text", "value": str(value)}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueConversionError(param, value, "text", "not valid UTF-8") from None
        return {"type": "text", "value": value}
    raise ValueConversionError(
        param, value, declared or "text", f"a record value is a string, not {type(value).__name__}"
    )


def _array(param: str, declared: str, t: DeclaredType, value: Any) -> dict:
    if value is None:
        return {"type": t.name, "value": None} | (
            {"metadata": [t.precision, t.scale]} if (t.precision, t.scale) != (0, 0) else {}
        )
    items = value
    if isinstance(value, str):
        try:
            items = json.loads(value, parse_float=Decimal, parse_int=int)
        except ValueError as exc:
            raise ValueConversionError(
                param, value, declared, f"not a JSON array ({exc})"
            ) from None
    if not isinstance(items, list):
        raise ValueConversionError(param, value, declared, "not a JSON array")
    scalar = DeclaredType(t.name, t.base, False, t.precision, t.scale)
    out, metas = [], []
    for i, item in enumerate(items):
        try:
            v, meta = _scalar(param, declared, scalar, item)
        except ValueConversionError as exc:
            raise ValueConversionError(
                param, value, declared, f"element {i}: {exc.reason}"
            ) from None
        out.append(v)
        if v is not None:
            metas.append(meta)
    meta = (t.precision, t.scale)
    if t.base == "int":
        meta = (0, 0)  # no single digit count fits an array; kwild ignores it
    elif t.base == "decimal" and meta == (0, 0) and metas:
        # undeclared precision: one (p, s) that fits every element
        scale = max(s for _, s in metas)
        whole = max(p - s for p, s in metas)
        meta = (max(whole + scale, 1), scale)
        if meta[0] > MAX_PRECISION:
            raise ValueConversionError(param, value, declared, "more than 1000 digits")
    return _arg(t, out, meta)


def _scalar(param: str, declared: str, t: DeclaredType, value: Any) -> tuple[Any, tuple[int, int]]:
    """(canonical value, metadata) of one scalar."""
    zero = (0, 0)
    if value is None:
        return None, ((t.precision, t.scale) if t.base == "decimal" else zero)

    def fail(reason: str) -> ValueConversionError:
        return ValueConversionError(param, value, declared, reason)

    base = t.base
    if base == "text":
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise fail(f"text takes a string, not {type(value).__name__}")
        s = value if isinstance(value, str) else str(value)
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise fail("not valid UTF-8") from None
        return s, zero
    if base == "int":
        if isinstance(value, bool):
            raise fail("a bool is not an integer")
        if isinstance(value, int):
            n = value
        elif isinstance(value, str) and _INT_RE.match(value.strip()):
            n = int(value.strip())
        elif isinstance(value, Decimal) and value == value.to_integral_value():
            n = int(value)
        else:
            raise fail("not a base-10 integer")
        if not INT64_MIN <= n <= INT64_MAX:
            raise fail("out of the signed 64-bit range")
        return n, (len(str(abs(n))), 0)
    if base == "bool":
        if isinstance(value, bool):
            return value, zero
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True, zero
            if low in _FALSE:
                return False, zero
        raise fail("not a boolean (true/false, t/f, yes/no, on/off, 1/0)")
    if base == "decimal":
        return _numeric(value, t, fail)
    if base == "uuid":
        if isinstance(value, _uuid.UUID):
            return str(value), zero
        if isinstance(value, str) and len(value.strip()) == 36:
            try:
                return str(_uuid.UUID(value.strip())), zero
            except ValueError:
                pass
        raise fail("not a UUID (8-4-4-4-12 hex digits)")
    if base == "blob":
        if isinstance(value, (bytes, bytearray)):
            return bytes(value), zero
        if not isinstance(value, str):
            raise fail(f"bytea takes a base64 or 0x-hex string, not {type(value).__name__}")
        s = value.strip()
        if s[:2] in ("0x", "0X", "\\x"):
            try:
                return bytes.fromhex(s[2:]), zero
            except ValueError:
                raise fail("bad hex after 0x") from None
        try:
            return base64.b64decode(s, validate=True), zero
        except (binascii.Error, ValueError):
            raise fail("neither 0x-hex nor standard base64") from None
    raise fail(f"no conversion to {t!r}")


def _numeric(value: Any, t: DeclaredType, fail: Any) -> tuple[str, tuple[int, int]]:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise fail(f"numeric takes a decimal string, not {type(value).__name__}")
    text = value.strip() if isinstance(value, str) else str(value)
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
        raise fail("not a decimal number")
    try:
        d = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern rules this out
        raise fail("not a decimal number") from None
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    scale = max(-exp, 0)
    plain = format(d, "f")
    int_digits = len(plain.lstrip("-").split(".")[0].lstrip("0"))
    if t.precision:
        if scale > t.scale:
            # trailing zeros beyond the scale are harmless; real digits are not
            q = d.quantize(Decimal(1).scaleb(-t.scale)) if t.scale >= 0 else d
            if q != d:
                raise fail(f"more than {t.scale} digits after the point")
            d, scale = q, t.scale
            plain = format(d, "f")
        if int_digits > t.precision - t.scale:
            raise fail(f"more than {t.precision - t.scale} digits before the point")
        return plain, (t.precision, t.scale)
    precision = max(int_digits + scale, 1)
    if precision > MAX_PRECISION:
        raise fail("more than 1000 digits")
    return plain, (precision, scale)
