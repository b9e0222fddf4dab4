"""Pack consecutive records of one action into one transaction, as kwild allows.

An execute payload carries a list of argument sets; kwild runs them in order, all in
one transaction, and the transaction fails as a whole if one set fails (kwil-db
v0.9.4 `internal/txapp/routes.go`, `executeActionRoute.InTx`; v0.10.2 the same in
`node/txapp/routes.go`). One transaction for up to `max_calls` records divides the
signing, broadcasting and confirming per record by as much.

The rules:
- order is kept: a transaction only ever holds records that follow each other in the
  log (the same target and action);
- a transaction stays under the node's size limits: kwild's mempool takes at most
  4 MiB per transaction by default (v0.9.4 `cmd/kwild/config/default_config.toml`
  `max_tx_bytes`; v0.10.2 `config/config.go` `MaxTxBytes`, capped by the block size)
  and its RPC 4.2 MB (v0.9) or 6 MB (v0.10) per request, base64 included, so a
  packed payload stays at `max_payload_bytes` (1 MiB by default) and a group over it
  is halved until it fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kwil_sync.kwil.arguments import PayloadError
from kwil_sync.kwil.payload import encode_action

__all__ = ["MAX_CALLS_PER_TX", "MAX_PAYLOAD_BYTES", "PackedTx", "pack_calls"]

MAX_CALLS_PER_TX = 50
MAX_PAYLOAD_BYTES = 1024 * 1024


class Call(Protocol):
    """What is packed: one record's call (`appliers.PlannedCall`)."""

    @property
    def target(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def arguments(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class PackedTx:
    """One transaction's worth of calls: `members` are their positions in the input;
    `payload` the encoded execute payload (None when it does not encode: the pipeline
    encodes it again and reports the encoding error)."""

    target: str
    action: str
    arguments: list[list[Any]]
    members: tuple[int, ...]
    payload: bytes | None


def pack_calls(calls: Sequence[Call], version: str, *, max_calls: int = MAX_CALLS_PER_TX,
               max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> list[PackedTx]:
    """Group consecutive calls of the same target and action, at most `max_calls` and
    `max_payload_bytes` each; one record that alone exceeds the size still gets its own
    transaction (the node refuses it, and the refusal is that record's)."""
    if max_calls < 1:
        raise ValueError("max_calls must be at least 1")
    packed: list[PackedTx] = []
    run: list[int] = []
    for index, call in enumerate(calls):
        if run and (len(run) >= max_calls or (calls[run[0]].target, calls[run[0]].action)
                    != (call.target, call.action)):
            packed += _fit(calls, run, version, max_payload_bytes)
            run = []
        run.append(index)
    if run:
        packed += _fit(calls, run, version, max_payload_bytes)
    return packed


def _fit(calls: Sequence[Call], members: list[int], version: str,
         max_bytes: int) -> list[PackedTx]:
    first = calls[members[0]]
    arguments = [arg_set for i in members for arg_set in calls[i].arguments]
    try:
        payload: bytes | None = encode_action(version, first.target, first.action, arguments)
    except PayloadError:
        payload = None
    if len(members) > 1 and (payload is None or len(payload) > max_bytes):
        # too large, or one member does not encode: halve until each fits or stands alone
        half = len(members) // 2
        return (_fit(calls, members[:half], version, max_bytes)
                + _fit(calls, members[half:], version, max_bytes))
    return [PackedTx(first.target, first.action, arguments, tuple(members), payload)]
