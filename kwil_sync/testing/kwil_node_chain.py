"""Accounts, mempool and blocks of the kwild stand-in (see `kwil_node` for the model).

CheckTx follows kwild's order and words: chain id, then signature, then nonce (the
account nonce + 1, counting what the mempool already holds for the sender). A block
takes the whole mempool in arrival order; every transaction uses up its nonce, and a
failed one is rolled back and recorded with its code and log. Chain state (height,
accounts, results, deployed schemas) lives in SQLite: in memory, or in `data_dir` so
a restarted stand-in keeps it (the mempool is not kept, as in kwild).

Execution follows kwil-db v0.9.4: `internal/abci/abci.go` FinalizeBlock runs each
transaction with `TxID` = hex sha256 of its bytes and the block's height;
`internal/txapp/routes.go` runs an execute transaction's argument sets in order in one
nested database transaction and stops at the first failure, which rolls back every
set (the result code is then not 0). Extension methods (`kwil_node_ext`) are called
while a set runs, so their calls for a transaction that fails were already made.
`make_block(replays=n)` executes a block n more times before committing it, rolled back
each time, as a node does that crashed after executing a block and replays it;
`replay_chain()` re-executes every committed block from empty databases, as a node
syncing the chain from genesis does.

Two locks: `lock` guards the databases and block execution (reads of the databases
take it too); a second one guards the mempool and transaction results, so `tx_query`
and broadcasts are answered while a block waits on an extension.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.ethkeys import address_from_public_key, recover_personal
from kwil_sync.kwil.arguments import PayloadError
from kwil_sync.kwil.dbid import dbid
from kwil_sync.kwil.errors import (
    TX_DATASET_MISSING,
    TX_ENCODING_ERROR,
    TX_INVALID_NONCE,
    TX_INVALID_SIGNATURE,
    TX_WRONG_CHAIN,
    tx_unknown_error_code,
)
from kwil_sync.kwil.payload import decode_action
from kwil_sync.kwil.tx import SignatureError, SignedTx, parse_tx, recover_sender, tx_hash
from kwil_sync.testing.kwil_node_ext import ExtensionHub
from kwil_sync.testing.kwil_node_schema import Database, ExecutionError, Schema

__all__ = ["MAX_TX_BYTES", "Chain", "Duplicate", "Rejected", "TooLarge", "TxRecord"]

MAX_TX_BYTES = 4 * 1024 * 1024  # kwild's default mempool max_tx_bytes (both lines)

_STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS accounts (address TEXT PRIMARY KEY, nonce INTEGER)",
    "CREATE TABLE IF NOT EXISTS txs (hash TEXT PRIMARY KEY, height INTEGER, code INTEGER,"
    " log TEXT, tx TEXT)",
    "CREATE TABLE IF NOT EXISTS databases (target TEXT PRIMARY KEY, owner TEXT, name TEXT,"
    " schema TEXT)",
)


class Rejected(KwilSyncError):
    """CheckTx refused a transaction: kwild's tx code and log."""

    def __init__(self, code: int, log: str, tx_hash: str) -> None:
        super().__init__(log)
        self.code, self.log, self.tx_hash = code, log, tx_hash


class Duplicate(Rejected):
    """The same transaction is already in the mempool or a block."""


class TooLarge(Rejected):
    """Over the mempool's size limit for one transaction: `max_tx_bytes`, 4 MiB by
    default in kwild v0.9.4 (CometBFT's mempool, cmd/kwild/config/default_config.toml)
    and v0.10.2 (config/config.go `MaxTxBytes`, node/mempool/mempool.go)."""


@dataclass
class TxRecord:
    """A known transaction: height -1 while in the mempool."""

    hash: str
    tx: dict[str, Any]
    height: int = -1
    code: int = 0
    log: str = ""
    sender: str = ""  # EIP-55, known once the signature checked out
    parsed: SignedTx | None = None


