"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for tests and the chaos bench.

It sits between kwil-sync and one loopback upstream (arlocal, the bundler stand-in, a
Kwil node stand-in) and, per request, may add latency and then do one of: answer 5xx,
answer 429 with `Retry-After`, reset the connection without answering, or send the
upstream's answer with its full `Content-Length` but only half the body. Otherwise the
request and answer are streamed through unchanged (with `Connection: close`).

Decisions come from a seeded RNG: the n-th request admitted (not refused by `down` or the
bounds) gets the n-th decision of `FaultPlan(rates, seed)`, whatever the rates were
before, so a run is reproducible and a test can replay the plan to know what to expect.
With concurrent clients which request is n-th depends on timing, but the counts do not.
5xx, 429 and pre-upstream resets never reach the upstream; truncations (and resets
with `reset_after_upstream`) do, so they model an answer lost after the work was done.
The proxy stops by itself after `max_requests` requests or `max_lifetime` seconds.

Example:
    ```python
    with FaultProxy.start(gw.url, rates=FaultRates(server_error=0.1, reset=0.1), seed=7) as p:
        GatewayDataClient(p.url).fetch(item_id)
        print(p.stats())
    ```

Command line: `python -m kwil_sync.testing.faultproxy --upstream URL --port N --reset 0.1`
prints `{"url": ..., "pid": ...}`, serves until SIGTERM or its bounds, then prints its
stats as one JSON line. With `--control`, `GET /_faultproxy/stats`, `POST /_faultproxy/rates`
(a JSON object of FaultRates fields) and `POST /_faultproxy/down?seconds=S` steer it.

Modules: `plan` (rates, decisions, counters), `handler` (one request), `proxy`
(`FaultProxy`), `__main__` (the command line).
"""

from kwil_sync.testing.faultproxy.plan import (
    EXCLUSIVE_FAULTS,
    Decision,
    FaultPlan,
    FaultRates,
    ProxyStats,
)
from kwil_sync.testing.faultproxy.proxy import FaultProxy

__all__ = ["EXCLUSIVE_FAULTS", "Decision", "FaultPlan", "FaultProxy", "FaultRates", "ProxyStats"]
