"""What kwild's user service answers, as typed values (the same on v0.9 and v0.10)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ActionInfo", "BroadcastResult", "ChainInfo", "TxStatus"]


@dataclass(frozen=True)
class ChainInfo:
    """`user.chain_info`; `gas` is None on v0.9, which does not report it."""

    chain_id: str
    height: int
    block_hash: str
    gas: bool | None

    @classmethod
    def from_result(cls, r: dict[str, Any]) -> ChainInfo:
        return cls(str(r.get("chain_id", "")), int(r.get("block_height") or 0),
                   str(r.get("block_hash") or ""), r.get("gas"))


@dataclass(frozen=True)
class ActionInfo:
    """One action: parameters as (name with `$`, type or None when untyped, as v0.9
    actions are); `public` is True when any signer may execute it (not private, not
    owner-only); `modifiers` are kwild's upper-case words (PUBLIC, VIEW, OWNER, ...)."""

    name: str
    parameters: list[tuple[str, str | None]]
    public: bool
    modifiers: list[str]

    @property
    def view(self) -> bool:
        return "VIEW" in self.modifiers


@dataclass(frozen=True)
class TxStatus:
    """Where a transaction is: `height` -1 while in the mempool; then `code` 0 = success."""

    height: int
    code: int
    log: str

    @property
    def pending(self) -> bool:
        return self.height < 0

    @property
    def ok(self) -> bool:
        return not self.pending and self.code == 0

    @classmethod
    def from_result(cls, r: dict[str, Any]) -> TxStatus:
        result = r.get("tx_result") or {}
        return cls(int(r.get("height") or 0), int(result.get("code") or 0),
                   str(result.get("log") or ""))


@dataclass(frozen=True)
class BroadcastResult:
    """The hash kwild gave the transaction and, in commit mode, its result."""

    tx_hash: str
    result: TxStatus | None = None