class Chain:
    """The state machine behind the stand-in's RPC; every method is thread-safe."""

    def __init__(self, version: str, chain_id: str, data_dir: Path | None = None,
                 extensions: ExtensionHub | None = None) -> None:
        self.version, self.chain_id, self.data_dir = version, chain_id, data_dir
        self.max_tx_bytes = MAX_TX_BYTES
        self.extensions = extensions
        self.lock = threading.RLock()  # databases and block execution
        self._txs = threading.RLock()  # mempool, nonces, results, height
        self.block_made = threading.Condition(self._txs)
        path = str(data_dir / "chain.sqlite") if data_dir else ":memory:"
        self._state = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for ddl in _STATE_DDL:
            self._state.execute(ddl)
        meta = dict(self._state.execute("SELECT key, value FROM meta").fetchall())
        self.height = int(meta.get("height", 0))
        self.block_hash = meta.get("block_hash", "00" * 32)
        self.block_time = time.time()
        self._nonces: dict[str, int] = dict(self._state.execute(
            "SELECT address, nonce FROM accounts").fetchall())
        self._committed: set[str] = {h for (h,) in self._state.execute("SELECT hash FROM txs")}
        self._mempool: dict[str, TxRecord] = {}  # insertion order = arrival order
        self._pending_nonces: dict[str, int] = {}
        self.databases: dict[str, Database] = {}
        for target, owner, name, text in self._state.execute(
                "SELECT target, owner, name, schema FROM databases").fetchall():
            database = Database(owner, name, target, Schema.from_json(text),
                                self._db_path(target))
            self._initialize(database)  # kwild re-initializes stored databases at start
            self.databases[target] = database

    def _db_path(self, target: str) -> str:
        return str(self.data_dir / f"db-{target}.sqlite") if self.data_dir else ":memory:"

    def deploy(self, owner: str, name: str, schema: Schema) -> str:
        """Create a database: returns its dbid (v0.9) or namespace (v0.10)."""
        target = dbid(owner, name) if self.version == "v0.9" else name
        with self.lock:
            if target in self.databases:
                raise ValueError(f"database {target} already exists")
            database = Database(owner, name, target, schema, self._db_path(target))
            self._initialize(database)
            database.create_tables()
            self.databases[target] = database
            self._state.execute("INSERT INTO databases VALUES (?, ?, ?, ?)",
                                (target, owner, name, schema.to_json()))
        return target

    def _initialize(self, database: Database) -> None:
        """Initialize each extension the schema uses; keep the metadata it answers."""
        for use in database.schema.extensions:
            if self.extensions is None:
                raise ValueError(f"the schema uses extension {use.name!r}, but the node has "
                                 "no extension endpoints: start it with one")
            database.extension_metadata[use.alias] = self.extensions.initialize(
                use.name, use.metadata)

    def nonce(self, address_hex: str, *, pending: bool) -> int:
        key = address_hex.lower().removeprefix("0x")
        with self._txs:
            committed = self._nonces.get(key, 0)
            return self._pending_nonces.get(key, committed) if pending else committed

    def submit(self, tx: dict[str, Any]) -> str:
        """CheckTx and queue; returns the hash. Raises `Rejected` with kwild's code and log."""
        try:
            parsed = parse_tx(tx)
        except ValueError as exc:
            raise Rejected(TX_ENCODING_ERROR, str(exc), "") from None
        digest = tx_hash(parsed, self.version)
        size = (len(parsed.payload) + len(parsed.signature) + len(parsed.sender)
                + len(parsed.description) + len(parsed.chain_id) + 64)
        if size > self.max_tx_bytes:  # the mempool's limit, before any other check
            raise TooLarge(tx_unknown_error_code(self.version),
                           "transaction size limit exceeded", digest)
        with self._txs:
            if digest in self._mempool or digest in self._committed:
                raise Duplicate(tx_unknown_error_code(self.version),
                                "transaction already exists", digest)
            sender = self._check(parsed, digest)
            key = parsed.sender.hex()
            expected = self._pending_nonces.get(key, self._nonces.get(key, 0)) + 1
            if parsed.nonce != expected:
                raise Rejected(TX_INVALID_NONCE, f"invalid nonce for account {key}: got "
                               f"{parsed.nonce}, expected {expected}", digest)
            self._pending_nonces[key] = expected
            self._mempool[digest] = TxRecord(digest, tx, sender=sender, parsed=parsed)
        return digest

    def _check(self, tx: SignedTx, digest: str) -> str:
        if tx.chain_id and tx.chain_id != self.chain_id:
            log = "wrong chain ID" if self.version == "v0.9" else f"wrong chain ID: {tx.chain_id}"
            raise Rejected(TX_WRONG_CHAIN, log, digest)
        if tx.payload_type != "execute":
            raise Rejected(2, f"the stand-in only runs 'execute' transactions, not "
                              f"{tx.payload_type!r}", digest)
        try:
            return recover_sender(tx)
        except SignatureError as exc:
            log = _signature_log(tx, exc)
        if self.version == "v0.9":
            raise Rejected(TX_INVALID_SIGNATURE, log, digest)
        raise Rejected(tx_unknown_error_code(self.version),
                       f"failed to verify the transaction: {log}", digest)

    def lookup(self, digest: str) -> TxRecord | None:
        with self._txs:
            if digest in self._mempool:
                return self._mempool[digest]
            if digest not in self._committed:
                return None
            row = self._state.execute("SELECT height, code, log, tx FROM txs WHERE hash = ?",
                                      (digest,)).fetchone()
        if row is None:
            return None
        return TxRecord(digest, json.loads(row[3]), row[0], row[1], row[2])

    def wait_committed(self, digest: str, timeout: float) -> TxRecord | None:
        """Block until the transaction is in a block; None on timeout."""
        deadline = time.monotonic() + timeout
        with self.block_made:
            while True:
                record = self.lookup(digest)
                if record is not None and record.height >= 0:
                    return record
                left = deadline - time.monotonic()
                if left <= 0 or not self.block_made.wait(left):
                    return None

    def make_block(self, replays: int = 0) -> int:
        """Execute the mempool as the next block; returns how many transactions it held.

        Args:
            replays: Execute the block this many extra times first, rolling each back, as
                a node that crashed before committing the block re-executes it: the
                extension calls are made again with the same `@txid` and `@height`.
        """
        with self.lock:
            with self._txs:
                batch = list(self._mempool.values())
                height = self.height + 1
            results: list[tuple[int, str]] = []
            for attempt in range(replays + 1):
                for database in self.databases.values():  # one SQLite transaction per block
                    database.begin()
                results = [self._execute(record, height) for record in batch]
                for database in self.databases.values():
                    if attempt < replays:
                        database.conn.execute("ROLLBACK")
                    else:
                        database.commit()
            with self._txs:
                self.height = height
                for record, (code, log) in zip(batch, results, strict=True):
                    record.height, record.code, record.log = height, code, log
                    parsed = record.parsed or parse_tx(record.tx)
                    self._nonces[parsed.sender.hex()] = parsed.nonce
                self._commit_state(batch)
                self._committed.update(r.hash for r in batch)
                for record in batch:
                    self._mempool.pop(record.hash, None)
                self._pending_nonces = {}
                for record in self._mempool.values():  # arrived while the block ran
                    parsed = record.parsed or parse_tx(record.tx)
                    self._pending_nonces[parsed.sender.hex()] = parsed.nonce
                self.block_made.notify_all()
        return len(batch)

    def replay_chain(self) -> int:
        """Re-execute every committed block from an empty state, as a node syncing the
        chain from genesis does: the extensions get every call again, with the same
        `@txid` and `@height`. Returns how many transactions ran.

        Raises:
            RuntimeError: If a transaction's result differs from the recorded one (the
                execution is not deterministic).
        """
        with self.lock:
            with self._txs:
                rows = self._state.execute("SELECT hash, height, code, log, tx FROM txs "
                                           "ORDER BY height, rowid").fetchall()
            for database in self.databases.values():
                database.reset()
            by_height: dict[int, list[tuple[str, int, str, str]]] = {}
            for digest, height, code, log, tx in rows:
                by_height.setdefault(height, []).append((digest, code, log, tx))
            for height, txs in sorted(by_height.items()):
                for database in self.databases.values():
                    database.begin()
                for digest, code, log, tx in txs:
                    record = TxRecord(digest, json.loads(tx))
                    record.sender = recover_sender(parse_tx(record.tx))
                    again = self._execute(record, height)
                    if again[0] != code:
                        raise RuntimeError(f"transaction {digest} at height {height} ended "
                                           f"{again} on replay, {code} {log!r} before")
                for database in self.databases.values():
                    database.commit()
        return len(rows)

    def _execute(self, record: TxRecord, height: int) -> tuple[int, str]:
        parsed = record.parsed or parse_tx(record.tx)
        try:
            call = decode_action(self.version, parsed.payload)
        except PayloadError as exc:
            return TX_ENCODING_ERROR, str(exc)
        database = self.databases.get(call.target)
        if database is None:
            log = ("dataset not found" if self.version == "v0.9"
                   else f'namespace not found: "{call.target}"')
            return TX_DATASET_MISSING, log
        database.conn.execute("SAVEPOINT tx")
        try:
            for arg_set in call.arguments or [[]]:
                database.run(self.version, call.action, [a["value"] for a in arg_set],
                             caller=record.sender, txid=record.hash, height=height,
                             read_only=False,
                             extensions=self.extensions.execute if self.extensions else None)
        except ExecutionError as exc:
            database.conn.execute("ROLLBACK TO tx")
            return tx_unknown_error_code(self.version), str(exc)
        finally:
            database.conn.execute("RELEASE tx")
        return 0, ""

    def _commit_state(self, batch: list[TxRecord]) -> None:
        digest = hashlib.sha256(bytes.fromhex(self.block_hash) + str(self.height).encode()
                                + b"".join(bytes.fromhex(r.hash) for r in batch))
        self.block_hash, self.block_time = digest.hexdigest(), time.time()
        with self._state:
            self._state.executemany("INSERT OR REPLACE INTO txs VALUES (?, ?, ?, ?, ?)",
                                    [(r.hash, r.height, r.code, r.log, json.dumps(r.tx))
                                     for r in batch])
            self._state.executemany("INSERT OR REPLACE INTO accounts VALUES (?, ?)",
                                    list(self._nonces.items()))
            self._state.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                    [("height", str(self.height)),
                                     ("block_hash", self.block_hash)])

    def drop_mempool(self) -> int:
        """Forget every pending transaction, as a restarted kwild does; returns how many."""
        with self._txs:
            count = len(self._mempool)
            self._mempool.clear()
            self._pending_nonces.clear()
            return count

    def close(self) -> None:
        with self.lock, self._txs:
            for database in self.databases.values():
                database.close()
            self._state.close()
            if self.extensions is not None:
                self.extensions.close()


def _signature_log(tx: SignedTx, exc: SignatureError) -> str:
    """kwild's words for a bad signature (core/crypto/auth/eth_personal_sign.go)."""
    try:
        public = recover_personal(tx.signed_text().encode(), tx.signature)
    except ValueError:
        return f"invalid signature: recover public key failed: {exc}"
    recovered = address_from_public_key(public).lower().removeprefix("0x")
    return f"invalid signature: expected address {tx.sender.hex()}, received {recovered}"
