"""`python -m kwil_sync.shim` / `kwil-sync shim`: run the gRPC shim beside kwild (see --help)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from kwil_sync.shim.config import parse_config
from kwil_sync.shim.server import run_shim

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, level = parse_config(argv)
    except (ValueError, OSError) as exc:
        print(f"kwil-sync shim: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_shim(config)
    except RuntimeError as exc:
        print(f"kwil-sync shim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
