"""Every kwil-sync block meets Prefect's block standards (the logo check needs Pillow)."""

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from prefect.utilities.dispatch import get_registry_for_type
from prefect.utilities.importtools import to_qualified_name

import blocks  # noqa: F401  (registers the blocks)


def find_module_blocks() -> list[type[Block]]:
    registry = get_registry_for_type(Block) or {}
    return [b for b in registry.values() if to_qualified_name(b).startswith("blocks.")]


def test_the_blocks_are_registered():
    names = {b.get_block_type_slug() for b in find_module_blocks()}
    assert {"kwil-node", "arweave-gateway", "arweave-bundler", "kwil-sync-shim"} <= names


@pytest.mark.parametrize("block", find_module_blocks())
class TestAllBlocksAdhereToStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block):
        return block
