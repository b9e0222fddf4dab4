"""Where restored actions committed: the kwild transactions version 3 records carry.

Version 3 records (docs/RECORD.md) sign the kwild transaction hash, block height and
call index of the action they record. A restore reports, per provider, how many
applied records were tied (and the heights they span, and the last transaction) and
how many were untied (the 2023 `save_action` form: published even if their
transaction rolled back). `until` may name a height, `height:N`: the run stops before
the first verified tied record committed above block N. Heights belong to the chain of
the provider that wrote the record, so a height bound is meant for one provider's log
(the original provider's, in a restore); untied records never stop it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kwil_sync.records import SyncRecord

__all__ = ["ProvenanceTally", "UntilHeight", "first_past_height", "parse_until_height"]

UNTIL_HEIGHT_PREFIX = "height:"


@dataclass(frozen=True)
class UntilHeight:
    """Stop a replay after the records committed at or below this block height."""

    height: int


def parse_until_height(text: str | None) -> UntilHeight | None:
    """`height:N` as an `UntilHeight`; None for anything else (a time or an action id).

    Raises:
        ValueError: If the text starts with `height:` but N is not a block height.
    """
    if not text or not text.startswith(UNTIL_HEIGHT_PREFIX):
        return None
    number = text[len(UNTIL_HEIGHT_PREFIX):].strip()
    if not number.isascii() or not number.isdigit() or int(number) < 1:
        raise ValueError(f"until {text!r}: a height is written height:N with N a block "
                         "height >= 1, e.g. height:1200")
    return UntilHeight(int(number))


def first_past_height(row_ids: Sequence[str], accepted: Iterable[SyncRecord],
                      until: UntilHeight) -> int | None:
    """Index in `row_ids` of the first row whose verified record is tied above the height.

    Only verified records count, so a forged `Kwil-Height` tag cannot cut a run short.
    """
    past = {r.tx_id for r in accepted if r.tx is not None and r.tx.height > until.height}
    return next((i for i, row in enumerate(row_ids) if row in past), None)


@dataclass
class _Provider:
    tied: int = 0
    untied: int = 0
    first_height: int | None = None
    last_height: int | None = None
    last_tx_hash: str | None = None


@dataclass
class ProvenanceTally:
    """Per provider: applied records tied to kwild transactions, and untied ones."""

    providers: dict[str, _Provider] = field(default_factory=dict)

    def add(self, record: SyncRecord) -> None:
        """Count one applied record."""
        entry = self.providers.setdefault(record.provider_address, _Provider())
        if record.tx is None:
            entry.untied += 1
            return
        entry.tied += 1
        height = record.tx.height
        entry.first_height = height if entry.first_height is None else min(entry.first_height,
                                                                            height)
        if entry.last_height is None or height >= entry.last_height:
            entry.last_height, entry.last_tx_hash = height, record.tx.tx_hash

    @property
    def untied(self) -> int:
        return sum(p.untied for p in self.providers.values())

    def to_dict(self) -> dict[str, Any]:
        """`{provider: {tied, untied, first_height, last_height, last_tx_hash}}`."""
        return {address: asdict(p) for address, p in sorted(self.providers.items())}
