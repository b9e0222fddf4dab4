"""The names users see by default: block documents, flows, deployments, the follow
cursor. One place, so the flows, the command line, the shim and the demo never drift
apart (prefect.yaml declares the same deployments; tests/test_defaults.py checks it).
"""

from __future__ import annotations

__all__ = [
    "BACKFILL_DEPLOYMENT", "BACKFILL_FLOW", "BUNDLER_BLOCK", "DEPLOYMENTS", "FOLLOW_CURSOR_PREFIX",
    "FOLLOW_DEPLOYMENT", "FOLLOW_FLOW", "GATEWAY_BLOCK", "NODE_BLOCK", "RESTORE_DEPLOYMENT",
    "RESTORE_FLOW", "SHIM_BLOCK", "UPLOAD_DEPLOYMENT", "UPLOAD_FLOW", "VERIFY_DEPLOYMENT",
    "VERIFY_FLOW",
]

# Block documents the flows and commands load when no name is given.
NODE_BLOCK = "kwil-sync-target"  # KwilNode: the provider a log is applied to
GATEWAY_BLOCK = "kwil-sync-gateway"  # ArweaveGateway: where the log is read
BUNDLER_BLOCK = "kwil-sync-bundler"  # Bundler: where the shim's records are uploaded
SHIM_BLOCK = "kwil-sync-shim"  # SyncShim: where the upload flow reaches the shim

# Flow names, and the deployments prefect.yaml declares for them ("flow/deployment").
RESTORE_FLOW = "kwil-sync-restore"
FOLLOW_FLOW = "kwil-sync-follow"
UPLOAD_FLOW = "kwil-sync-upload"
BACKFILL_FLOW = "kwil-sync-backfill"
VERIFY_FLOW = "kwil-sync-verify"
RESTORE_DEPLOYMENT = f"{RESTORE_FLOW}/restore"
FOLLOW_DEPLOYMENT = f"{FOLLOW_FLOW}/follow"
UPLOAD_DEPLOYMENT = f"{UPLOAD_FLOW}/upload"
BACKFILL_DEPLOYMENT = f"{BACKFILL_FLOW}/backfill"
VERIFY_DEPLOYMENT = f"{VERIFY_FLOW}/verify"
DEPLOYMENTS = (RESTORE_DEPLOYMENT, FOLLOW_DEPLOYMENT, UPLOAD_DEPLOYMENT, BACKFILL_DEPLOYMENT,
               VERIFY_DEPLOYMENT)

# A (database, target) pair's follow cursor Variable and concurrency limit are named
# this prefix, then the pair (flows/follow.py `follow_lock_name`).
FOLLOW_CURSOR_PREFIX = "kwil-sync-follow"
