"""Direct L1 uploads: items packed into ANS-104 bundles, each posted as one signed transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.bundle import BUNDLE_TAGS, encode_bundle
from kwil_sync.arweave.data import GatewayError
from kwil_sync.arweave.gateway import GatewayClient, GatewayUnavailable, WalletNotFunded
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.transaction import Transaction
from kwil_sync.arweave.uploaders.base import (
    PaymentRequired,
    UploadError,
    UploadReceipt,
)
from kwil_sync.retry import RetryPolicy

__all__ = ["DirectL1Uploader"]

T = TypeVar("T")


class DirectL1Uploader:
    """Bundle items into L1 transactions signed by an RSA wallet and post them to a gateway.

    Items keep their own ids (a single item goes as a bundle of one). Items are packed in
    order into bundles of at most `max_bundle_bytes` (an item larger than that travels
    alone).

    Args:
        gateway_url: The gateway to post to (arweave.net, arlocal, ...).
        signer: The funded wallet that signs and pays for the bundle transactions.
        max_bundle_bytes: Largest bundle per transaction.
        max_retries: Retries per transaction on connection errors, 429 and 5xx.
        gateway: A client to reuse instead of one made from `gateway_url`.
        sleep: How to wait between attempts.
    """

    def __init__(self, gateway_url: str, signer: ArweaveSigner, *,
                 max_bundle_bytes: int = 10 << 20, max_retries: int = 4,
                 backoff: float = 0.5, gateway: GatewayClient | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._own_gateway = gateway is None
        self.gateway = gateway or GatewayClient(gateway_url)
        self.signer, self.max_bundle_bytes = signer, max_bundle_bytes
        self.retry = RetryPolicy(max_retries, backoff, sleep=sleep, retryable=_unavailable)

    def __repr__(self) -> str:
        return f"DirectL1Uploader({self.gateway.url!r}, signer={self.signer!r})"

    def close(self) -> None:
        """Close the gateway client if this uploader made it."""
        if self._own_gateway:
            self.gateway.close()

    def upload(self, items: Sequence[DataItem]) -> list[UploadReceipt]:
        """Post the items as bundles; receipts carry the bundle transaction id.

        Raises:
            PaymentRequired: The wallet cannot pay (on arlocal: mint first).
            UploadError: The gateway refused a bundle or stayed unavailable.
        """
        receipts: list[UploadReceipt] = []
        for group in self._groups(items):
            try:
                tx_id = self._post_bundle(group)
            except UploadError as exc:
                exc.completed = receipts
                raise
            receipts += [UploadReceipt(item.id, None, False, self.gateway.url, tx_id)
                         for item in group]
        return receipts

    def _groups(self, items: Sequence[DataItem]) -> list[list[DataItem]]:
        groups: list[list[DataItem]] = []
        size = 0
        for item in items:
            cost = 64 + len(item.raw)  # its header entry and its bytes
            if groups and size + cost <= self.max_bundle_bytes:
                groups[-1].append(item)
                size += cost
            else:
                groups.append([item])
                size = 32 + cost
        return groups

    def _post_bundle(self, group: list[DataItem]) -> str:
        data = encode_bundle(group)
        what = f"bundle of {len(group)} items (first {group[0].id})"

        def sign() -> Transaction:
            return Transaction.create(data, BUNDLE_TAGS, self.signer,
                                      last_tx=self.gateway.tx_anchor(),
                                      reward=self.gateway.price(len(data)))

        tx = self._with_retries(sign, what)
        # The same signed transaction on every retry: a post that landed unseen is not doubled.
        self._with_retries(lambda: self.gateway.post_transaction(tx), what)
        return tx.id

    def _with_retries(self, call: Callable[[], T], what: str) -> T:
        try:
            return self.retry.call(call)
        except WalletNotFunded as exc:
            raise PaymentRequired(f"{what}: {exc}", status=exc.status, body=exc.body) from exc
        except GatewayError as exc:  # refused, or still unavailable after the retries
            raise UploadError(f"{what}: {exc}", status=exc.status, body=exc.body) from exc


def _unavailable(error: Exception) -> bool:
    """Only an unreachable or failing gateway (429, 5xx) is worth another try."""
    return isinstance(error, GatewayUnavailable)
