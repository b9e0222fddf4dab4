"""The 2023 restore algorithm, re-created as the restore bench's baseline.

What the original TypeScript sync server (`martin-opensky/kwil-db-sync`,
src/db-sync.mts `restore` -> `processResponse` -> `executeActions`) did, step by step:

1. one GraphQL query for the database's records, oldest first;
2. for each record in the answer, one at a time: fetch its document from the gateway,
   parse it (no signature or trust check);
3. then for each document, one at a time: build the transaction with kwil-js
   (`actionBuilder().buildTx()` asks the node for a fee estimate and the account
   nonce, the schema is cached), broadcast it and wait for the answer, which here
   means waiting for the commit (sync mode "commit") so the next nonce is free.

Changes made so it can be measured: the GraphQL reader pages with cursors (the
original only ever saw the first page), works page by page (fetch the page's
documents, then execute them), and stops after `limit` records. Kept as it was: a
failed action is counted and dropped. Left out: the original then sent a second
transaction per action (`save_db_sync` into `db_sync_history`), also waiting for it;
the messages schema has no history table, so the baseline here is about twice as fast
as the 2023 server would have been.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from kwil_sync.arweave.graphql_queries import build_query, parse_page
from kwil_sync.kwil.client import KwilClient
from kwil_sync.kwil.payload import encode_action
from kwil_sync.kwil.tx import build_tx
from kwil_sync.kwil.values import convert_arguments

__all__ = ["BaselineResult", "restore_2023"]

PAGE_SIZE = 100
_TAGS = {"Application": ["KwilDb"], "Type": ["Action-Sync"]}


@dataclass(frozen=True)
class BaselineResult:
    """What one baseline restore did and how long it took."""

    records: int
    applied: int
    failed: int
    pages: int
    seconds: float
    fetch_seconds: float  # of `seconds`, spent fetching documents
    execute_seconds: float  # of `seconds`, spent building, sending and awaiting txs

    @property
    def actions_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def restore_2023(graphql_url: str, data_url: str, original_dbid: str, node_url: str,
                 admin_key_hex: str, target: str, *, limit: int,
                 version: str = "v0.9") -> BaselineResult:
    """Restore the first `limit` records of `original_dbid` onto `target` the 2023 way.

    Raises:
        httpx.HTTPError: The gateway failed (the original had no retries either).
    """
    started = time.perf_counter()
    http = httpx.Client(timeout=30)
    client = KwilClient(node_url, version=version)
    try:
        chain_id = client.chain_info().chain_id  # kwil-js is configured with the chain id
        schema = {a.name: a.parameters for a in client.actions(target)}  # kwil-js caches it
        tags = {**_TAGS, "Original-DBID": [original_dbid]}
        records = applied = failed = pages = 0
        fetch_s = execute_s = 0.0
        after: str | None = None
        while records < limit:
            query = build_query("gateway", page_size=PAGE_SIZE, tags=tags, order="ASC",
                                after=after)
            answer = http.post(graphql_url, json={"query": query})
            answer.raise_for_status()
            page = parse_page("gateway", answer.json()["data"])
            pages += 1
            rows = page.records[:limit - records]
            mark = time.perf_counter()
            documents = []
            for row in rows:  # one document at a time
                response = http.get(f"{data_url}/{row.id}")
                response.raise_for_status()
                documents.append(json.loads(response.text))
            fetch_s += time.perf_counter() - mark
            mark = time.perf_counter()
            for document in documents:  # one transaction at a time, each awaited
                if _execute(client, admin_key_hex, chain_id, target, schema, document):
                    applied += 1
                else:
                    failed += 1
            execute_s += time.perf_counter() - mark
            records += len(rows)
            if not page.has_next or page.end_cursor is None:
                break
            after = page.end_cursor
    finally:
        client.close()
        http.close()
    return BaselineResult(records, applied, failed, pages, time.perf_counter() - started,
                          fetch_s, execute_s)


def _execute(client: KwilClient, key: str, chain_id: str, target: str,
             schema: dict[str, list[tuple[str, str | None]]], document: dict[str, object]
             ) -> bool:
    """Build, estimate, take the nonce, sign, broadcast and await one action."""
    name = str(document["actionName"])
    params = schema.get(name)
    if params is None:
        return False  # the original logged the Kwil error and went on
    given = {str(d["name"]): str(d["value"]) for d in document["data"]}  # type: ignore[attr-defined]
    try:
        arguments = convert_arguments(client.version, params, [given[p] for p, _ in params])
    except (KeyError, ValueError):
        return False
    payload = encode_action(client.version, target, name, [arguments])
    draft = build_tx(key, payload, description="", fee="0", nonce=0, chain_id=chain_id)
    fee = client.estimate_price(draft)
    address = draft["sender"]
    nonce = client.account_nonce(address) + 1
    tx = build_tx(key, payload, description="", fee=fee, nonce=nonce, chain_id=chain_id)
    try:
        result = client.broadcast(tx, "commit").result
    except Exception:  # the original caught every Kwil error, logged it and went on
        return False
    return result is not None and result.ok
