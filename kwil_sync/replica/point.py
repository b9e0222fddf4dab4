"""The log position two copies are compared at.

kwild has no "as of" reads, so a comparison cannot look at the past: it looks at both
nodes now and makes sure "now" is the same log position on both.

- The source's point is its last published record: the highest `Sequence` its
  provider wrote to the log for the database (`published_point`, read from the index
  like restore reads it). Writes the source made whose records are not published yet
  are after the point.
- The replica's position is its ledger's: the highest sequence of that provider it
  applied (`Ledger.sequence_start`, the follow flow's restart point).
- Verification waits (up to a limit) until the replica's position reaches the
  source's point, compares, then reads the source's point and the replica's position
  again. If either moved while it compared, the tables that differed are compared
  again once the replica has caught up: a row written on the source after the point
  is then either level on both copies or still unpublished, and rounds continue
  while the source keeps publishing (`Settle`, in `kwil_sync.replica.verify`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kwil_sync.arweave.graphql_queries import TxRecord
from kwil_sync.ethkeys import address_from_public_key
from kwil_sync.sources import RecordSource, Start

__all__ = ["LogPoint", "published_point", "wait_until_covered"]


@dataclass(frozen=True)
class LogPoint:
    """Provider address (lower case) -> highest sequence (0 or absent: none yet)."""

    sequences: Mapping[str, int] = field(default_factory=dict)

    def of(self, provider: str) -> int:
        return int(self.sequences.get(provider.lower(), 0))

    def covers(self, other: LogPoint) -> bool:
        """True when every provider of `other` is at least as far here."""
        return all(self.of(p) >= n for p, n in other.sequences.items())

    def only(self, providers: set[str]) -> LogPoint:
        keep = {p.lower() for p in providers}
        return LogPoint({p: n for p, n in self.sequences.items() if p in keep})

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.sequences.items()))


def published_point(source: RecordSource, *, providers: set[str], start: Start | None = None,
                    known: LogPoint | None = None) -> LogPoint:
    """The highest `Sequence` each of `providers` published, read from `start` on.

    Records before `start` need not be read when `known` (what the replica's ledger
    already applied from them) is passed: the point is the higher of the two.
    2023 records carry no sequence and do not move the point; a record whose signer
    (as the index reports it) is not the provider it names is ignored, so a forged
    tag cannot push the point out of the replica's reach.
    """
    wanted = {p.lower() for p in providers}
    best = {p: (known.of(p) if known else 0) for p in wanted}
    for page in source.pages(start or Start()):
        for record in page.records:
            tags = dict(record.tags)
            provider = tags.get("Provider-Address", "").lower()
            sequence = tags.get("Sequence", "")
            if provider in wanted and sequence.isdigit() and _signer(record) == provider:
                best[provider] = max(best[provider], int(sequence))
    return LogPoint({p: n for p, n in best.items() if n})


def wait_until_covered(read_position: Callable[[], LogPoint], point: LogPoint, *,
                       timeout_s: float, poll_s: float = 0.5) -> LogPoint:
    """Poll the replica's position until it covers `point` or `timeout_s` passes;
    returns the last position read (check `covers` to tell which)."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        position = read_position()
        if position.covers(point) or time.monotonic() >= deadline:
            return position
        time.sleep(poll_s)


def _signer(record: TxRecord) -> str:
    """The signer's Ethereum address as the index reports it (Irys: the address itself;
    gateways: derived from the owner's public key)."""
    if record.owner_address.lower().startswith("0x"):
        return record.owner_address.lower()
    if record.owner_key and len(record.owner_key) in (33, 65):
        return address_from_public_key(record.owner_key).lower()
    return ""
