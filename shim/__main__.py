"""`python -m kwil_sync.shim` / `kwil-sync shim`: run the gRPC shim beside kwild (see --help)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from kwil_sync.shim.config import ShimConfig, parse_config
from kwil_sync.shim.server import run_shim

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *,
         parse: Callable[[Sequence[str] | None], tuple[ShimConfig, str]] = parse_config) -> int:
    """Run the shim until stopped; `parse` turns the arguments into a config and a log
    level (`kwil-sync shim` passes one that also reads a KwilNode block)."""
    try:
        config, level = parse(argv)
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
