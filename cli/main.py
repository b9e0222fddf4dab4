"""The `kwil-sync` command: its parser and dispatch.

Each command imports what it runs (flows, the Prefect client, the shim) when it is
called, so `kwil-sync --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from kwil_sync.defaults import GATEWAY_BLOCK, NODE_BLOCK
from kwil_sync.replica.arguments import add_verify_arguments

__all__ = ["main"]


def _restore_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("original_dbid",
                   help="the database's dbid on its first provider (its Original-DBID tag)")
    p.add_argument("--target", required=True,
                   help="dbid (kwild v0.9) or namespace (v0.10) to apply the log to")
    p.add_argument("--node", default=NODE_BLOCK,
                   help="name of the KwilNode block of the target provider")
    p.add_argument("--gateway", default=GATEWAY_BLOCK,
                   help="name of the ArweaveGateway block to read the log from")
    p.add_argument("--trust", action="append", default=[], metavar="ADDRESS",
                   help="also apply records signed by this provider address (repeatable); "
                        "the original provider is always trusted")
    p.add_argument("--deployment", action="store_true",
                   help="submit a run of the deployment (served or on a work pool) and wait "
                        "for it, instead of running the flow in this process")
    p.add_argument("--allow-unverified-legacy", action="store_true",
                   help="apply 2023 records whose item signature the index cannot prove")
    _ledger_args(p)
    p.add_argument("--new-ledger", action="store_true",
                   help="apply even though the ledger holds nothing for a target the Prefect "
                        "server shows was applied to before (otherwise refused)")


def _ledger_args(p: argparse.ArgumentParser, *, where: str = "the ledger") -> None:
    p.add_argument("--ledger-block", metavar="NAME",
                   help=f"name of the LedgerDatabase block holding {where}'s URL")
    p.add_argument("--ledger", metavar="URL_OR_PATH",
                   help=f"{where}: postgresql://... or sqlite:///path or a file path "
                        "(default: PREFECT_INTEGRATIONS_KWIL_SYNC_LEDGER_URL, else the state "
                        "folder's ledger.sqlite); prefer --ledger-block for URLs with a password")


def _ledger_commands(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="ledger_command", required=True)
    q = sub.add_parser("export", help="write every ledger row to a JSON lines file")
    _ledger_args(q)
    q.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    q = sub.add_parser("import", help="load an export into a ledger holding none of its "
                                      "targets (all or nothing, counts checked)")
    q.add_argument("file", help="the export file ('-' for stdin)")
    _ledger_args(q)
    q = sub.add_parser("migrate", help="copy one ledger into another (e.g. SQLite into the "
                                       "shared PostgreSQL), counts checked")
    q.add_argument("--from", dest="source", required=True, metavar="URL_OR_PATH",
                   help="the ledger to copy (a worker's ledger.sqlite, say)")
    _ledger_args(q, where="the destination")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kwil-sync",
        description="Keep Kwil databases safe and in step through a signed log on Arweave.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("shim", add_help=False,
                   help="run the gRPC shim beside kwild (kwil-sync shim --help for options)")

    p = sub.add_parser("restore", help="replay a database's log onto a provider")
    _restore_args(p)
    p.add_argument("--until", help="stop at this timestamp (ms since epoch), kwild block "
                   "height (height:N) or action id")
    p.add_argument("--dry-run", action="store_true",
                   help="plan only: count records, bytes, signers, schema gaps; apply nothing")

    p = sub.add_parser("follow", help="one poll of the log onto a provider (schedule it)")
    _restore_args(p)

    p = sub.add_parser("backfill", help="restore onto several providers as parallel flow runs")
    p.add_argument("original_dbid", help="the database's Original-DBID")
    p.add_argument("--target", dest="targets", action="append", required=True,
                   metavar="NODE_BLOCK:TARGET",
                   help="a KwilNode block name and the dbid or namespace on it (repeatable)")
    p.add_argument("--gateway", default=GATEWAY_BLOCK, help="ArweaveGateway block name")
    p.add_argument("--trust", action="append", default=[], metavar="ADDRESS",
                   help="also trust this provider address (repeatable)")
    p.add_argument("--ledger-block", metavar="NAME",
                   help="LedgerDatabase block every restore run records in (shared by workers)")
    p.add_argument("--new-ledger", action="store_true", help="passed to each restore run")

    p = sub.add_parser("status", help="cursor, lag, ledger counts and outbox depth per database")
    _ledger_args(p)
    p.add_argument("--shim", default=None, help="shim address host:port to ask for outbox depth")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    add_verify_arguments(sub.add_parser(
        "verify", help="prove a replica equals its source at one log position, or name the "
                       "rows that differ (exit 0 equal, 1 differ, 2 unverified)"))

    _ledger_commands(sub.add_parser("ledger", help="export, import or migrate the ledger"))

    p = sub.add_parser("automations", help="create the follow-stalled and quarantine "
                                           "automations on the Prefect server")
    p.add_argument("action", choices=["create"])
    p.add_argument("--stall-minutes", type=float, default=10.0,
                   help="alert when a followed pair has no poll for this long")
    p.add_argument("--notify", metavar="TYPE/NAME",
                   help="notification block to send through, e.g. slack-webhook/alerts")

    p = sub.add_parser("demo", help="the whole round trip on this machine, on 127.0.0.1")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    p.add_argument("--keep", action="store_true", help="leave the services running at the end")
    p.add_argument("--actions", type=int, default=300, help="actions to write on provider A")
    p.add_argument("--follow-actions", type=int, default=50,
                   help="actions written after the restore, for the follow run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Prefect's server telemetry phones home; nothing here may leave the machine unasked.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if argv[:1] == ["shim"]:
        from kwil_sync.cli.shim import shim_config
        from kwil_sync.shim.__main__ import main as shim_main

        return int(shim_main(argv[1:], parse=shim_config) or 0)
    args = build_parser().parse_args(argv)
    if args.command in ("restore", "follow", "backfill"):
        from kwil_sync.cli.runs import run_flow_command

        result = run_flow_command(args)
        print(json.dumps(result, indent=2, default=str))
        return 0
    if args.command == "status":
        from kwil_sync.cli.status import print_status

        return print_status(ledger=args.ledger, ledger_block=args.ledger_block, shim=args.shim,
                            as_json=args.json)
    if args.command == "ledger":
        return _ledger_command(args)
    if args.command == "verify":
        from kwil_sync.flows.verify import run_verify_command

        return run_verify_command(args)
    if args.command == "automations":
        from kwil_sync.flows.automations import create_automations

        print(json.dumps(create_automations(stall_minutes=args.stall_minutes,
                                            notify_block=args.notify), indent=2))
        return 0
    if args.command == "demo":
        from kwil_sync.deployments.demo import run_demo

        return run_demo(actions=args.actions, follow_actions=args.follow_actions,
                        as_json=args.json, keep=args.keep)
    raise AssertionError(args.command)


def _ledger_command(args: argparse.Namespace) -> int:
    from kwil_sync.flows.ledger import ledger_location
    from kwil_sync.ledger import open_ledger
    from kwil_sync.ledger_transfer import export_ledger, import_ledger, migrate_ledger

    location = ledger_location(args.ledger_block, args.ledger)
    with open_ledger(location) as ledger:
        if args.ledger_command == "export":
            if args.output == "-":
                counts = export_ledger(ledger, sys.stdout)
            else:
                with open(args.output, "w", encoding="utf-8") as out:
                    counts = export_ledger(ledger, out)
        elif args.ledger_command == "import":
            if args.file == "-":
                counts = import_ledger(ledger, sys.stdin)
            else:
                with open(args.file, encoding="utf-8") as lines:
                    counts = import_ledger(ledger, lines)
        else:
            with open_ledger(args.source) as source:
                counts = migrate_ledger(source, ledger)
    print(json.dumps({args.ledger_command: counts, "ledger": ledger.path}),
          file=sys.stderr if args.ledger_command == "export" and args.output == "-"
          else sys.stdout)
    return 0

