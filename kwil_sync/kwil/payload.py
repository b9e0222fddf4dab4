"""Kwil action payloads: encode and decode, for kwild v0.9 (RLP) and v0.10 (binary).

Arguments are described in :mod:`kwil_sync.kwil.arguments`; the wire layouts in
:mod:`kwil_sync.kwil.codec_v09` and :mod:`kwil_sync.kwil.codec_v010`.

The decoder is strict: wrong versions, lengths, trailing bytes, unknown types, bad
UTF-8 or a datum of the wrong size raise :class:`PayloadError`, never anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kwil_sync.kwil import codec_v010, codec_v09
from kwil_sync.kwil.arguments import (
    PayloadError,
    argument_sets,
    check_version,
    normalize_argument,
    text_bytes,
)
from kwil_sync.kwil.versions import V09

__all__ = [
    "ActionCall",
    "encode_action",
    "decode_action",
    "encode_call",
    "decode_call",
]


@dataclass(frozen=True)
class ActionCall:
    """A decoded action execution (or view call): target, action and argument sets.

    ``target`` is the dbid (v0.9) or the namespace (v0.10). For :func:`decode_action`
    ``arguments`` is a list of argument sets; for :func:`decode_call` it is one set.
    """

    target: str
    action: str
    arguments: list = field(default_factory=list)


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
    check_version(version)
    tb, ab = text_bytes(target, "target"), text_bytes(action, "action")
    sets = [[normalize_argument(version, a) for a in s] for s in argument_sets(arguments)]
    if version == V09:
        return codec_v09.encode_action(tb, ab, sets)
    return codec_v010.encode_action(tb, ab, sets)


def decode_action(version: str, payload: bytes) -> ActionCall:
    """Decode an action execution payload; the exact inverse of :func:`encode_action`.

    Raises:
        PayloadError: If the bytes are not a well-formed payload of that version.
    """
    check_version(version)
    if version == V09:
        return ActionCall(*codec_v09.decode_action(payload))
    return ActionCall(*codec_v010.decode_action(payload))


def encode_call(version: str, target: str, action: str, arguments: Any) -> bytes:
    """Encode a view call body payload (``user.call``): one argument set, not a list."""
    check_version(version)
    tb, ab = text_bytes(target, "target"), text_bytes(action, "action")
    if isinstance(arguments, (str, bytes, Mapping)) or not isinstance(arguments, Iterable):
        raise PayloadError("call arguments is one list of argument dicts")
    args = [normalize_argument(version, a) for a in (arguments or [])]
    if version == V09:
        return codec_v09.encode_call(tb, ab, args)
    return codec_v010.encode_call(tb, ab, args)


def decode_call(version: str, payload: bytes) -> ActionCall:
    """Decode a view call body payload; ``arguments`` is one list of argument dicts."""
    check_version(version)
    if version == V09:
        return ActionCall(*codec_v09.decode_call(payload))
    return ActionCall(*codec_v010.decode_call(payload))
