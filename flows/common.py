"""What the restore and follow flows share: building the pipeline from blocks, the
until-parser, progress and the end-of-run table."""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from kwil_sync.appliers import KwilApplier
from kwil_sync.blocks.arweave import ArweaveGateway
from kwil_sync.blocks.kwil import KwilNode
from kwil_sync.blocks.settings import KwilSyncSettings
from kwil_sync.flows.events import ReplayEvents
from kwil_sync.flows.index_health import emit_index_health, index_health_rows
from kwil_sync.flows.ledger import check_fresh_ledger, open_run_ledger
from kwil_sync.ledger import Ledger
from kwil_sync.provenance import UntilHeight, parse_until_height
from kwil_sync.replay import Replayer, ReplayReport
from kwil_sync.sources import Start
from kwil_sync.tasks.replay import prefect_steps
from kwil_sync.verify import TrustPolicy

__all__ = ["Pipeline", "Progress", "build_pipeline", "parse_until", "publish_report", "replay",
           "slug"]


@dataclass
class Pipeline:
    replayer: Replayer
    applier: KwilApplier
    ledger: Ledger
    ledger_key: str
    provider_address: str


def build_pipeline(original_dbid: str, target: str, *, node: str, gateway: str,
                   trusted_providers: list[str], batch_size: int, db_sync_history: bool,
                   ledger_path: str | None, ledger: str | None = None,
                   allow_unverified_legacy: bool = False,
                   on_progress: Any = None) -> Pipeline:
    """Load the blocks and wire page -> fetch -> verify -> order -> apply for one target."""
    settings = KwilSyncSettings()
    kwil_node = cast(KwilNode, KwilNode.load(node))
    arweave = cast(ArweaveGateway, ArweaveGateway.load(gateway))
    client = kwil_node.get_client()
    chain_id = kwil_node.resolve_chain_id(client)
    applier = KwilApplier(client, kwil_node.private_key.get_secret_value(), target,
                          db_sync_history=db_sync_history,
                          max_calls_per_tx=kwil_node.max_calls_per_tx)
    store = open_run_ledger(ledger, ledger_path)
    # One ledger key per database per chain: validators of one chain share state, so
    # moving to another validator's URL must not replay the log again.
    ledger_key = f"{chain_id}/{target}"
    policy = TrustPolicy(original_dbid, frozenset(trusted_providers),
                         allow_unverified_legacy=allow_unverified_legacy)
    replayer = Replayer(
        arweave.get_source(original_dbid), arweave.get_data_client(), applier,
        store, policy, target_id=ledger_key,
        batch_size=batch_size, max_document_bytes=arweave.max_document_bytes,
        gap_timeout_s=settings.gap_timeout_seconds, step_runner=prefect_steps(),
        on_progress=on_progress, prover=arweave.get_prover())
    return Pipeline(replayer, applier, store, ledger_key, applier.address)


def replay(original_dbid: str, target: str, *, key: str, title: str, node: str, gateway: str,
           trusted_providers: list[str] | None, batch_size: int, db_sync_history: bool,
           ledger_path: str | None, allow_unverified_legacy: bool, skip_own: bool,
           ledger: str | None = None, new_ledger: bool = False,
           lock_timeout_seconds: float = 600.0, start: Start | None = None,
           **run: Any) -> ReplayReport:
    """Build the pipeline for one target, run it once with a progress artifact, and
    close what it opened; `run` goes to `Replayer.run` (until, dry_run, follow).

    The run holds the target in the ledger (`Ledger.exclusive`) from before recovery
    to its end, so runs of one target never overlap on any worker (dry runs excepted:
    they write nothing).

    Raises:
        LedgerBusy: Another run held the target for `lock_timeout_seconds`.
        UnsharedLedger: See `flows.ledger.check_fresh_ledger`.
    """
    progress, events = Progress(key, title), ReplayEvents(original_dbid, target)

    def on_progress(report: ReplayReport) -> None:
        progress(report)
        events(report)

    pipeline = build_pipeline(original_dbid, target, node=node, gateway=gateway,
                              trusted_providers=trusted_providers or [],
                              batch_size=batch_size, db_sync_history=db_sync_history,
                              ledger_path=ledger_path, ledger=ledger, on_progress=on_progress,
                              allow_unverified_legacy=allow_unverified_legacy)
    dry_run = bool(run.get("dry_run"))
    try:  # a dry run writes nothing, so it neither waits for nor holds the target
        with (nullcontext() if dry_run else
              pipeline.ledger.exclusive(pipeline.ledger_key, timeout=lock_timeout_seconds)):
            if not dry_run:
                check_fresh_ledger(pipeline.ledger, pipeline.ledger_key, original_dbid,
                                   target, node, new_ledger=new_ledger)
            report = pipeline.replayer.run(
                start, skip_provider=pipeline.provider_address if skip_own else None, **run)
    finally:
        pipeline.ledger.close()
    events.finish(report)
    emit_index_health(original_dbid, target, report)
    progress.done()
    return report


