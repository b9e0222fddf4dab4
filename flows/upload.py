"""The upload flow: drain a shim's outbox to Arweave in batches.

The shim submits runs of the deployment `kwil-sync-upload/upload` as records arrive
(with `shim_address` set); the deployment's schedule drains anything left behind,
using the SyncShim block. The flow reads the outbox only over gRPC, so it may run on
another machine than the shim.

Before each batch the shim confirms tied calls on its node (one `tx_query` per
transaction): only calls of committed transactions become records to upload. The run's
summary and artifact count what was confirmed, voided (the transaction failed: never
uploaded), still waiting and unconfirmed (unknown to the node past the timeout).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.blocks.core import Block
from prefect.runtime import flow_run

from kwil_sync.blocks.arweave import Bundler
from kwil_sync.blocks.shim import SyncShim
from kwil_sync.defaults import BUNDLER_BLOCK, SHIM_BLOCK, UPLOAD_FLOW
from kwil_sync.flows.events import emit_uploaded
from kwil_sync.tasks.upload import upload_batch

__all__ = ["upload"]


def _load(block_type: type[Block], name: str) -> Block:
    try:
        return cast(Block, block_type.load(name))
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise ValueError(
            f"no {block_type.get_block_type_name()} block named {name!r}: create it (see "
            f"docs/SHIM.md) or pass the name of an existing one ({exc})") from exc


@flow(name=UPLOAD_FLOW, log_prints=False)
def upload(shim_address: str | None = None, shim_block: str = SHIM_BLOCK,
           bundler_block: str = BUNDLER_BLOCK, batch_size: int = 100,
           max_batches: int = 1000) -> dict[str, Any]:
    """Upload pending records until the outbox is empty (or `max_batches` batches ran).

    Args:
        shim_address: The shim's host:port; when empty the SyncShim block's address.
        shim_block: Name of the SyncShim block used when `shim_address` is empty.
        bundler_block: Name of the Bundler block whose uploader receives the items.
        batch_size: Items per batch (one task run each).
        max_batches: Stop after this many batches; the next run continues.

    Returns:
        Counts: uploaded, already_there (accepted as repeats), batches, remaining, and
        the tied calls confirmed, voided, waiting and unconfirmed.
    """
    logger = get_run_logger()
    address = shim_address or cast(SyncShim, _load(SyncShim, shim_block)).address
    uploader = cast(Bundler, _load(Bundler, bundler_block)).get_uploader()
    holder = str(flow_run.get_id() or uuid.uuid4())
    uploaded = already_there = batches = remaining = confirmed = voided = 0
    waiting = unconfirmed = 0
    while batches < max_batches:
        batches += 1
        result = upload_batch(address, uploader, holder=holder, limit=batch_size,
                              batch_number=batches)
        uploaded += result.uploaded
        already_there += result.already_there
        remaining = result.remaining
        confirmed += result.confirmed
        voided += result.voided
        waiting, unconfirmed = result.waiting, result.unconfirmed  # as of the last pass
        emit_uploaded(address, batches, {
            "uploaded": result.uploaded, "already_there": result.already_there,
            "confirmed": result.confirmed, "voided": result.voided,
            "waiting": result.waiting, "unconfirmed": result.unconfirmed})
        if result.node_error:
            logger.warning("%s", result.node_error)
        if result.uploaded == 0 or remaining == 0:
            break
    summary = {"uploaded": uploaded, "already_there": already_there, "batches": batches,
               "remaining": remaining, "confirmed": confirmed, "voided": voided,
               "waiting": waiting, "unconfirmed": unconfirmed}
    logger.info("uploaded %d record(s) from %s in %d batch(es); %d still pending", uploaded,
                address, batches, remaining)
    if voided:
        logger.warning("voided %d save_action call(s) of kwild transactions that failed: "
                       "they stay in the outbox with the node's log and are never uploaded",
                       voided)
    if unconfirmed:
        logger.warning("%d tied call(s) are unconfirmed: the node still does not know their "
                       "transaction; they are not uploaded unless it reports code 0",
                       unconfirmed)
    if uploaded or voided or unconfirmed:
        create_table_artifact(key="kwil-sync-upload", table=[summary],
                              description=f"Records uploaded from the shim at {address}.")
    return summary
