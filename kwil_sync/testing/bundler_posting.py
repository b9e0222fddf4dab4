"""The bundler stand-in's write side: bundle stored items into arlocal L1 transactions.

A bundle is recorded in the store (state "signed", with its full transaction JSON)
before it is posted and marked "posted" after arlocal mined it. A later round (or a
restarted stand-in) finishes a "signed" bundle by asking arlocal for its status and
re-posting the very same transaction only when arlocal does not know it, so no item is
ever posted twice; a re-post arlocal refuses (an expired anchor) frees its items for a
fresh bundle.
"""

from __future__ import annotations

import logging
import threading

import httpx

from kwil_sync.arweave.ans104 import DataItem
from kwil_sync.arweave.bundle import BUNDLE_TAGS, encode_bundle
from kwil_sync.arweave.data import GatewayError
from kwil_sync.arweave.gateway import GatewayClient, GatewayUnavailable
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.transaction import Transaction
from kwil_sync.errors import KwilSyncError
from kwil_sync.testing.bundler_store import BundleRow, Store

__all__ = ["BundlePoster", "BundlingFailed"]

log = logging.getLogger(__name__)


class BundlingFailed(KwilSyncError, RuntimeError):
    """A bundling round failed (injected with `fail_next`, or arlocal refused it)."""


class BundlePoster:
    """Posts what `store` holds unbundled to arlocal as bundles signed by `signer`.

    Args:
        store: The stand-in's store.
        signer: The bundler's RSA wallet (minted on arlocal here).
        arlocal_url: arlocal's base URL.
        max_bundle_items: Items per bundle transaction at most.
        mint_winston: Winston minted to the wallet at start.

    Raises:
        GatewayUnavailable: If arlocal cannot be reached to mint.
    """

    def __init__(self, store: Store, signer: ArweaveSigner, arlocal_url: str, *,
                 max_bundle_items: int, mint_winston: int) -> None:
        self.store = store
        self.signer = signer
        self.arlocal_url = arlocal_url.rstrip("/")
        self.max_bundle_items = max_bundle_items
        self.height = 0
        self._failures = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self.gateway = GatewayClient(self.arlocal_url)
        try:
            self._arlocal("mint", f"/mint/{signer.address}/{mint_winston}")
            self.refresh_height()
        except BaseException:
            self.close()
            raise

    def fail_next(self, count: int = 1) -> None:
        """Make the next `count` rounds fail before posting anything."""
        with self._lock:
            self._failures = count

    def flush(self) -> list[str]:
        """Post every unposted item (and finish any bundle left unposted), then mine.

        Returns:
            The ids of the bundle transactions posted in this round.

        Raises:
            BundlingFailed: When injected.
            GatewayError: When arlocal is unreachable or refuses (retried next round).
        """
        with self._lock:
            if self._failures > 0:
                self._failures -= 1
                raise BundlingFailed("bundling failure injected by fail_bundling()")
            posted = [row.id for row in self.store.bundles("signed") if self._finish(row)]
            while batch := self.store.unbundled(self.max_bundle_items):
                data = encode_bundle([DataItem.parse(raw) for _, raw in batch])
                tx = Transaction.create(data, list(BUNDLE_TAGS), self.signer,
                                        last_tx=self.gateway.tx_anchor(),
                                        reward=self.gateway.price(len(data)))
                self.store.claim(tx.id, tx.to_json(with_data=True), [seq for seq, _ in batch])
                self.gateway.post_transaction(tx)
                self._mine_and_mark(tx.id)
                posted.append(tx.id)
            return posted

    def _finish(self, row: BundleRow) -> bool:
        """Finish a bundle recorded but maybe not posted; False if it had to be dropped."""
        if self.gateway.tx_status(row.id).state == "not_found":
            try:
                self.gateway.post_transaction(Transaction.from_json(row.tx_json))
            except GatewayUnavailable:
                raise
            except GatewayError as exc:  # e.g. its anchor expired: bundle the items afresh
                log.warning("bundle %s refused on re-post (%s); re-bundling its items",
                            row.id, exc)
                self.store.mark(row.id, "abandoned")
                return False
        self._mine_and_mark(row.id)
        return True

    def _mine_and_mark(self, bundle_id: str) -> None:
        self._arlocal("mine", "/mine")
        self.store.mark(bundle_id, "posted")
        self.refresh_height()

    def _arlocal(self, what: str, path: str) -> httpx.Response:
        try:
            response = self._http.get(f"{self.arlocal_url}{path}")
            response.raise_for_status()
            return response
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{what} on arlocal {self.arlocal_url} failed: {exc!r}; "
                                     "is arlocal running?") from exc

    def refresh_height(self) -> None:
        """Re-read arlocal's block height (receipts' deadlineHeight builds on it)."""
        self.height = int(self._arlocal("info", "/info").json()["height"])

    def close(self) -> None:
        self._http.close()
        self.gateway.close()
