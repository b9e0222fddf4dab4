"""`python -m kwil_sync.testing.faultproxy --upstream URL [--port N] [rates...]`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import threading

from kwil_sync.testing.faultproxy.plan import EXCLUSIVE_FAULTS, FaultRates
from kwil_sync.testing.faultproxy.proxy import FaultProxy

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """`python -m kwil_sync.testing.faultproxy --upstream URL [--port N] [rates...]`."""
    parser = argparse.ArgumentParser(description="Fault-injecting HTTP proxy on 127.0.0.1")
    parser.add_argument("--upstream", required=True, help="loopback http:// URL to relay to")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--seed", type=int, default=0)
    for name in ("latency", *EXCLUSIVE_FAULTS):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0,
                            help=f"probability of {name} per request")
    parser.add_argument("--latency-seconds", type=float, default=0.05)
    parser.add_argument("--retry-after-seconds", type=int, default=1)
    parser.add_argument("--reset-after-upstream", action="store_true")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--max-lifetime", type=float, default=3600.0)
    parser.add_argument("--control", action="store_true", help="serve /_faultproxy/ routes")
    args = parser.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(FaultRates)}
    rates = FaultRates(**{k: v for k, v in vars(args).items() if k in fields})
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    proxy = FaultProxy.start(args.upstream, rates, args.seed, args.port or None,
                             max_requests=args.max_requests, max_lifetime=args.max_lifetime,
                             control=args.control)
    print(json.dumps({"url": proxy.url, "pid": os.getpid()}), flush=True)
    try:
        while proxy.running and not done.wait(0.2):
            pass
    finally:
        proxy.stop()
        print(json.dumps(dataclasses.asdict(proxy.stats())), flush=True)


if __name__ == "__main__":
    main()
