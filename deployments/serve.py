"""Serve every kwil-sync deployment from this process, without a work pool or worker.

    python -m kwil_sync.deployments.serve [--follow-interval 30] [--upload-interval 60]

Each run executes in a subprocess of this one. Keep the gRPC shim in its own process
(grpcio and fork do not mix).
"""

from __future__ import annotations

import argparse
from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from kwil_sync.flows.backfill import backfill
from kwil_sync.flows.follow import follow
from kwil_sync.flows.restore import restore
from kwil_sync.flows.upload import upload
from kwil_sync.flows.verify import verify


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kwil_sync.deployments.serve",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--follow-interval", type=float, default=0,
                        help="seconds between scheduled follow runs (0: no schedule; follow "
                             "needs per-database parameters, so schedule it per database)")
    parser.add_argument("--upload-interval", type=float, default=60,
                        help="seconds between scheduled upload runs that drain leftovers")
    parser.add_argument("--limit", type=int, default=8, help="runs executed at once")
    args = parser.parse_args(argv)
    deployments = [
        restore.to_deployment("restore", tags=["kwil-sync"]),
        follow.to_deployment("follow", tags=["kwil-sync"],
                             interval=args.follow_interval or None),
        upload.to_deployment("upload", tags=["kwil-sync"], interval=args.upload_interval or None),
        backfill.to_deployment("backfill", tags=["kwil-sync"]),
        verify.to_deployment("verify", tags=["kwil-sync"]),
    ]
    serve(*cast(list[RunnerDeployment], deployments), limit=args.limit)


if __name__ == "__main__":
    main()
