"""The shim's configuration: from command-line flags, a key file, or node settings the
command line read from a KwilNode block (`kwil-sync shim --kwil-node-block`; the shim
itself never loads Prefect blocks, so blocks can build shim clients without a cycle).

The provider key is held as a `SecretStr`: it never appears in a repr, a log line or
`--help`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from kwil_sync.defaults import BUNDLER_BLOCK, RESTORE_DEPLOYMENT, UPLOAD_DEPLOYMENT

__all__ = ["KEY_ENV", "NodeSettings", "ShimConfig", "build_parser", "config_from_args",
           "default_outbox_path"]

KEY_ENV = "KWIL_SYNC_PROVIDER_KEY"
KwilVersion = Literal["auto", "v0.9", "v0.10"]


def default_outbox_path() -> Path:
    """`<kwil-sync state folder>/outbox.sqlite` (PREFECT_INTEGRATIONS_KWIL_SYNC_STATE_DIR)."""
    state = os.environ.get("PREFECT_INTEGRATIONS_KWIL_SYNC_STATE_DIR")
    return Path(state or Path.home() / ".kwil-sync") / "outbox.sqlite"


class ShimConfig(BaseModel):
    """Everything `run_shim` needs; see `build_parser` for what each field means."""

    host: str = "127.0.0.1"
    port: int = 50051
    advertise_address: str = ""
    outbox_path: Path = Field(default_factory=default_outbox_path)
    kwil_url: str = "http://127.0.0.1:8484"
    kwil_version: KwilVersion = "auto"
    provider_key: SecretStr
    answer_with: Literal["url", "action-id"] = "url"
    submit: bool = True
    upload_deployment: str = UPLOAD_DEPLOYMENT
    restore_deployment: str = RESTORE_DEPLOYMENT
    bundler_block: str = BUNDLER_BLOCK
    restore_parameters: dict[str, str] = Field(default_factory=dict)
    batch_size: int = 100
    batch_interval_ms: int = 2000
    workers: int = 16
    confirm_timeout_s: float = 600.0

    @property
    def address(self) -> str:
        """Where upload flows reach this shim."""
        return self.advertise_address or f"{self.host}:{self.port}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kwil-sync shim",
        description="Serve the db_sync Kwil extension, the 2023 DbSyncService and the "
                    "kwil_sync.SyncShim API on one gRPC port; store each save_action as a "
                    "signed record in a durable outbox and submit upload flow runs. The "
                    "tied form, save_action_tx(@txid, @height, ...), waits until kwild "
                    "reports its transaction committed before it becomes a record.")
    p.add_argument("--host", default="127.0.0.1", metavar="HOST",
                   help="interface to listen on; kwild must reach it, keep it private "
                        "(default: %(default)s)")
    p.add_argument("--port", type=int, default=50051, metavar="PORT",
                   help="gRPC port; point kwild at it with --app.extension-endpoints=HOST:PORT "
                        "(default: %(default)s)")
    p.add_argument("--advertise", dest="advertise_address", default="", metavar="HOST:PORT",
                   help="address upload flow runs dial to reach this shim (default: HOST:PORT)")
    p.add_argument("--outbox", dest="outbox_path", type=Path, default=default_outbox_path(),
                   metavar="PATH",
                   help="SQLite file holding records until they are uploaded "
                        "(default: %(default)s)")
    p.add_argument("--kwil-url", default=None, metavar="URL",
                   help="kwild JSON-RPC URL to read action parameters and confirm tied "
                        "calls' transactions from (default: the block's, else "
                        "http://127.0.0.1:8484)")
    p.add_argument("--kwil-version", choices=("auto", "v0.9", "v0.10"), default=None,
                   help="kwild line (default: the block's, else auto-detect)")
    p.add_argument("--key-file", type=Path, default=None, metavar="PATH",
                   help=f"file holding the provider's secp256k1 key as hex (default: the "
                        f"block's key, else ${KEY_ENV})")
    p.add_argument("--answer", dest="answer_with", choices=("url", "action-id"), default="url",
                   help="what save_action returns: url = https://arweave.net/<item id> as in "
                        "2023; action-id = the Action-Id, the same on every validator "
                        "(default: %(default)s)")
    p.add_argument("--no-submit", dest="submit", action="store_false",
                   help="do not submit Prefect flow runs (run the upload flow yourself)")
    p.add_argument("--upload-deployment", default=UPLOAD_DEPLOYMENT,
                   metavar="FLOW/DEPLOYMENT",
                   help="deployment that uploads the outbox (default: %(default)s)")
    p.add_argument("--restore-deployment", default=RESTORE_DEPLOYMENT,
                   metavar="FLOW/DEPLOYMENT",
                   help="deployment started for each database kwild initializes "
                        "(default: %(default)s)")
    p.add_argument("--restore-parameter", action="append", default=[], metavar="KEY=VALUE",
                   help="extra parameter for restore runs, e.g. node=kwil-sync-target; "
                        "repeatable")
    p.add_argument("--bundler-block", default=BUNDLER_BLOCK, metavar="NAME",
                   help="Bundler block name passed to upload runs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=100, metavar="N",
                   help="submit an upload run once N new records are stored "
                        "(default: %(default)s)")
    p.add_argument("--batch-interval-ms", type=int, default=2000, metavar="MS",
                   help="otherwise submit every MS milliseconds while records are pending "
                        "(default: %(default)s)")
    p.add_argument("--confirm-timeout", dest="confirm_timeout_s", type=float, default=600.0,
                   metavar="S", help="report a tied call unconfirmed when the node still does "
                   "not know its transaction after S seconds (it is never uploaded "
                   "before the node reports code 0; default 600)")
    p.add_argument("--workers", type=int, default=16, metavar="N",
                   help="gRPC worker threads (default: %(default)s)")
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="log level (default: %(default)s); the key is never logged")
    return p


@dataclass(frozen=True)
class NodeSettings:
    """The node the shim serves, as a saved KwilNode block describes it."""

    rpc_url: str
    version: KwilVersion
    private_key: SecretStr


def config_from_args(args: argparse.Namespace, node: NodeSettings | None = None) -> ShimConfig:
    """Build a config from parsed flags; explicit flags win over `node`'s values.

    Raises:
        ValueError: If no provider key is given, or a --restore-parameter lacks `=`.
    """
    url, key = "http://127.0.0.1:8484", ""
    version: KwilVersion = "auto"
    if node is not None:
        url, version, key = node.rpc_url, node.version, node.private_key.get_secret_value()
    if args.key_file:
        key = args.key_file.read_text().strip()
    key = key or os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise ValueError(f"no provider key: pass --key-file or --kwil-node-block, or set "
                         f"{KEY_ENV}")
    extra: dict[str, str] = {}
    for pair in args.restore_parameter:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--restore-parameter takes KEY=VALUE, got {pair!r}")
        extra[name] = value
    return ShimConfig(
        host=args.host, port=args.port, advertise_address=args.advertise_address,
        outbox_path=args.outbox_path, kwil_url=args.kwil_url or url,
        kwil_version=args.kwil_version or version, provider_key=SecretStr(key),
        answer_with=args.answer_with, submit=args.submit,
        upload_deployment=args.upload_deployment, restore_deployment=args.restore_deployment,
        bundler_block=args.bundler_block, restore_parameters=extra,
        batch_size=args.batch_size, batch_interval_ms=args.batch_interval_ms,
        workers=args.workers, confirm_timeout_s=args.confirm_timeout_s)


def parse_config(argv: Sequence[str] | None = None) -> tuple[ShimConfig, str]:
    """Parse flags into a config and the log level."""
    args = build_parser().parse_args(argv)
    return config_from_args(args), args.log_level
