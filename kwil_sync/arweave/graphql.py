"""Page through `transactions` on an Irys bundler or an Arweave gateway, pages ahead.

Built on gql over httpx. While the caller works on a page, the next ones are already
being requested, one after another (a worker thread keeps up to `pages_ahead` pages
waiting), so paging overlaps with
fetching and applying documents. Transient failures (5xx, 429, connection errors,
timeouts, non-GraphQL answers) are retried with exponential backoff; a GraphQL error
in the answer (a bad query) is not.

Irys fields chosen (from the Irys docs and the `@irys/query` package): arguments
`ids, owners, tags, first, after, order, timestamp{from,to}`; node fields `id address
timestamp signature tags{name value}`; `pageInfo{hasNextPage endCursor}`, with the last
edge's cursor used when `endCursor` is absent. Irys has no owner key, anchor or target.

Example:
    ```python
    pager = GraphQLPager("http://127.0.0.1:1984/graphql", "gateway")
    for page in pager.pages({"Application": ["KwilDb"]}, order="ASC"):
        for record in page.records:
            print(record.id, record.tag("Type"))
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

from gql import Client, gql
from gql.client import SyncClientSession
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXTransport

from kwil_sync.ahead import read_ahead
from kwil_sync.arweave.graphql_queries import (
    Dialect,
    Order,
    Page,
    TagFilter,
    TxRecord,
    build_query,
    parse_page,
)
from kwil_sync.errors import KwilSyncError
from kwil_sync.retry import RetryPolicy

__all__ = ["GraphQLError", "GraphQLPager", "Page", "TxRecord"]


class GraphQLError(KwilSyncError, RuntimeError):
    """A GraphQL page could not be read (after retries, or the query was refused)."""


def _is_transient(exc: Exception) -> bool:
    """5xx, 429, connection failures, timeouts and non-GraphQL answers; never a refused query."""
    if isinstance(exc, TransportQueryError):
        return False
    if isinstance(exc, TransportServerError):
        return exc.code is None or exc.code >= 500 or exc.code == 429
    return isinstance(exc, TransportConnectionFailed | TransportProtocolError | TimeoutError)


def _check_progress(previous: str | None, page: Page, url: str) -> bool:
    """True when another page should be requested after `page`."""
    if not page.has_next:
        return False
    if page.end_cursor is None or page.end_cursor == previous:
        raise GraphQLError(f"{url} says more pages follow but its cursor did not move; "
                           "stopping to avoid a loop")
    return True


class GraphQLPager:
    """Pages of `transactions`, the next ones requested ahead; see the module docstring.

    Args:
        url: The GraphQL endpoint, e.g. `https://uploader.irys.xyz/graphql`.
        dialect: "irys" or "gateway".
        page_size: Records per page (keep at most 100 for gateways).
        timeout: Seconds per HTTP request.
        retries: Tries per page before GraphQLError.
        backoff: First retry delay in seconds; doubles per try, capped at 8 s.
        size_argument: "first", or "limit" for older Irys nodes.
        http_options: Extra keyword arguments for the httpx client (headers, proxies...).
        pages_ahead: Pages requested ahead of the caller, one after another (a replay
            chunk is up to 10 pages, so it is ready when asked for).
    """

    def __init__(self, url: str, dialect: Dialect, *, page_size: int = 100,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 0.5,
                 size_argument: str = "first", http_options: dict[str, Any] | None = None,
                 pages_ahead: int = 10) -> None:
        if dialect not in ("irys", "gateway"):
            raise ValueError(f"dialect must be 'irys' or 'gateway', got {dialect!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be 1..1000 (gateways cap it at 100), got {page_size}")
        self.url = url
        self.dialect: Dialect = dialect
        self.page_size = page_size
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.retry = RetryPolicy(self.retries - 1, backoff, max_backoff=8.0, jitter=0.5,
                                 retryable=_is_transient)
        self.size_argument = size_argument
        self.http_options = dict(http_options or {})
        if pages_ahead < 1:
            raise ValueError(f"pages_ahead must be at least 1, got {pages_ahead}")
        self.pages_ahead = pages_ahead

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, {self.dialect!r})"

    def _query_for(self, filters: dict[str, Any]) -> Callable[[str | None], str]:
        def query(after: str | None) -> str:
            return build_query(self.dialect, page_size=self.page_size, after=after,
                               size_argument=self.size_argument, **filters)

        query(None)  # refuse bad filters before any request is made
        return query

    def _error(self, exc: Exception) -> GraphQLError:
        """The error to raise for what the last try raised (after the retries it earned)."""
        if isinstance(exc, TransportQueryError):
            return GraphQLError(f"{self.url} refused the query: {exc}; check the filters and "
                                f"that the URL serves the {self.dialect!r} dialect")
        if not _is_transient(exc):
            return GraphQLError(f"GraphQL request to {self.url} failed: {exc!r}")
        return GraphQLError(f"GraphQL request to {self.url} failed {self.retries} times, "
                            f"last: {exc}; check that the endpoint is up and reachable")

    def _parse(self, result: dict[str, Any]) -> Page:
        try:
            return parse_page(self.dialect, result)
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphQLError(f"{self.url} answered without a transactions connection: "
                               f"{exc!r}") from exc

    def _fetch(self, session: SyncClientSession, query: str) -> Page:
        request = gql(query)
        try:
            return self.retry.call(lambda: self._parse(session.execute(request)))
        except Exception as exc:
            raise self._error(exc) from exc

    def pages(self, tags: TagFilter | None = None, *, owners: Sequence[str] | None = None,
              ids: Sequence[str] | None = None, order: Order = "ASC",
              since_ms: int | None = None, until_ms: int | None = None,
              min_block: int | None = None, max_block: int | None = None,
              after: str | None = None) -> Generator[Page, None, None]:
        """Yield pages in order, the next one requested while this one is in use.

        Close the generator (or let it be collected) to stop early; the request in
        flight is awaited, nothing more is sent.

        Args:
            tags: Tag filters, `{name: [values]}` or `[(name, [values])]`; values are
                OR'd within a tag, tags are AND'd.
            owners: Signer addresses (0x on Irys, base64url on gateways).
            ids: Only these ids.
            order: "ASC" (oldest first) or "DESC".
            since_ms: Irys only: upload timestamp lower bound (ms, inclusive).
            until_ms: Irys only: upload timestamp upper bound (ms).
            min_block: Gateways only: lowest block height.
            max_block: Gateways only: highest block height.
            after: Resume after this cursor (a record's `cursor` or a page's `end_cursor`).

        Raises:
            GraphQLError: After the last try, or at once if the query is refused.
            ValueError: If a filter does not exist in this dialect.
        """
        query = self._query_for(dict(tags=tags, owners=owners, ids=ids, order=order,
                                     since_ms=since_ms, until_ms=until_ms,
                                     min_block=min_block, max_block=max_block))
        transport = HTTPXTransport(self.url, timeout=self.timeout, **self.http_options)
        client = Client(transport=transport, execute_timeout=None)
        with client as session:
            cursor: list[str | None] = [after]
            ended = [False]

            def next_page() -> Page | None:
                if ended[0]:
                    return None
                page = self._fetch(session, query(cursor[0]))
                ended[0] = not _check_progress(cursor[0], page, self.url)
                cursor[0] = page.end_cursor
                return page

            with read_ahead(next_page, depth=self.pages_ahead, name="graphql-ahead") as pages:
                yield from pages

    def records(self, tags: TagFilter | None = None, **filters: Any) -> Iterator[TxRecord]:
        """Every matching record, page after page (same filters as `pages`)."""
        for page in self.pages(tags, **filters):
            yield from page.records
