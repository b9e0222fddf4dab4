"""kwil-sync's Prefect blocks, registered through the `prefect.collections` entry point."""

from blocks.arweave import ArweaveGateway, Bundler
from blocks.kwil import KwilNode
from blocks.ledger import LedgerDatabase
from blocks.shim import SyncShim

__all__ = ["ArweaveGateway", "Bundler", "KwilNode", "LedgerDatabase", "SyncShim"]
