"""Arweave L1 format-2 transactions, signed with an RSA wallet (JWK), as arweave-js makes them.

Signed message: deep hash of `["2", owner, target, quantity, reward, last_tx,
[[name, value], ...], data_size, data_root]` (RSA-PSS SHA-256); id =
base64url(sha256(signature)). Data of one chunk (<= 256 KiB) travels inline in the
JSON posted to `/tx`; larger data is posted as the header alone followed by one
`POST /chunk` per chunk (`Transaction.chunks`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kwil_sync.arweave.deephash import deep_hash
from kwil_sync.arweave.merkle import MAX_CHUNK_SIZE, ChunkedData, chunk_data
from kwil_sync.arweave.signers import ArweaveSigner, b64url, b64url_decode, verify_signature
from kwil_sync.arweave.tags import Tag
from kwil_sync.errors import KwilSyncError

__all__ = ["MAX_TAG_BYTES", "Transaction", "TransactionError"]

MAX_TAG_BYTES = 2048  # Arweave L1: names and values together


class TransactionError(KwilSyncError, ValueError):
    """A transaction that cannot be built or read."""


@dataclass(frozen=True)
class Transaction:
    """A signed format-2 transaction. Build with `create`, read with `from_json`.

    `data` is None when the transaction was read without its data (uploaded by chunks).
    """

    owner: bytes
    tags: list[Tag]
    target: str
    quantity: str
    reward: str
    last_tx: str
    data_size: int
    data_root: str  # base64url; "" for no data
    signature: bytes = field(repr=False)
    data: bytes | None = field(repr=False, default=None)

    @property
    def id(self) -> str:
        return b64url(hashlib.sha256(self.signature).digest())

    @property
    def owner_address(self) -> str:
        """The wallet address: base64url(sha256(owner modulus))."""
        return b64url(hashlib.sha256(self.owner).digest())

    @property
    def inline(self) -> bool:
        """True when the data fits one chunk and travels in the /tx body."""
        return self.data_size <= MAX_CHUNK_SIZE

    def tag(self, name: str) -> str | None:
        return next((v for n, v in self.tags if n == name), None)

    def signing_message(self) -> bytes:
        return _signing_message(self.owner, self.target, self.quantity, self.reward,
                                self.last_tx, self.tags, self.data_size, self.data_root)

    @classmethod
    def create(cls, data: bytes, tags: list[Tag], signer: ArweaveSigner, *, last_tx: str,
               reward: str, target: str = "", quantity: str = "0") -> Transaction:
        """Sign a new transaction carrying `data` and `tags`.

        Args:
            data: The payload (a bundle, a document, ...).
            tags: (name, value) pairs; each non-empty, all together at most 2048 bytes.
            signer: The funded RSA wallet.
            last_tx: The anchor from the gateway's `/tx_anchor`.
            reward: The fee in winston, from the gateway's `/price/<bytes>`.
            target: A recipient address (base64url) for a transfer, or "".
            quantity: Winston sent to `target`.

        Raises:
            TransactionError: If a tag is empty or the tags are too large.
        """
        _check_tags(tags)
        chunked = chunk_data(data) if data else None
        data_root = b64url(chunked.data_root) if chunked else ""
        message = _signing_message(signer.owner, target, quantity, reward, last_tx, tags,
                                   len(data), data_root)
        tx = cls(signer.owner, list(tags), target, quantity, reward, last_tx, len(data),
                 data_root, signer.sign(message), bytes(data))
        if chunked is not None:
            tx.__dict__["_chunked"] = chunked  # already computed: keep it for chunks()
        return tx

    def verify(self) -> bool:
        """True when the owner signed exactly these fields and the data (if held) matches."""
        if self.data is not None:
            if len(self.data) != self.data_size:
                return False
            root = b64url(self._chunked.data_root) if self.data else ""
            if root != self.data_root:
                return False
        return verify_signature(1, self.owner, self.signing_message(), self.signature)

    @cached_property
    def _chunked(self) -> ChunkedData:
        return chunk_data(self.data or b"")

    def chunks(self) -> list[dict[str, str]]:
        """The bodies for `POST /chunk`, in order (none for empty data).

        Raises:
            TransactionError: If this transaction was read without its data.
        """
        if not self.data_size:
            return []
        if self.data is None:
            raise TransactionError(f"transaction {self.id} was read without its data")
        data = self.data
        return [
            {"data_root": self.data_root, "data_size": str(self.data_size),
             "data_path": b64url(c.data_path), "offset": str(c.offset),
             "chunk": b64url(data[c.start : c.end])}
            for c in self._chunked.chunks
        ]

    def to_json(self, *, with_data: bool | None = None) -> dict[str, Any]:
        """The JSON for `POST /tx`; data inline when it fits one chunk (or as `with_data` says)."""
        if with_data is None:
            with_data = self.inline
        if with_data and self.data is None and self.data_size:
            raise TransactionError(f"transaction {self.id} was read without its data")
        return {
            "format": 2,
            "id": self.id,
            "last_tx": self.last_tx,
            "owner": b64url(self.owner),
            "tags": [{"name": b64url(n.encode()), "value": b64url(v.encode())}
                     for n, v in self.tags],
            "target": self.target,
            "quantity": self.quantity,
            "data": b64url(self.data or b"") if with_data else "",
            "data_size": str(self.data_size),
            "data_root": self.data_root,
            "reward": self.reward,
            "signature": b64url(self.signature),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Transaction:
        """Read a transaction as gateways serve it (`GET /tx/<id>`) or as `to_json` wrote it.

        Raises:
            TransactionError: If it is not format 2, a field is missing or malformed, or
                its id is not the hash of its signature.
        """
        if str(d.get("format")) != "2":
            raise TransactionError(f"only format-2 transactions are supported, got format "
                                   f"{d.get('format')!r}")
        try:
            tags = [(b64url_decode(t["name"]).decode(), b64url_decode(t["value"]).decode())
                    for t in d.get("tags", [])]
            data_size = int(d.get("data_size") or 0)
            inline = d.get("data") or ""
            data = b64url_decode(inline) if inline else (b"" if data_size == 0 else None)
            tx = cls(b64url_decode(d["owner"]), tags, d.get("target", ""),
                     str(d.get("quantity", "0")), str(d["reward"]), d.get("last_tx", ""),
                     data_size, d.get("data_root", ""), b64url_decode(d["signature"]), data)
        except KeyError as exc:
            raise TransactionError(f"transaction JSON lacks field {exc}") from exc
        except (TypeError, ValueError) as exc:  # bad base64, non-UTF-8 tags, bad numbers
            raise TransactionError(f"malformed transaction JSON: {exc}") from exc
        if "id" in d and d["id"] != tx.id:
            raise TransactionError(f"transaction id {d['id']} is not sha256 of its signature "
                                   f"({tx.id})")
        return tx


def _check_tags(tags: list[Tag]) -> None:
    total = 0
    for i, (name, value) in enumerate(tags):
        if not name or not value:
            raise TransactionError(f"tag {i} ({name!r}) needs a non-empty name and value")
        total += len(name.encode()) + len(value.encode())
    if total > MAX_TAG_BYTES:
        raise TransactionError(f"tags take {total} bytes; Arweave allows {MAX_TAG_BYTES}")


def _signing_message(owner: bytes, target: str, quantity: str, reward: str, last_tx: str,
                     tags: list[Tag], data_size: int, data_root: str) -> bytes:
    return deep_hash([
        b"2", owner, b64url_decode(target), quantity.encode(), reward.encode(),
        b64url_decode(last_tx), [[n.encode(), v.encode()] for n, v in tags],
        str(data_size).encode(), b64url_decode(data_root),
    ])
