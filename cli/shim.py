"""`kwil-sync shim`: the shim's own flags plus `--kwil-node-block`, resolved here.

Loading a block is the Prefect layer's job: the shim takes the node's settings, so
`blocks/shim.py` can build shim clients without the shim importing blocks back.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import cast

from kwil_sync.shim.config import NodeSettings, ShimConfig, build_parser, config_from_args

__all__ = ["build_shim_parser", "node_settings", "shim_config"]


def build_shim_parser() -> argparse.ArgumentParser:
    """The shim's parser with `--kwil-node-block`."""
    parser = build_parser()
    parser.add_argument("--kwil-node-block", default=None, metavar="NAME",
                        help="KwilNode block supplying the node URL, version and provider key")
    return parser


def node_settings(block_name: str) -> NodeSettings:
    """The node URL, version and key a saved KwilNode block holds."""
    from kwil_sync.blocks.kwil import KwilNode

    node = cast(KwilNode, KwilNode.load(block_name))  # sync outside an event loop
    return NodeSettings(node.rpc_url, node.version, node.private_key)


def shim_config(argv: Sequence[str] | None) -> tuple[ShimConfig, str]:
    """Parse `kwil-sync shim` arguments into a config and the log level."""
    args = build_shim_parser().parse_args(argv)
    node = node_settings(args.kwil_node_block) if args.kwil_node_block else None
    return config_from_args(args, node), args.log_level
