"""The replay's read side: the log in chunks of whole pages.

`ChunkReader` hands out whole pages up to an `until` timestamp: the first chunk is one
page, so applying starts early; each next chunk holds twice as many records as the
last, up to the batch size, so per-step costs stay small (`kwil_sync.replay`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kwil_sync.arweave.graphql_queries import Page, TxRecord

__all__ = ["Chunk", "ChunkReader"]


@dataclass
class Chunk:
    """Records of whole pages, how many pages, and whether `until` was reached."""

    records: list[TxRecord]
    pages: int
    reached_until: bool


class ChunkReader:
    """Whole pages up to `until_ms`: one page first, then chunks of twice as many
    records as the last, up to `most`. (An `until` action id is cut after
    verification, in `_Run.check`: its tag alone could be forged.)"""

    def __init__(self, pages: Iterator[Page], until_ms: int | None, most: int) -> None:
        self.pages, self.until, self.most = pages, until_ms, most
        self.want, self.done = 1, False

    def read(self) -> Chunk | None:
        """The next chunk, or None at the end of the log (or past `until_ms`)."""
        chunk = Chunk([], 0, False)
        while not self.done and len(chunk.records) < self.want:
            page = next(self.pages, None)
            if page is None:
                self.done = True
                break
            chunk.pages += 1
            for tx in page.records:
                if (self.until is not None and tx.timestamp_ms is not None
                        and tx.timestamp_ms > self.until):
                    chunk.reached_until = True
                    break
                chunk.records.append(tx)
            self.done = chunk.reached_until
        self.want = min(self.most, 2 * max(len(chunk.records), 1))
        return chunk if chunk.pages else None
