"""The replay's read side: the log in chunks of whole pages, each fetched and verified.

`ChunkReader` hands out whole pages up to an `until` timestamp: the first chunk is one
page, so applying starts early; each next chunk holds twice as many records as the
last, up to the batch size, so per-step costs stay small (`kwil_sync.replay`).
`ChunkChecker` fetches and verifies a chunk and finds where an `until` action id or
kwild height ends the run. They are the pipeline's "read-pages" and "fetch-and-verify"
steps, handed to its step runner (`kwil_sync.step_runner`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kwil_sync.arweave.graphql_queries import Page, TxRecord
from kwil_sync.ledger import Ledger
from kwil_sync.proofs import ItemProver
from kwil_sync.provenance import UntilHeight, first_past_height
from kwil_sync.replay_steps import Checked, Fetched, fetch_documents, verify_batch
from kwil_sync.sources import DocumentFetcher
from kwil_sync.verify import TrustPolicy

__all__ = ["Chunk", "ChunkChecker", "ChunkReader"]


@dataclass
class Chunk:
    """Records of whole pages, how many pages, and whether `until` was reached."""

    records: list[TxRecord]
    pages: int
    reached_until: bool


class ChunkReader:
    """Whole pages up to `until_ms`: one page first, then chunks of twice as many
    records as the last, up to `most`. (An `until` action id is cut after
    verification, in `ChunkChecker.check`: its tag alone could be forged.)"""

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


class ChunkChecker:
    """Fetches and verifies chunks for one run (in the read-ahead thread).

    Args:
        ledger: Tells which actions are resolved already (not fetched again).
        target: The target's ledger key.
        fetcher: Documents by id.
        policy: The database and its trusted providers.
        max_document_bytes: Larger documents are refused.
        skip_provider: Follow mode: this provider's own records are skipped.
        prover: Proves 2023 records from their raw data items; None: rows only.
        until_id: End the run at the record of this action id (once it verifies).
        until_height: End the run before the first record above this kwild height.
    """

    def __init__(self, ledger: Ledger, target: str, fetcher: DocumentFetcher,
                 policy: TrustPolicy, *, max_document_bytes: int, skip_provider: str | None,
                 prover: ItemProver | None, until_id: str | None = None,
                 until_height: UntilHeight | None = None) -> None:
        self.ledger, self.target, self.fetcher, self.policy = ledger, target, fetcher, policy
        self.max_document_bytes, self.skip, self.prover = (max_document_bytes, skip_provider,
                                                           prover)
        self.until_id, self.until_height = until_id, until_height

    def check(self, records: list[TxRecord]) -> tuple[Checked, int | None]:
        """Fetch and verify (one chunk ahead, in the read-ahead thread); with an `until`
        action id, also where its record is, if it is in `records`.

        Rows whose Action-Id the ledger holds as resolved (applied or set aside, its
        sequence slot marked) are not fetched: reruns and follow's look-back windows
        read them again. A forged tag can only skip a record that would collapse as a
        repeat of that action anyway.

        The `until` record is the first row tagged with that action id whose record
        verifies (or that the ledger holds as resolved): a forged row carrying the tag
        ahead of it cannot cut a restore short.
        """
        tags = [tx.tag("Action-Id") for tx in records]
        known = self.ledger.sequenced_among(self.target, [a for a in tags if a])
        todo = [tx for tx, tag in zip(records, tags, strict=True) if tag not in known]
        fetched = fetch_documents(self.fetcher, todo)
        checked = self._verify(fetched)
        cut = None
        if self.until_id is not None:
            verified = {x.tx_id for x in checked.accepted if x.action_id == self.until_id}
            cut = next((i for i, (tx, tag) in enumerate(zip(records, tags, strict=True))
                        if tag == self.until_id and (tag in known or tx.id in verified)), None)
            if cut is not None:  # judge nothing past it
                kept = {tx.id for tx in records[:cut + 1]}
                checked = self._verify([f for f in fetched if f.tx.id in kept])
        elif self.until_height is not None:
            past = first_past_height([tx.id for tx in records], checked.accepted,
                                     self.until_height)
            if past is not None:  # stop before the first record above the height
                cut = past - 1
                kept = {tx.id for tx in records[:past]}
                checked = self._verify([f for f in fetched if f.tx.id in kept])
        read = tags if cut is None else tags[:cut + 1]
        checked.known = sum(1 for tag in read if tag in known)
        return checked, cut

    def _verify(self, fetched: list[Fetched]) -> Checked:
        return verify_batch(fetched, self.policy, max_document_bytes=self.max_document_bytes,
                            skip_provider=self.skip, prover=self.prover)