def parse_until(until: str | None) -> int | str | UntilHeight | None:
    """`until` as ms since the epoch (digits or an ISO 8601 time), a kwild block height
    (`height:N`) or an action id."""
    if not until:
        return None
    height = parse_until_height(until)
    if height is not None:
        return height
    if until.isdigit():
        return int(until)
    try:
        return int(datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return until  # an Action-Id


class Progress:
    """A progress artifact that moves with the log time covered so far.

    Updated at most every `every_seconds`: each update is an API call made between
    two apply batches.
    """

    def __init__(self, key: str, description: str, every_seconds: float = 2.0) -> None:
        self.artifact_id = cast(UUID, create_progress_artifact(0.0, key=key,
                                                               description=description))
        self.first_ms: int | None = None
        self.every_seconds, self.updated = every_seconds, 0.0

    def __call__(self, report: ReplayReport) -> None:
        last = report.last.timestamp_ms if report.last else None
        if last is None or time.monotonic() - self.updated < self.every_seconds:
            return
        self.updated = time.monotonic()
        now_ms = int(datetime.now().timestamp() * 1000)
        self.first_ms = self.first_ms or last
        span = max(1, now_ms - self.first_ms)
        update_progress_artifact(self.artifact_id, min(99.0, 100.0 * (last - self.first_ms) / span))

    def done(self) -> None:
        update_progress_artifact(self.artifact_id, 100.0)


def publish_report(report: ReplayReport, *, key: str, title: str) -> dict[str, Any]:
    """A table artifact of the run (counts, quarantine reasons, providers); returns a summary."""
    rows: list[dict[str, Any]] = [
        {"what": "records read", "count": report.records},
        {"what": "applied", "count": report.applied},
        {"what": "already applied", "count": report.already_applied},
        {"what": "already in the ledger (not fetched again)", "count": report.known},
        {"what": "repeats collapsed", "count": report.duplicates},
        {"what": "apply failed", "count": report.failed},
        {"what": "held behind a sequence gap", "count": report.held},
    ]
    if report.dry_run:
        rows.append({"what": "would apply (dry run)", "count": report.planned})
    rows += [{"what": f"quarantined: {reason}", "count": n}
             for reason, n in sorted(report.quarantined.items())]
    rows += [{"what": f"applied from {provider}", "count": n}
             for provider, n in sorted(report.by_provider.items())]
    for provider, seen in report.provenance.to_dict().items():
        if seen["tied"]:
            rows.append({"what": f"tied to kwild transactions, {provider}: heights "
                                 f"{seen['first_height']}-{seen['last_height']}, last tx "
                                 f"{seen['last_tx_hash']}", "count": seen["tied"]})
        if seen["untied"]:
            rows.append({"what": f"untied (2023 save_action form, may include rolled-back "
                                 f"actions), {provider}", "count": seen["untied"]})
    if report.missing_actions:
        rows.append({"what": "actions missing in the target: "
                             + ", ".join(sorted(report.missing_actions)), "count": 0})
    rows += index_health_rows(report)
    create_table_artifact(rows, key=key, description=title)
    if report.index_gaps:  # every item an index lacks, by id and index
        create_table_artifact([{"item_id": g.item_id, "source": g.source}
                               for g in report.index_gaps[:1000]], key=f"{key}-index-gaps",
                              description=f"{title}: items some indexes lack")
    return report.to_dict()


def slug(*parts: str, limit: int = 200) -> str:
    """Lowercase letters, digits and dashes: what artifact keys and variable names accept."""
    text = "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)
    if len(text) <= limit:
        return text
    return f"{text[:limit - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
