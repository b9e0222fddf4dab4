"""Blocks for a Kwil provider: its JSON-RPC endpoint, chain and signing key."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from kwil_sync.arweave.signers import EthereumSigner
from kwil_sync.blocks.links import DOCS_URL, LOGO_URL
from kwil_sync.kwil.client import KwilClient
from kwil_sync.tx_packing import MAX_CALLS_PER_TX


class KwilNode(Block):
    """A Kwil provider (kwild) that kwil-sync reads schemas from and executes actions on.

    The private key signs the Kwil transactions that replay actions, and, on the write
    path, the sync records the shim uploads. It must own the target database so that
    private actions (the private-twin convention) are accepted.

    Args:
        rpc_url: The node's JSON-RPC base URL.
        version: The kwild line the node runs, or auto to detect it.
        chain_id: The chain id transactions are signed for; empty to read it from the node.
        private_key: The secp256k1 key, as hex, that signs transactions.
        timeout_seconds: How long one RPC call may take.

    Examples:
        Load a saved node and list the actions of a database:
        ```python
        from kwil_sync.blocks.kwil import KwilNode
        kwil_node = KwilNode.load("BLOCK_NAME")
        client = kwil_node.get_client()
        print(client.actions("x52197631a5de74a1e293681181c2a63418d7ae710a3f0370d91a99bd"))
        ```
    """

    _block_type_name = "Kwil Node"
    _block_type_slug = "kwil-node"
    _description = "A Kwil provider (kwild JSON-RPC endpoint, chain id and signing key)."
    _documentation_url = DOCS_URL
    _logo_url = LOGO_URL

    rpc_url: str = Field(
        default="http://127.0.0.1:8484",
        description="The node's JSON-RPC base URL (kwild serves POST /rpc/v1 under it).",
    )
    version: Literal["auto", "v0.9", "v0.10"] = Field(
        default="auto",
        description="The kwild line the node runs: v0.9, v0.10, or auto to detect it.",
    )
    chain_id: str = Field(
        default="",
        description="The chain id to sign transactions for; empty reads it from the node.",
    )
    private_key: SecretStr = Field(
        default=...,
        description="The secp256k1 private key, as hex, that signs Kwil transactions.",
    )
    timeout_seconds: float = Field(
        default=10.0,
        description="How many seconds one RPC call may take before it counts as failed.",
    )
    max_calls_per_tx: int = Field(
        default=MAX_CALLS_PER_TX, ge=1,
        description="Most consecutive records of one action a replay packs into one "
                    "transaction, as argument sets (1: a transaction per record).",
    )

    def get_client(self) -> KwilClient:
        """A JSON-RPC client for this node."""
        return KwilClient(self.rpc_url, version=self.version, timeout=self.timeout_seconds)

    def get_signer(self) -> EthereumSigner:
        """The provider key as a signer (its `.address` is the provider address)."""
        return EthereumSigner(self.private_key.get_secret_value())

    def resolve_chain_id(self, client: KwilClient | None = None) -> str:
        """The configured chain id, or the node's own when none is configured."""
        if self.chain_id:
            return self.chain_id
        return (client or self.get_client()).chain_info().chain_id
