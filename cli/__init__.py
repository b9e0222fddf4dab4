"""The `kwil-sync` command: the top of the Prefect layer (it runs flows, reads the Prefect
server, starts the shim). Installed as `kwil_sync.cli`; the core below it holds no entry
point that reaches up."""

from kwil_sync.cli.main import main

__all__ = ["main"]
