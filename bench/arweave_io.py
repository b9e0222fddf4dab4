"""Read-side throughput on a fresh arlocal: GraphQL paging and document fetches.

Puts `--records` small signed Ethereum data items on arlocal as bundles (one L1
transaction per 1,000 items), mines, then measures:
- `pages_per_s`: GraphQLPager walks over every record (pages of 100, next page
  prefetched), repeated `--walks` times;
- `docs_per_s_c1` and `docs_per_s_c32`: GatewayDataClient.fetch_many over every id at
  concurrency 1 and 32, in the same run, each result checked against what was posted.

Prints progress lines, then one JSON object as the last line.
Run: `.venv/bin/python bench/arweave_io.py [--records 2000]`.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.bundle import BUNDLE_TAGS, encode_bundle
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.gateway import GatewayClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.transaction import Transaction
from kwil_sync.testing.arlocal import Arlocal

BUNDLE_SIZE = 1000


def seed(gw: Arlocal, run: str, count: int) -> dict[str, bytes]:
    """Post `count` items tagged Bench-Run=`run`; returns id -> data."""
    signer = EthereumSigner("3d" * 32)
    wallet = ArweaveSigner.generate()
    gw.mint(wallet.address)
    items = [DataItem.create(json.dumps({"actionName": "insert_row", "n": i,
                                         "pad": "x" * 120}).encode(),
                             [("Bench-Run", run), ("Content-Type", "application/json"),
                              ("N", str(i))], signer) for i in range(count)]
    with GatewayClient(gw.url) as client:
        for start in range(0, count, BUNDLE_SIZE):
            data = encode_bundle(items[start:start + BUNDLE_SIZE])
            tx = Transaction.create(data, list(BUNDLE_TAGS), wallet,
                                    last_tx=client.tx_anchor(), reward=client.price(len(data)))
            client.post_transaction(tx)
            gw.mine()
    return {item.id: item.data for item in items}


def walk_pages(url: str, run: str, walks: int) -> tuple[float, int]:
    """(pages per second, records seen per walk)."""
    pager = GraphQLPager(url + "/graphql", "gateway", page_size=100)
    pages = records = 0
    started = time.perf_counter()
    for walk in range(walks):
        seen: set[str] = set()
        for page in pager.pages({"Bench-Run": [run]}, order="ASC" if walk % 2 == 0 else "DESC"):
            pages += 1
            seen.update(r.id for r in page.records)
        records = len(seen)
    return pages / (time.perf_counter() - started), records


def fetch_all(url: str, documents: dict[str, bytes], concurrency: int) -> float:
    """Documents per second; raises if any document is missing or differs."""
    with GatewayDataClient(url, concurrency=concurrency) as client:
        started = time.perf_counter()
        results = list(client.fetch_many(documents))
        elapsed = time.perf_counter() - started
    bad = [r.id for r in results if r.error is not None or r.data != documents[r.id]]
    if bad:
        raise SystemExit(f"{len(bad)} documents failed or differ, e.g. {bad[0]}")
    return len(results) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--walks", type=int, default=4)
    args = parser.parse_args()
    with Arlocal.start() as gw:
        run = uuid.uuid4().hex
        started = time.perf_counter()
        documents = seed(gw, run, args.records)
        print(f"seeded {len(documents)} records in {time.perf_counter() - started:.1f} s",
              flush=True)
        pages_per_s, seen = walk_pages(gw.url, run, args.walks)
        if seen != args.records:
            raise SystemExit(f"the pager saw {seen} records, {args.records} were posted")
        print(f"pager: {pages_per_s:.1f} pages/s over {args.walks} walks", flush=True)
        c1 = fetch_all(gw.url, documents, 1)
        print(f"documents at concurrency 1: {c1:.0f}/s", flush=True)
        c32 = fetch_all(gw.url, documents, 32)
        print(f"documents at concurrency 32: {c32:.0f}/s", flush=True)
    print(json.dumps({"records": args.records, "pages_per_s": round(pages_per_s, 2),
                      "docs_per_s_c1": round(c1, 1), "docs_per_s_c32": round(c32, 1),
                      "ratio_c32_c1": round(c32 / c1, 2)}))


if __name__ == "__main__":
    main()
