"""The options of `kwil-sync verify`, without importing Prefect (`kwil-sync --help` stays
fast); the runner is `flows.verify.run_verify_command`."""

from __future__ import annotations

import argparse

from kwil_sync.defaults import GATEWAY_BLOCK

__all__ = ["add_verify_arguments"]


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `kwil-sync verify`."""
    parser.add_argument("database", metavar="DBID_OR_NAMESPACE",
                        help="the database's Original-DBID (the log's key) or namespace")
    parser.add_argument("--source", required=True, metavar="NODE:TARGET",
                        help="KwilNode block and dbid or namespace of the copy of record")
    parser.add_argument("--replica", required=True, metavar="NODE:TARGET",
                        help="KwilNode block and dbid or namespace of the copy to check")
    parser.add_argument("--table", dest="tables", action="append", default=[], metavar="T",
                        help="compare only this table (repeatable; default: all)")
    parser.add_argument("--gateway", default=GATEWAY_BLOCK,
                        help="ArweaveGateway block to read the source's last published record")
    parser.add_argument("--no-log-point", action="store_true",
                        help="compare the nodes as they stand, without a log position")
    parser.add_argument("--ledger-block", metavar="NAME", default=None,
                        help="LedgerDatabase block of the replica's ledger")
    parser.add_argument("--ledger", metavar="URL_OR_PATH", default=None,
                        help="the replica's ledger, postgresql://... or a path (default: as "
                             "restore and follow pick it)")
    parser.add_argument("--catch-up-seconds", type=float, default=60.0,
                        help="how long to wait for the replica to reach the point")
    parser.add_argument("--settle-seconds", type=float, default=5.0,
                        help="pause before checking that the point held still")
    parser.add_argument("--cap", type=int, default=100, help="keys kept per kind and table")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
