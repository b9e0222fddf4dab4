"""kwil-sync's Prefect blocks, registered through the `prefect.collections` entry point."""

from kwil_sync.blocks.arweave import ArweaveGateway, Bundler
from kwil_sync.blocks.kwil import KwilNode
from kwil_sync.blocks.ledger import LedgerDatabase
from kwil_sync.blocks.shim import SyncShim

__all__ = ["ArweaveGateway", "Bundler", "KwilNode", "LedgerDatabase", "SyncShim"]
