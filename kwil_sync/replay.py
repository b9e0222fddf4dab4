"""The one replay pipeline: restore, follow and backfill are runs of it read differently.

    page -> fetch documents (concurrently) -> parse -> verify -> order (Sequencer)
         -> drop what the ledger holds -> apply a batch (intents stored before each
         broadcast) -> complete in the ledger -> mark sequence slots -> report

Work is streamed in chunks of whole pages (`kwil_sync.replay_chunks`): the first
chunk is one page, so applying starts early; each next chunk carries twice as many
records as the last, up to `batch_size`, so per-step costs (a task run each under
Prefect, one pipeline drain per apply batch) stay small. While a chunk is applied, the
next ones are read, fetched and verified in a second thread (and the pager has the
page after that on its way), one waiting at most. At most three chunks and the records
held behind a sequence gap are in memory: `batch_size` x the document size limit
bounds what a chunk can hold.

- restore: from the beginning (or a `Start`), optionally `until` a timestamp (ms), a
  kwild block height (`UntilHeight`, version 3 records of the provider's chain) or
  an action id; at the end of the log, records still behind a gap are quarantined.
- follow: from `follow_start(last position)`, i.e. a look-back window, skipping the
  local provider's own records; records behind a gap stay held and `report.resume`
  does not pass them, so the next poll reads them again.
- dry run: the same reading, ordering and schema checks, but nothing is applied and
  nothing is written; the report is the plan.

Before anything is applied, intents an earlier run left pending are resolved
(`kwil_sync.replay_recovery`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from kwil_sync.ahead import read_ahead
from kwil_sync.appliers import ActionApplier, ActionParams
from kwil_sync.ledger import Ledger, SequenceSlot
from kwil_sync.ordering import Gap, Released, Sequencer
from kwil_sync.proofs import ItemProver
from kwil_sync.provenance import ProvenanceTally, UntilHeight
from kwil_sync.records import MAX_DOCUMENT_BYTES
from kwil_sync.refusals import Reason, Refusal
from kwil_sync.replay_chunks import Chunk, ChunkChecker, ChunkReader
from kwil_sync.replay_recovery import Recovery
from kwil_sync.replay_steps import (
    Checked,
    apply_batch,
    plan_batch,
)
from kwil_sync.sources import (
    DocumentFetcher,
    IndexGap,
    Position,
    RecordSource,
    ReportsIndexHealth,
    SourceDown,
    Start,
)
from kwil_sync.step_runner import StepName, StepRunner, run_directly
from kwil_sync.verify import TrustPolicy

__all__ = ["ReplayReport", "Replayer", "StepName", "StepRunner", "run_directly"]


@dataclass
class ReplayReport:
    """What a run did (or, for a dry run, would do)."""

    target: str
    dry_run: bool
    pages: int = 0
    records: int = 0
    bytes: int = 0
    applied: int = 0
    failed: int = 0
    split_transactions: int = 0  # packed transactions that failed and were bisected
    planned: int = 0
    already_applied: int = 0
    duplicates: int = 0
    skipped_own: int = 0
    known: int = 0  # resolved in the ledger already: not fetched again
    unconfirmed: int = 0
    held: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    by_provider: Counter[str] = field(default_factory=Counter)
    signers: Counter[str] = field(default_factory=Counter)
    missing_actions: set[str] = field(default_factory=set)
    gaps: list[Gap] = field(default_factory=list)  # timed out: their records quarantined
    open_gaps: list[Gap] = field(default_factory=list)  # still holding records at the end
    refusals: list[Refusal] = field(default_factory=list)
    proven_from_bytes: int = 0  # 2023 records proven by their raw data item's bytes
    unverified_legacy: int = 0  # accepted on the index's word (allow_unverified_legacy)
    index_gaps: list[IndexGap] = field(default_factory=list)  # items an index lacks
    sources_down: list[SourceDown] = field(default_factory=list)  # indexes that failed
    recovery: Recovery | None = None
    last: Position | None = None
    resume: Position | None = None  # None: nothing read, keep the previous position
    reached_until: bool = False
    provenance: ProvenanceTally = field(default_factory=ProvenanceTally)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (refusals capped at 100) for artifacts and `--json`."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Counter):  # asdict would turn a Counter's items into keys
                value = dict(value)
            elif isinstance(value, set):
                value = sorted(value)
            elif isinstance(value, list):
                value = [asdict(v) for v in value[:100]]
            elif isinstance(value, ProvenanceTally):
                value = value.to_dict()
            elif value is not None and is_dataclass(value):
                value = asdict(value)  # type: ignore[arg-type]
            data[f.name] = value
        return data


class Replayer:
    """Replay one database's log onto one target; see the module docstring.

    Args:
        source: Pages of records (`kwil_sync.sources.GraphQLSource`).
        fetcher: Documents by id (`kwil_sync.arweave.data.GatewayDataClient`).
        applier: Executes calls on the target (`kwil_sync.appliers.KwilApplier`).
        ledger: Exactly-once bookkeeping.
        policy: Which database, which signers are trusted.
        target_id: The ledger's key for the target (the applier's dbid or namespace,
            or a longer key such as "chain id/dbid").
        batch_size: Most records per chunk read and per apply batch.
        max_document_bytes: Larger documents are quarantined.
        gap_timeout_s: How long a sequence gap may stay open before quarantine.
        clock: Wall clock in seconds (for gap ages).
        step_runner: Runs each step (`kwil_sync.step_runner`); Prefect makes them
            task runs.
        on_progress: Called with the report so far after each chunk is applied.
        prover: Proves records the index cannot from their raw data items
            (`kwil_sync.proofs.ByteProver`); None: judge on the index's rows only.
    """

    def __init__(self, source: RecordSource, fetcher: DocumentFetcher, applier: ActionApplier,
                 ledger: Ledger, policy: TrustPolicy, *, target_id: str, batch_size: int = 1000,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES, gap_timeout_s: float = 600.0,
                 clock: Callable[[], float] = time.time,
                 step_runner: StepRunner = run_directly,
                 on_progress: Callable[[ReplayReport], None] | None = None,
                 prover: ItemProver | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.source, self.fetcher, self.applier = source, fetcher, applier
        self.ledger, self.policy, self.target = ledger, policy, target_id
        self.batch_size, self.max_document_bytes = batch_size, max_document_bytes
        self.gap_timeout_s, self.clock = gap_timeout_s, clock
        self.step, self.on_progress = step_runner, on_progress
        self.prover = prover

    def __repr__(self) -> str:
        return f"Replayer(target={self.target!r}, database={self.policy.original_dbid!r})"

    def run(self, start: Start | None = None, *, until: int | str | UntilHeight | None = None,
            dry_run: bool = False, follow: bool = False,
            skip_provider: str | None = None) -> ReplayReport:
        """Read from `start`, apply in order, and report.

        Args:
            start: Where to begin (default: the beginning of the log).
            until: Stop after this timestamp (ms, inclusive), this action id, or the
                records committed at or below this kwild height (`UntilHeight`).
            dry_run: Plan only: apply nothing, write nothing.
            follow: Keep gap-held records for the next run instead of quarantining them.
            skip_provider: Skip this provider's records (follow: the local provider).

        Raises:
            PendingTransactions: An earlier run's transactions are still unresolved.
            GatewayError, GraphQLError, KwilError: The services failed after retries;
                everything applied so far is in the ledger, rerun to continue.
        """
        run = _Run(self, ReplayReport(self.target, dry_run), dry_run)
        checker = ChunkChecker(self.ledger, self.target, self.fetcher, self.policy,
                               max_document_bytes=self.max_document_bytes,
                               skip_provider=skip_provider, prover=self.prover,
                               until_id=until if isinstance(until, str) else None,
                               until_height=until if isinstance(until, UntilHeight) else None)
        if not dry_run:
            run.report.recovery = self.step(StepName.RECOVER, self.applier.recover, self.ledger,
                                            self.target)
            self.ledger.record_external(self.target, self.applier.applied_elsewhere(),
                                        log="db_sync_history")
        run.schema = self.applier.actions()
        reader = ChunkReader(self.source.pages(start or Start()),
                              until if isinstance(until, int) else None, self.batch_size)
        with read_ahead(lambda: self._read_and_check(reader, checker),
                        name="replay-read-ahead") as chunks:
            for chunk, checked in chunks:
                run.process(chunk, checked)
                if chunk.reached_until:
                    break
        run.release(run.sequencer.finish(quarantine_held=not follow))
        return run.finish(follow)

    def _read_and_check(self, reader: ChunkReader,
                        checker: ChunkChecker) -> tuple[Chunk, Checked] | None:
        if reader.done:
            return None
        chunk = self.step(StepName.READ, reader.read)
        if chunk is None:
            return None
        checked, cut = self.step(StepName.CHECK, checker.check, chunk.records)
        if cut is not None:  # the `until` action, verified: it is the last record read
            del chunk.records[cut + 1:]
            chunk.reached_until = reader.done = True
        return chunk, checked


class _Run:
    """The state of one `Replayer.run` (kept off the Replayer so runs never mix)."""

    def __init__(self, replayer: Replayer, report: ReplayReport, dry_run: bool) -> None:
        self.r, self.report, self.dry_run = replayer, report, dry_run
        ledger, target = replayer.ledger, replayer.target
        self.schema: dict[str, ActionParams] = {}
        self.where: dict[str, Position] = {}
        self.sequencer = Sequencer(
            ledger.sequence_start(target), replayer.gap_timeout_s,
            history=lambda provider, seq: ledger.action_at(target, provider, seq),
            gap_opened=ledger.gaps(target), clock=replayer.clock)

    def process(self, chunk: Chunk, checked: Checked) -> None:
        report, records = self.report, chunk.records
        report.pages += chunk.pages
        report.records += len(records)
        report.reached_until = report.reached_until or chunk.reached_until
        report.bytes += checked.bytes
        report.skipped_own += checked.skipped_own
        report.known += checked.known
        report.proven_from_bytes += checked.proven_from_bytes
        report.unverified_legacy += checked.unverified_legacy
        report.unconfirmed += checked.unconfirmed
        report.signers.update(checked.signers)
        self.refuse(checked.refused)
        accepted = {x.tx_id for x in checked.accepted}
        for tx in records:
            if tx.id in accepted:  # kept until released: where a held record was read
                self.where[tx.id] = Position(tx.cursor, tx.timestamp_ms, tx.height)
        if records:
            last = records[-1]
            report.last = Position(last.cursor, last.timestamp_ms, last.height)
        self.sequencer.feed(checked.accepted)
        self.release(self.sequencer.drain())
        if self.r.on_progress is not None:
            self.r.on_progress(report)

    def refuse(self, refused: list[Refusal]) -> None:
        for item in refused:
            self.report.quarantined[item.reason] += 1
            self.where.pop(item.item_id, None)
        self.report.refusals += refused
        if refused and not self.dry_run:
            self.r.ledger.quarantine_many(self.r.target, refused)

    def release(self, released: Released) -> None:
        """Apply what the sequencer released, then mark its slots resolved."""
        r, report = self.r, self.report
        self.refuse([Refusal.of(q.record, q.reason, q.detail) for q in released.quarantined])
        report.duplicates += len(released.duplicates)
        report.gaps += released.gaps
        ready = released.ready
        new = set(r.ledger.filter_new(r.target, [x.action_id for x in ready]))
        todo = [x for x in ready if x.action_id in new]
        report.already_applied += len(ready) - len(todo)
        for i in range(0, len(todo), r.batch_size):
            batch = todo[i:i + r.batch_size]
            if self.dry_run:
                planned, refused = plan_batch(batch, self.schema, r.applier.version,
                                              r.applier.target)
                report.planned += len(planned)
                report.missing_actions.update(x.action_name for x in batch
                                              if x.action_name.lower() not in self.schema)
                self.refuse(refused)
                continue
            applied = r.step(StepName.APPLY, apply_batch, r.applier, r.ledger, r.target, batch,
                             self.schema)
            self.refuse(applied.refused)
            self.count(batch, applied.results)
            report.split_transactions += applied.split
        for x in ready + released.duplicates:
            self.where.pop(x.tx_id, None)
        if not self.dry_run:
            r.ledger.mark_sequenced(r.target, [
                SequenceSlot(x.provider_address, x.sequence, x.action_id)
                for x in ready + released.duplicates if x.sequence is not None])

    def count(self, batch: list[Any], results: list[Any]) -> None:
        by_id = {x.action_id: x for x in batch}
        failures = []
        for result in results:
            if result.code == 0 and result.height is not None:
                self.report.applied += 1
                self.report.by_provider[by_id[result.action_id].provider_address] += 1
                self.report.provenance.add(by_id[result.action_id])
            else:
                self.report.failed += 1
                x = by_id[result.action_id]
                failures.append(Refusal.of(x, Reason.APPLY_FAILED,
                                           f"code {result.code}: {result.log}"))
        self.refuse(failures)

    def finish(self, follow: bool) -> ReplayReport:
        report, held = self.report, self.sequencer.held()
        if isinstance(self.r.source, ReportsIndexHealth):
            health = self.r.source.index_health()
            report.index_gaps, report.sources_down = list(health.gaps), list(health.down)
        report.held = len(held)
        report.open_gaps = list(self.sequencer.open_gaps().values())
        report.resume = report.last
        if held:  # the next poll must read these again
            first = [self.where[x.tx_id] for x in held if x.tx_id in self.where]
            stamps = [p.timestamp_ms for p in first if p.timestamp_ms is not None]
            heights = [p.height for p in first if p.height is not None]
            report.resume = Position(None, min(stamps, default=None),
                                     min(heights, default=None))
        if not self.dry_run and follow:
            self.r.ledger.set_gaps(self.r.target, {
                p: g.opened_at for p, g in self.sequencer.open_gaps().items()})
        elif not self.dry_run:
            self.r.ledger.set_gaps(self.r.target, {})
        return report
