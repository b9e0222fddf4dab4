"""Turn kwild's extension arguments (JSON in ScalarValue bytes) into record strings.

The 2023 extension (TypeScript) received JSON-decoded values and wrote `value.toString()`
into the document. To read the same on replay, numbers are written the way JavaScript's
`Number.prototype.toString` writes them (`7.0` -> `"7"`, `1e21` -> `"1e+21"`), except
that integers keep every digit (JSON integers beyond 2^53 lost digits in JavaScript;
here they are exact). Strings pass unchanged and booleans become `true` / `false`.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from kwil_sync.errors import KwilSyncError

__all__ = ["ArgumentError", "js_number_string", "scalar_to_string"]


class ArgumentError(KwilSyncError, ValueError):
    """An argument that cannot be written into a record (the shim answers INVALID_ARGUMENT)."""


def _reject_constant(name: str) -> Any:
    raise ArgumentError(f"{name} is not a value a record can hold")


# One decoder for every call: `json.loads` with an option builds a new one each time.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def js_number_string(number: float) -> str:
    """ECMAScript Number::toString(10) for a finite float (shortest round-trip digits)."""
    if not math.isfinite(number):
        raise ArgumentError(f"{number} is not a finite number")
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def scalar_to_string(raw: bytes, *, position: int) -> str:
    """The record string of one ScalarValue (JSON bytes).

    Args:
        raw: The JSON encoding of the value, as kwild sends it.
        position: The argument's position (1-based), for the error message.

    Raises:
        ArgumentError: If the bytes are not JSON, or hold null, an array or an object.
    """
    try:
        value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArgumentError(f"argument {position} is not JSON ({exc}); kwild sends each "
                          "value JSON-encoded") from exc
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError(f"argument {position} is {raw[:40]!r}, out of a double's range")
        return js_number_string(value)
    kind = "null" if value is None else type(value).__name__
    raise ArgumentError(f"argument {position} is {kind}; save_action records strings, "
                      "numbers and booleans only (pass a text value instead)")
