"""A block naming a running kwil-sync shim, for the upload flow and `kwil-sync status`."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from kwil_sync.blocks.links import DOCS_URL, LOGO_URL
from kwil_sync.shim_client import ShimClient


class SyncShim(Block):
    """Where a kwil-sync shim (the gRPC server beside kwild) can be reached.

    The upload flow pulls records from the shim's outbox through this address and
    acknowledges them once uploaded, so it may run on another machine than the shim.

    Args:
        address: The shim's gRPC address as host:port.
        timeout_seconds: How long one call to the shim may take.

    Examples:
        Load a saved shim and read its outbox depth:
        ```python
        from kwil_sync.blocks.shim import SyncShim
        sync_shim = SyncShim.load("BLOCK_NAME")
        with sync_shim.get_client() as shim:
            print(shim.status())
        ```
    """

    _block_type_name = "Kwil Sync Shim"
    _block_type_slug = "kwil-sync-shim"
    _description = "Where a kwil-sync shim (the gRPC server beside kwild) can be reached."
    _documentation_url = DOCS_URL
    _logo_url = LOGO_URL

    address: str = Field(
        default="127.0.0.1:50051",
        description="The shim's gRPC address as host:port (its --advertise address).",
    )
    timeout_seconds: float = Field(
        default=30.0,
        description="How many seconds one call to the shim may take before it counts as failed.",
    )

    def get_client(self) -> ShimClient:
        """A gRPC client for the shim's outbox API."""
        return ShimClient(self.address, timeout=self.timeout_seconds)
