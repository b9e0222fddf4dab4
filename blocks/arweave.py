"""Blocks for the Arweave side: where the log is read from and where records are uploaded."""

from __future__ import annotations

import json
from typing import Literal, cast

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from kwil_sync.arweave.data import GatewayDataClient
from kwil_sync.arweave.graphql import GraphQLPager
from kwil_sync.arweave.graphql_queries import Dialect
from kwil_sync.arweave.signers import ArweaveSigner
from kwil_sync.arweave.uploaders import DirectL1Uploader, IrysUploader, TurboUploader, Uploader
from kwil_sync.blocks.links import DOCS_URL, LOGO_URL
from kwil_sync.merged_source import MergedSource, NamedSource
from kwil_sync.proofs import ByteProver
from kwil_sync.sources import GraphQLSource, RecordSource


class ArweaveGateway(Block):
    """Where kwil-sync reads the log: a GraphQL index and a data gateway.

    Use the Irys dialect against a bundler's GraphQL (records are visible as soon as
    they are uploaded, with millisecond timestamps) or the gateway dialect against
    arweave.net, ar.io, Goldsky or arlocal (records appear once their bundle is mined).
    Name more indexes in `extra_indexes` to read them together (docs/INDEXES.md): one
    that is down does not stop a run, and what one lacks is reported.

    Args:
        graphql_url: The GraphQL endpoint.
        dialect: Which GraphQL dialect the endpoint speaks.
        data_url: The gateway that serves documents at /<id>.
        max_document_bytes: Documents larger than this are quarantined unread.
        concurrency: How many documents are fetched at once.
        extra_indexes: More GraphQL indexes of the same log, each "<dialect> <url>".
        byte_proofs: Prove records the index cannot from their raw data items.
        proof_graphql_url: The gateway GraphQL that locates items' bundles.

    Examples:
        Load a saved gateway and page the log of a database:
        ```python
        from kwil_sync.blocks.arweave import ArweaveGateway
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
    extra_indexes: list[str] = Field(
        default_factory=list,
        description="More GraphQL indexes of the same log, read together with graphql_url, "
                    "each as '<dialect> <url>', e.g. 'irys https://uploader.irys.xyz/graphql'.",
    )
    byte_proofs: bool = Field(
        default=True,
        description="Prove 2023 records the index cannot (no anchor, owner key or signature) "
                    "from their raw data item, Range-read from data_url.",
    )
    proof_graphql_url: str | None = Field(
        default=None,
        description="The gateway GraphQL that locates items' bundles for byte proofs; "
                    "default: the first gateway-dialect index.",
    )

    @field_validator("extra_indexes")
    @classmethod
    def _check_indexes(cls, value: list[str]) -> list[str]:
        for entry in value:
            parts = entry.split()
            if len(parts) != 2 or parts[0] not in ("gateway", "irys"):
                raise ValueError(f"extra index {entry!r} must be '<gateway|irys> <url>'")
        return value

    def indexes(self) -> list[tuple[Dialect, str]]:
        """Every index of the log: (dialect, GraphQL URL), graphql_url first."""
        more = [(cast(Dialect, d), url) for d, url in (e.split() for e in self.extra_indexes)]
        return [(self.dialect, self.graphql_url), *more]

    def get_pager(self) -> GraphQLPager:
        """A GraphQL pager for this endpoint and dialect."""
        return GraphQLPager(self.graphql_url, self.dialect)

    def get_source(self, original_dbid: str) -> RecordSource:
        """The records of `original_dbid`: one index, or all of them merged."""
        sources = [NamedSource(url, GraphQLSource(GraphQLPager(url, dialect), original_dbid))
                   for dialect, url in self.indexes()]
        return sources[0].source if len(sources) == 1 else MergedSource(sources)

    def get_prover(self) -> ByteProver | None:
        """Proofs from raw data items, or None when off or no gateway index is named."""
        url = self.proof_graphql_url or next(
            (u for d, u in self.indexes() if d == "gateway"), None)
        if not self.byte_proofs or url is None:
            return None
        return ByteProver(url, self.data_url, concurrency=max(1, self.concurrency // 2))

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
        from kwil_sync.blocks.arweave import Bundler
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
