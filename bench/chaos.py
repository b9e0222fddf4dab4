"""Chaos at scale: faults on every hop, outages, payment walls, kills, races, hostile input.

tests/test_chaos.py and tests/test_hostile_corpus.py run these scenarios small; this runs
them with `--records` records each (1,000 by default), everything on 127.0.0.1: arlocal,
a Prefect server (the upload and follow flows), and in-process stand-ins for kwild and
the Irys bundler, with `FaultProxy` in front of a hop where a scenario needs it.

Scenarios (`--only` picks some):
- `faults-every-hop`: upload through the bundler, restore, then follow half as many more,
  with `--fault-rate` of requests failing on every hop (bundler, gateway GraphQL and
  data, kwild): 5xx, 429 + Retry-After, resets, truncated answers; failed runs rerun;
- `kwild-down`: kwild goes down for `--outage` seconds in the middle of a restore batch;
  the run fails and a rerun resolves the signed transactions left in flight;
- `kwild-restart`: kwild restarts mid-restore and forgets its mempool;
- `bundler-402`: the bundler answers 402 (Retry-After 2) for `--payment-window` seconds
  while the upload flow drains a shim's outbox;
- `upload-killed`: the upload flow's process is SIGKILLed mid-batch; new runs upload
  the rest, and the killed batch once its lease ends;
- `two-follows`: two follow polls of one target started at once (separate processes);
- `key-rotation`: a provider's new key is quarantined until trusted, applied after;
- `hostile-corpus`: `kwil_sync.testing.hostile` around `--records` honest records,
  restored through `--fault-rate` faults onto a kwild v0.10 stand-in.

Every scenario counts what its target executed (or the bundler holds) against the records.
Prints progress on stderr, then one JSON object as the last line: `scenarios`,
`faults_injected`, `records_expected`, `records_applied`, `duplicates`, `missing`,
`unexpected` (calls no honest record asked for: hostile ones applied; goal: the last
three 0) and `per_scenario` figures. The scenarios are `kwil_sync.testing.chaos_scenarios`,
the ones tests/test_chaos.py runs small.
Run: `.venv/bin/python bench/chaos.py [--records 1000] [--outage 30] [--only kwild-down]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kwil_sync.testing import chaos_scenarios as scenarios
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.chaos import ChaosWorld, Figures, fault_rates, run_until_done
from kwil_sync.testing.faultproxy import FaultProxy
from kwil_sync.testing.hostile import build_corpus
from kwil_sync.testing.hostile_judge import executions, judge, post_bundles
from kwil_sync.testing.stack import LocalStack

LIFETIME_S = scenarios.LIFETIME_S


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def hostile_corpus(world: ChaosWorld, records: int, rate: float) -> Figures:
    """`kwil_sync.testing.hostile` around `records` honest records, restored through
    `rate` faults onto a kwild v0.10 stand-in (tests/test_hostile_corpus.py runs it small)."""
    corpus = build_corpus("a1" * 32, "b2" * 32, good=records)
    first, second = corpus.gateway_items()
    post_bundles(world.arlocal, [first[i:i + 250] for i in range(0, len(first), 250)] + [second])
    listed = [h for h in corpus.hostile if h.reach == "listed" and h.item.id not in
              {i.id for i in first}]
    world.wait_indexed(corpus.original_dbid, len(first) + len(listed))
    with world.target("hostile", "v0.10") as target, \
            FaultProxy.start(world.arlocal.url, fault_rates(rate), seed=11,
                             max_lifetime=LIFETIME_S) as gw, \
            FaultProxy.start(target.node.url, fault_rates(rate), seed=12,
                             max_lifetime=LIFETIME_S) as kwil:
        runs = run_until_done(lambda: target.replayer(
            f"{gw.url}/graphql", gw.url, corpus.original_dbid, kwil_url=kwil.url), say=say)
        quarantined = sum(runs.report.quarantined.values()) if runs.report else None
        verdict = judge(corpus, executions(target.chain_dir, target.id, "v0.10"),
                        target.ledger.quarantined(target.id))
        figures = target.figures(corpus.good)
        injected = gw.stats().injected + kwil.stats().injected
    figures.update(hostile_kinds=len(corpus.hostile), hostile_on_gateway=len(listed),
                   quarantined=quarantined, wrong_reason=verdict.wrong_reason,
                   completed=runs.report is not None, failed_runs=runs.failed_runs(),
                   faults_injected=injected)
    return figures


# Each scenario at the bench's size: `records` per scenario and the command's options.
SCENARIOS: dict[str, Callable[[ChaosWorld, argparse.Namespace], Figures]] = {
    "faults-every-hop": lambda w, a: scenarios.faults_every_hop(w, a.records, a.fault_rate),
    "kwild-down": lambda w, a: scenarios.kwild_outage(w, a.records, outage_s=a.outage),
    "kwild-restart": lambda w, a: scenarios.kwild_outage(w, a.records, restart=True),
    "bundler-402": lambda w, a: scenarios.bundler_402(w, a.records, a.payment_window),
    "upload-killed": lambda w, a: scenarios.upload_killed(w, a.records, batch_size=100,
                                                          lease_s=10),
    "two-follows": lambda w, a: scenarios.two_follows(w, a.records),
    "key-rotation": lambda w, a: scenarios.key_rotation(w, a.records // 2),
    "hostile-corpus": lambda w, a: hostile_corpus(w, a.records, a.fault_rate),
}
TOTALS = ("faults_injected", "records_expected", "records_applied", "duplicates", "missing",
          "unexpected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="records per scenario")
    parser.add_argument("--fault-rate", type=float, default=0.2,
                        help="share of requests that fail on each faulty hop")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds kwild is down")
    parser.add_argument("--payment-window", type=float, default=20.0,
                        help="seconds the bundler answers 402")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    results: dict[str, Figures] = {}
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with LocalStack(root / "stack") as stack:
        api = stack.start_prefect()
        arlocal = Arlocal.start()
        try:
            with temporary_settings({PREFECT_API_URL: api}):
                world = ChaosWorld(root, arlocal, stack.env(), say=say)
                for name in args.only or list(SCENARIOS):
                    say(f"== {name}")
                    began = time.monotonic()
                    results[name] = SCENARIOS[name](world, args)
                    results[name]["seconds"] = round(time.monotonic() - began, 1)
                    say(f"   {json.dumps(results[name], default=str)}")
        finally:
            arlocal.stop()
    summary: Figures = {"scenarios": len(results)}
    summary.update({k: sum(int(r.get(k, 0)) for r in results.values()) for k in TOTALS})
    summary.update(records_per_scenario=args.records, fault_rate=args.fault_rate,
                   per_scenario=results)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
