"""A block for the exactly-once ledger's database: where every worker records what it applied."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from kwil_sync.blocks.links import LOGO_URL, docs_url
from kwil_sync.ledger import Ledger, open_ledger
from kwil_sync.ledger_store import redact_url

DOCS_URL = docs_url("scaling-out")


class LedgerDatabase(Block):
    """The database of kwil-sync's exactly-once ledger, shared by every worker.

    Restore, follow and backfill runs record in it, before each broadcast, what they
    are about to apply, and after it, what the node did. Runs on container work pools
    (Docker, Kubernetes, ECS) start on an empty filesystem, and runs on a process pool
    may land on any worker: with a PostgreSQL URL here they all share one ledger, so
    every action is applied exactly once wherever Prefect puts the run. A
    `sqlite:///path` URL suits runs that always land on one machine.

    Args:
        url: `postgresql://user:password@host:port/database` or `sqlite:///path`.

    Examples:
        Load the saved ledger and show what it holds for each target:
        ```python
        from kwil_sync.blocks.ledger import LedgerDatabase
        ledger_database = LedgerDatabase.load("BLOCK_NAME")
        with ledger_database.open() as ledger:
            for target in ledger.targets():
                print(target, ledger.counts(target))
        ```
    """

    _block_type_name = "Kwil Sync Ledger"
    _block_type_slug = "kwil-sync-ledger"
    _description = ("The exactly-once ledger's database (PostgreSQL shared by every worker, "
                    "or SQLite on one machine).")
    _documentation_url = DOCS_URL
    _logo_url = LOGO_URL

    url: SecretStr = Field(
        default=...,
        description=("postgresql://user:password@host:port/database (shared by every worker) "
                     "or sqlite:///path/to/ledger.sqlite (one machine only)."),
    )

    def open(self) -> Ledger:
        """Open the ledger (creating its tables on first use); close it when done."""
        return open_ledger(self.url.get_secret_value())

    def display_url(self) -> str:
        """The URL without its password, for logs and reports."""
        return redact_url(self.url.get_secret_value())
