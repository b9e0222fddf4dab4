"""Apply planned calls to a target database: the `ActionApplier` interface and its Kwil one.

`plan_call` turns a verified record into a call against the target's schema, read
once per run: the document's `data` names are matched onto the action's parameters
(with or without `$`, any case) and the string values converted with
`kwil_sync.kwil.values.convert_arguments`. What does not fit is refused with a reason
(`unknown-action`, `argument-mismatch`, `bad-argument`) for the quarantine.

`KwilApplier` executes calls through the `NoncePipeline` (a window of consecutive
nonces in flight). Exactly once needs the intent stored before each broadcast, with
the nonce and signed bytes (so recovery can send the same bytes again): the pipeline
hands each group of signed transactions to `on_signed` before sending any of them, so
the ledger stores a group's intents in one commit.

2023 convention (kwild v0.9 only, off by default): `db_sync_history=True` reads the
target's `db_sync_history` table so actions recorded there count as applied, and after
each applied action calls the private `save_db_sync($id, $action_timestamp,
$arweave_id, $provider_address, $executed_at)` as the 2023 server did (best effort: a
missing history row never re-applies anything, the ledger is the authority).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.errors import KwilError, RpcError, TxFailed
from kwil_sync.kwil.pipeline import NoncePipeline, PreparedTx, TxOutcome, while_down
from kwil_sync.kwil.rpc_results import BroadcastResult, TxStatus
from kwil_sync.kwil.values import ValueConversionError, convert_arguments
from kwil_sync.kwil.versions import V09
from kwil_sync.ledger import Ledger
from kwil_sync.records import SyncRecord
from kwil_sync.refusals import Reason, Refusal
from kwil_sync.replay_recovery import Recovery, resolve_pending
from kwil_sync.tx_packing import MAX_CALLS_PER_TX, MAX_PAYLOAD_BYTES, pack_calls

__all__ = ["ActionApplier", "CallResult", "KwilApplier", "OnCallsPrepared", "PlannedCall",
           "Refusal", "plan_call"]

ActionParams = list[tuple[str, str | None]]
HISTORY_ACTION = "save_db_sync"


@dataclass(frozen=True)
class PlannedCall:
    """One record as a call: `target`, `action`, `arguments` (what the pipeline reads)."""

    record: SyncRecord
    target: str
    action: str
    arguments: list[list[dict[str, Any]]]  # one argument set


@dataclass(frozen=True)
class CallResult:
    """What became of one record's call: the ledger completes it under `action_id`.

    The pipeline's `TxOutcome` is the same answer keyed by position in the batch (it
    knows transactions, not records); the applier turns each into this. `height` is
    None when the transaction never entered a block.
    """

    action_id: str
    tx_hash: str
    code: int
    log: str
    height: int | None
    shared: int = 1  # records the transaction carried: a failure may be another's

    @property
    def ok(self) -> bool:
        """Executed in a block with code 0."""
        return self.code == 0 and self.height is not None

    @classmethod
    def of(cls, action_id: str, outcome: TxOutcome, *, shared: int = 1) -> CallResult:
        """The pipeline's outcome for the transaction that carried record `action_id`
        (with `shared` - 1 other records)."""
        return cls(action_id, outcome.tx_hash, outcome.code, outcome.log, outcome.height,
                   shared)


# Runs with each group of signed calls, (call, signed transaction), before any of them
# is broadcast.
OnCallsPrepared = Callable[[list[tuple[PlannedCall, PreparedTx]]], None]


class ActionApplier(Protocol):
    """Executes calls on one target; see `KwilApplier`."""

    target: str

    @property
    def version(self) -> str:
        """The Kwil version values are converted for ("v0.9" or "v0.10")."""
        ...

    def actions(self) -> dict[str, ActionParams]:
        """Action name (lower case) -> its parameters (name, declared type or None)."""
        ...

    def apply(self, calls: Sequence[PlannedCall], on_signed: OnCallsPrepared) -> list[CallResult]:
        """Execute `calls` in order; `on_signed(group)` before any of a group is sent."""
        ...

    def recover(self, ledger: Ledger, key: str) -> Recovery:
        """Resolve what an earlier run left intended under ledger `key` (before anything
        new is applied)."""
        ...

    def applied_elsewhere(self) -> Iterable[str]:
        """Action ids the target records as applied outside the ledger (2023 history)."""
        ...


def _name(param: str) -> str:
    return param.lower().removeprefix("$")


def plan_call(record: SyncRecord, schema: Mapping[str, Sequence[tuple[str, str | None]]],
              version: str, target: str) -> PlannedCall | Refusal:
    """Map a record onto the target action's parameters and convert its values.

    `schema` maps lower-case action names (kwild's) to their parameters.
    """
    name = record.action_name.lower()
    params = schema.get(name)
    if params is None:
        return Refusal.of(record, Reason.UNKNOWN_ACTION,
                          f"{target} has no action {record.action_name!r}")
    given = {_name(n): v for n, v in record.data}
    wanted = [_name(p) for p, _ in params]
    if sorted(given) != sorted(wanted):
        return Refusal.of(record, Reason.ARGUMENT_MISMATCH, f"the record names "
                          f"{sorted(given)}, action {record.action_name} takes {wanted}")
    try:
        arguments = convert_arguments(version, params, [given[n] for n in wanted])
    except ValueConversionError as exc:
        return Refusal.of(record, Reason.BAD_ARGUMENT, str(exc))
    return PlannedCall(record, target, name, [arguments])


class _PatientNode:
    """Recovery's view of the node: each query and re-send waits out a short outage
    (`while_down`), so a node restarting as a run starts does not fail the run. A
    re-send is the same signed bytes, so sending it twice is harmless."""

    def __init__(self, client: KwilClient) -> None:
        self._client = client

    def tx_query(self, tx_hash: str) -> TxStatus | None:
        return while_down(lambda: self._client.tx_query(tx_hash))

    def account_nonce(self, address: str, *, pending: bool = True) -> int:
        return while_down(lambda: self._client.account_nonce(address, pending=pending))

    def broadcast(self, tx: dict[str, Any], sync: str = "mempool") -> BroadcastResult:
        return while_down(lambda: self._client.broadcast(tx, sync))


class KwilApplier:
    """Apply calls to a Kwil database through the nonce pipeline.

    Args:
        client: The target node.
        private_key_hex: The key that signs (the database owner for private actions).
        target: The target dbid (v0.9) or namespace (v0.10).
        db_sync_history: Follow the 2023 `db_sync_history` convention (v0.9).
        window: Transactions in flight at once.
        max_calls_per_tx: Most consecutive records of one action in one transaction
            (`kwil_sync.tx_packing`); 1 sends a transaction per record.
        max_payload_bytes: Most payload bytes in one transaction.
        pipeline_options: More `NoncePipeline` keyword arguments (timeouts, retries).
    """

    def __init__(self, client: KwilClient, private_key_hex: str, target: str, *,
                 db_sync_history: bool = False, window: int = 256,
                 max_calls_per_tx: int = MAX_CALLS_PER_TX,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES,
                 pipeline_options: Mapping[str, Any] | None = None) -> None:
        self.client, self.target = client, target
        self.max_calls_per_tx, self.max_payload_bytes = max_calls_per_tx, max_payload_bytes
        self._key = private_key_hex
        self.db_sync_history = db_sync_history
        self._options = {"window": window, **(pipeline_options or {})}
        self._chain_id: str | None = None
        self._schema: dict[str, ActionParams] | None = None
        self.address = EthereumKey(private_key_hex).address

    def __repr__(self) -> str:
        return f"KwilApplier({self.client.url!r}, target={self.target!r}, as {self.address})"

    @property
    def version(self) -> str:
        return self.client.version

    def actions(self) -> dict[str, ActionParams]:
        """Read the target's actions now (a run calls this once, at its start)."""
        found = while_down(lambda: self.client.actions(self.target))
        schema = {a.name.lower(): list(a.parameters) for a in found}
        if self.db_sync_history and HISTORY_ACTION not in schema:
            raise KwilError(f"{self.target} has no {HISTORY_ACTION} action: deploy the 2023 "
                            "schema's history table and action, or turn db_sync_history off")
        self._schema = schema
        return schema

    def recover(self, ledger: Ledger, key: str) -> Recovery:
        return resolve_pending(ledger, key, _PatientNode(self.client), self.address)

    def apply(self, calls: Sequence[PlannedCall], on_signed: OnCallsPrepared) -> list[CallResult]:
        if not calls:
            return []
        if self._chain_id is None:
            self._chain_id = while_down(self.client.chain_info).chain_id
        sent: list[PlannedCall] = list(calls)
        packed = pack_calls(sent, self.version, max_calls=self.max_calls_per_tx,
                            max_payload_bytes=self.max_payload_bytes)

        def signed(group: list[PreparedTx]) -> None:
            on_signed([(sent[i], s) for s in group for i in packed[s.index].members])

        pipeline = NoncePipeline(self.client, self._key, self._chain_id, self.version,
                                 **self._options)
        outcomes = pipeline.execute(packed, on_signed=signed)
        by_member: dict[int, CallResult] = {}
        for tx, outcome in zip(packed, outcomes, strict=True):
            for i in tx.members:
                by_member[i] = CallResult.of(sent[i].record.action_id, outcome,
                                             shared=len(tx.members))
        results = [by_member[i] for i in range(len(sent))]
        if self.db_sync_history:
            self._write_history([c.record for c, r in zip(sent, results, strict=True) if r.ok])
        return results

    def _write_history(self, records: list[SyncRecord]) -> None:
        params = (self._schema or self.actions())[HISTORY_ACTION]
        now = str(int(time.time() * 1000))
        history = []
        for r in records:
            values = [r.action_id, str(r.timestamp_ms), r.tx_id, r.provider_address, now]
            history.append((self.target, HISTORY_ACTION,
                            [convert_arguments(self.version, params, values)]))
        if history:
            NoncePipeline(self.client, self._key, cast(str, self._chain_id), self.version,
                          **self._options).execute(history)

    def applied_elsewhere(self) -> Iterable[str]:
        if not self.db_sync_history:
            return []
        if self.version != V09:
            raise KwilError("db_sync_history is a kwild v0.9 convention (extensions are gone "
                            "in v0.10): turn it off for this target")
        try:
            rows = self.client.query("SELECT id FROM db_sync_history", dbid=self.target)
        except (RpcError, TxFailed) as exc:  # kwild's own words, as the message says them
            said = exc.message if isinstance(exc, RpcError) else exc.log
            raise KwilError(f"cannot read db_sync_history on {self.target}: {said}") from exc
        return [str(row["id"]) for row in rows]
