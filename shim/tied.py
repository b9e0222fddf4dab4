"""The tied form of save_action (docs/SHIM.md, "Commit-tied capture"), mixed into
`shim.service.ShimService`.

A tied call names its kwild transaction (`@txid`, `@height`); it is stored unsigned and
answered with its Action-Id at once. It becomes a version 3 record only when the upload
path confirms the transaction committed (`kwil_sync.confirm`, which calls `build_tied`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.outbox import Outbox, StoredCall
from kwil_sync.outbox_calls import TiedCall
from kwil_sync.records import TxRef, build_record, tied_action_id
from kwil_sync.shim.errors import InvalidRequest

__all__ = ["SavedCall", "TiedSaves"]

_TX_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SavedCall:
    """A tied call: stored to wait for its transaction, or None for a view call."""

    action_id: str
    stored: StoredCall | None


class TiedSaves:
    """`save_tied` and friends; the host class provides the attributes declared here."""

    signer: EthereumSigner
    outbox: Outbox
    _on_saved: Callable[[], None]

    local_dbid: Callable[[str], str]  # the provider's id for a database name
    _metadata_name: Callable[[Mapping[str, str]], str]  # checked local_db_name
    _document: Callable[[str, str, Sequence[str]], list[tuple[str, str]]]  # named values

    def save_tied_from_metadata(self, metadata: Mapping[str, str], action_name: str,
                                values: Sequence[str], *, tx_hash: str, height: int
                                ) -> SavedCall:
        """save_action_tx as kwild calls it, with the metadata Initialize returned."""
        name = self._metadata_name(metadata)
        return self.save_tied(local_db_name=name, action_name=action_name, values=values,
                              tx_hash=tx_hash, height=height,
                              original_dbid=metadata.get("original_dbid", ""),
                              local_dbid=metadata.get("local_dbid", ""))

    def save_tied(self, *, local_db_name: str, action_name: str, values: Sequence[str],
                  tx_hash: str, height: int, original_dbid: str = "", local_dbid: str = ""
                  ) -> SavedCall:
        """Store a call tied to its kwild transaction; it becomes a record once confirmed.

        An empty `tx_hash` is a view call or an estimate (kwild has no transaction
        then): nothing is stored. `height` 0 means unknown (the node's is used).

        Raises:
            InvalidRequest: A malformed hash or height, or what `save` refuses.
            CatalogUnavailable: The local provider could not be asked for parameters.
        """
        if not local_db_name or not action_name:
            raise InvalidRequest("save_action_tx needs a database name and an action name")
        tx = tx_hash.strip().lower().removeprefix("0x")
        if tx and not _TX_HASH.match(tx):
            raise InvalidRequest(f"the transaction hash must be 64 hex digits (@txid), got "
                                 f"{tx_hash[:80]!r}: pass @txid as the first argument")
        if height < 0:
            raise InvalidRequest(f"the height must be @height (>= 0), got {height}")
        local = local_dbid or self.local_dbid(local_db_name)
        original = original_dbid or local
        key = tied_action_id(original, action_name, list(values), tx)
        if not tx:
            return SavedCall(key, None)
        known = self.outbox.get_call(key)
        if known is not None:  # a replayed block or a retry: the same answer
            return SavedCall(key, known)
        data = self._document(local, action_name, values)
        stored = self.outbox.save_call(TiedCall(
            key, self.signer.address, original, local, local_db_name, action_name,
            tuple(data), tx, height))
        self._on_saved()
        return SavedCall(key, stored)

    def build_tied(self, call: StoredCall, height: int, sequence: int, prev: str) -> DataItem:
        """Sign the version 3 record of a confirmed call (for `kwil_sync.confirm`)."""
        c = call.call
        return build_record(self.signer, original_dbid=c.original_dbid, local_dbid=c.local_dbid,
                            local_db_name=c.local_db_name, action_name=c.action_name,
                            data=list(c.data), sequence=sequence, prev_action_id=prev,
                            created_at_ms=time.time_ns() // 1_000_000,
                            tx=TxRef(c.tx_hash, height, call.call_index))
