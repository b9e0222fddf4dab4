"""Write side of an Arweave gateway (arweave.net, ar.io, arlocal): anchor, price, post, status.

One attempt per call and typed errors; callers (uploaders, tasks) decide on retries.
Data that fits one chunk (<= 256 KiB) is posted inline with the transaction; larger
data is posted as the header followed by one `POST /chunk` per chunk, as arweave-js
does.

Example:
    ```python
    with GatewayClient("http://127.0.0.1:1984") as gw:
        tx = Transaction.create(data, tags, signer, last_tx=gw.tx_anchor(),
                                reward=gw.price(len(data)))
        gw.post_transaction(tx)
    ```
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import httpx

from kwil_sync.arweave.data import GatewayError
from kwil_sync.arweave.transaction import Transaction

__all__ = ["ArweaveTxStatus", "GatewayClient", "GatewayUnavailable", "WalletNotFunded"]

_EXCERPT = 300


class _WriteSideError(GatewayError):
    """Write-side errors are made message first (test stand-ins raise them too)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "",
                 id: str = "") -> None:
        super().__init__(id, message, status=status, body=body)


class WalletNotFunded(_WriteSideError):
    """HTTP 410: the wallet has no balance for this fee (on arlocal: mint first)."""


class GatewayUnavailable(_WriteSideError):
    """The gateway could not be reached, timed out or answered 5xx; retrying may help."""


@dataclass(frozen=True)
class ArweaveTxStatus:
    """Where a transaction stands: "pending", "confirmed" (with its block) or "not_found"."""

    id: str
    state: Literal["pending", "confirmed", "not_found"]
    block_height: int | None = None
    confirmations: int | None = None


class GatewayClient:
    """Post L1 transactions to a gateway and follow them.

    Args:
        url: The gateway base URL, e.g. "https://arweave.net" or arlocal's URL.
        timeout: Seconds per request.
        http: A client to reuse (not closed here); a new one is made otherwise.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, http: httpx.Client | None = None
                 ) -> None:
        self.url = url.rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"GatewayClient({self.url!r})"

    def _request(self, method: str, path: str, what: str, *, json: object = None,
                 id: str = "") -> httpx.Response:
        try:
            response = self.http.request(method, self.url + path, json=json,
                                         timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{what}: {self.url} is unreachable ({exc!r}); check the "
                                     "gateway URL and that it is up", id=id) from exc
        status, body = response.status_code, response.text[:_EXCERPT]
        if 200 <= status < 300:
            return response
        if status == 410:
            raise WalletNotFunded(f"{what}: the gateway says the wallet is not funded (410: "
                                  f"{body!r}); fund it (on arlocal: mint first)",
                                  status=status, body=body, id=id)
        message = f"{what}: {self.url} answered HTTP {status}: {body!r}; "
        if status >= 500 or status == 429:
            raise GatewayUnavailable(message + "retry later", status=status, body=body, id=id)
        raise GatewayError(id, message + "the request was refused as sent: check signature, "
                           "anchor and fee", status=status, body=body)

    def tx_anchor(self) -> str:
        """The anchor (`last_tx`) to sign new transactions with."""
        return self._request("GET", "/tx_anchor", "tx_anchor").text.strip()

    def price(self, nbytes: int, target: str = "") -> str:
        """The fee in winston for `nbytes` of data (and a transfer to `target`)."""
        path = f"/price/{nbytes}" + (f"/{target}" if target else "")
        text = self._request("GET", path, "price").text.strip()
        if not text.isdigit():
            raise GatewayError("", f"price: {self.url} answered {text[:_EXCERPT]!r}, not a "
                               "number", body=text[:_EXCERPT])
        return text

    def post_transaction(self, tx: Transaction) -> None:
        """POST /tx, then POST /chunk for each chunk when the data is not inline.

        Raises:
            WalletNotFunded: On 410.
            GatewayUnavailable: On connection errors, timeouts, 429 and 5xx.
            GatewayError: On any other refusal (400: bad signature, data_root or anchor).
        """
        self._request("POST", "/tx", f"post transaction {tx.id}", json=tx.to_json(), id=tx.id)
        if tx.inline:
            return
        for i, chunk in enumerate(tx.chunks()):
            self._request("POST", "/chunk", f"post chunk {i} of transaction {tx.id}",
                          json=chunk, id=tx.id)

    def tx_status(self, id: str) -> ArweaveTxStatus:
        """Pending, confirmed (with block height and confirmations) or not found."""
        try:
            response = self._request("GET", f"/tx/{id}/status", f"status of {id}", id=id)
        except GatewayError as exc:
            if exc.status == 404:
                return ArweaveTxStatus(id, "not_found")
            raise
        if response.status_code == 202 or response.text.strip() == "Pending":
            return ArweaveTxStatus(id, "pending")
        body = response.json()
        return ArweaveTxStatus(id, "confirmed", int(body["block_height"]),
                               int(body["number_of_confirmations"]))

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
