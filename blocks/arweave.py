"""Blocks for the Arweave side: where the log is read from and where records are uploaded."""

from __future__ import annotations

import json
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.links import DOCS_URL, LOGO_URL
from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.uploaders import DirectL1Uploader, IrysUploader, TurboUploader, Uploader


class ArweaveGateway(Block):
    """Where kwil-sync reads the log: a GraphQL index and a data gateway.

    Use the Irys dialect against a bundler's GraphQL (records are visible as soon as
    they are uploaded, with millisecond timestamps) or the gateway dialect against
    arweave.net, ar.io, Goldsky or arlocal (records appear once their bundle is mined).

    Args:
        graphql_url: The GraphQL endpoint.
        dialect: Which GraphQL dialect the endpoint speaks.
        data_url: The gateway that serves documents at /<id>.
        max_document_bytes: Documents larger than this are quarantined unread.
        concurrency: How many documents are fetched at once.

    Examples:
        Load a saved gateway and page the log of a database:
        ```python
        from blocks.arweave import ArweaveGateway
        arweave_gateway = ArweaveGateway.load("BLOCK_NAME")
        pager = arweave_gateway.get_pager()
        for page in pager.pages(tags={"Application": ["KwilDb"]}):
            print(len(page.records))
        ```
    """

    _block_type_name = "Arweave Gateway"
    _block_type_slug = "arweave-gateway"
    _description = "Where kwil-sync reads the log: a GraphQL index and a data gateway."
    _documentation_url = DOCS_URL
    _logo_url = LOGO_URL

    graphql_url: str = Field(
        default="https://arweave-search.goldsky.com/graphql",
        description="The GraphQL endpoint that indexes the records by tag.",
    )
    dialect: Literal["gateway", "irys"] = Field(
        default="gateway",
        description="The GraphQL dialect: gateway (arweave.net, Goldsky, arlocal) or irys.",
    )
    data_url: str = Field(
        default="https://arweave.net",
        description="The gateway that serves each record's document at /<id>.",
    )
    max_document_bytes: int = Field(
        default=64 * 1024,
        description="Documents larger than this many bytes are quarantined, not read.",
    )
    concurrency: int = Field(
        default=16,
        description="How many documents are fetched at once over pooled connections.",
    )

    def get_pager(self) -> GraphQLPager:
        """A GraphQL pager for this endpoint and dialect."""
        return GraphQLPager(self.graphql_url, self.dialect)

    def get_data_client(self) -> GatewayDataClient:
        """A document client for the data gateway."""
        return GatewayDataClient(self.data_url, max_bytes=self.max_document_bytes,
                                 concurrency=self.concurrency)


class Bundler(Block):
    """Where kwil-sync uploads records: an Irys bundler, ArDrive Turbo, or a gateway directly.

    Records are data items already signed by the provider's key, so Irys and Turbo need
    no key here. Direct uploads bundle the items into an Arweave transaction paid for by
    an Arweave wallet.

    Args:
        kind: The kind of endpoint.
        url: The endpoint's base URL.
        token: The Irys payment token the items are posted under.
        arweave_jwk: The Arweave wallet (JWK JSON) that pays for direct uploads.

    Examples:
        Load a saved bundler and upload a data item:
        ```python
        from blocks.arweave import Bundler
        bundler = Bundler.load("BLOCK_NAME")
        receipts = bundler.get_uploader().upload([item])
        ```
    """

    _block_type_name = "Arweave Bundler"
    _block_type_slug = "arweave-bundler"
    _description = "Where kwil-sync uploads records: Irys, ArDrive Turbo or a gateway directly."
    _documentation_url = DOCS_URL
    _logo_url = LOGO_URL

    kind: Literal["irys", "turbo", "direct"] = Field(
        default="irys",
        description="The kind of endpoint: irys, turbo, or direct (an L1 bundle to a gateway).",
    )
    url: str = Field(
        default="https://uploader.irys.xyz",
        description="The endpoint's base URL (the gateway's for direct uploads).",
    )
    token: str = Field(
        default="ethereum",
        description="The Irys payment token items are posted under (POST /tx/<token>).",
    )
    arweave_jwk: SecretStr | None = Field(
        default=None,
        description="The Arweave wallet as JWK JSON that pays for direct uploads.",
    )

    def get_uploader(self) -> Uploader:
        """The uploader for this endpoint.

        Raises:
            ValueError: If a direct uploader has no wallet.
        """
        if self.kind == "irys":
            return IrysUploader(self.url, token=self.token)
        if self.kind == "turbo":
            return TurboUploader(self.url)
        if self.arweave_jwk is None:
            raise ValueError("a direct Bundler needs arweave_jwk: the wallet that pays for uploads")
        signer = ArweaveSigner(json.loads(self.arweave_jwk.get_secret_value()))
        return DirectL1Uploader(self.url, signer)
