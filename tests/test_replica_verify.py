"""Replica verification against two real kwild stand-ins, both versions: equal copies are
verified, and every missing, extra and changed row is named by key, with costs that
follow the differences, not the table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kwil_sync.replica import QueryNode, verify_replica
from kwil_sync.testing.kwil_node import KwilNodeStandIn, Schema

OWNER = "0x" + "ab" * 20
TABLES = [
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT, score INT)",
    "CREATE TABLE tags (name TEXT PRIMARY KEY, note TEXT)",
    "CREATE TABLE votes (post INT, voter TEXT, weight INT, PRIMARY KEY (post, voter))",
]


class Pair:
    """The same database deployed on two nodes, filled behind kwil-sync's back."""

    def __init__(self, version: str) -> None:
        self.nodes = [KwilNodeStandIn.start(version=version, block_interval=0)
                      for _ in range(2)]
        self.targets = [n.deploy(OWNER, "forum", Schema(TABLES)) for n in self.nodes]

    def write(self, side: int, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        conn = self.nodes[side].chain.databases[self.targets[side]].conn
        if rows is None:
            conn.execute(sql)
        else:
            conn.executemany(sql, rows)

    def both(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.write(0, sql, rows)
        self.write(1, sql, rows)

    def query_nodes(self) -> tuple[QueryNode, QueryNode]:
        source, replica = (QueryNode(n.url, t) for n, t in zip(self.nodes, self.targets,
                                                                 strict=True))
        return source, replica

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(params=["v0.9", "v0.10"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    made = Pair(request.param)
    made.both("INSERT INTO posts VALUES (?, ?, ?)",
              [(i, f"post {i} with 'quotes', commas and \\ slashes", i % 11)
               for i in range(1, 5001)])
    made.both("INSERT INTO tags VALUES (?, ?)", [(f"tag-{i:04d}", None if i % 3 else "n")
                                                 for i in range(600)])
    made.both("INSERT INTO votes VALUES (?, ?, ?)", [(i % 50, f"0x{i:040x}", i % 3)
                                                     for i in range(900)])
    yield made
    made.stop()


def _table(report: Any, name: str) -> Any:
    return next(t for t in report.tables if t.table == name)


def test_equal_copies_are_verified(pair: Pair) -> None:
    report = verify_replica(*pair.query_nodes(), first_range_rows=1000)
    assert report.status == "verified", report.to_dict()
    assert [t.status for t in report.tables] == ["equal", "equal", "equal"]
    assert _table(report, "posts").rows_source == _table(report, "posts").rows_replica == 5000


def test_missing_extra_and_changed_rows_are_named_by_key(pair: Pair) -> None:
    pair.write(1, "DELETE FROM posts WHERE id = 1234")
    pair.write(1, "INSERT INTO posts VALUES (9999, 'only here', 0)")
    pair.write(1, "UPDATE posts SET score = NULL WHERE id = 4321")
    pair.write(1, "UPDATE tags SET note = 'n ' WHERE name = 'tag-0300'")  # one space more
    pair.write(1, "DELETE FROM tags WHERE name = 'tag-0000'")
    pair.write(1, "UPDATE votes SET weight = 7 WHERE post = 3 AND voter = ?",
               [(f"0x{103:040x}",)])
    report = verify_replica(*pair.query_nodes(), first_range_rows=1000, leaf_rows=16)
    assert report.status == "drift"
    posts, tags, votes = (_table(report, n) for n in ("posts", "tags", "votes"))
    assert (posts.missing, posts.extra, posts.different) == ([[1234]], [[9999]], [[4321]])
    assert (tags.missing, tags.extra, tags.different) == ([["tag-0000"]], [], [["tag-0300"]])
    assert votes.different == [[3, f"0x{103:040x}"]] and votes.totals["different"] == 1
    assert report.drift_keys == 6


def test_a_value_moved_between_two_rows_is_not_equal(pair: Pair) -> None:
    # Same multiset of bodies, different rows: a digest of values alone would call it equal.
    body = "post {} with 'quotes', commas and \\ slashes"
    pair.write(1, "UPDATE posts SET body = ? WHERE id = ?", [(body.format(11), 10),
                                                             (body.format(10), 11)])
    report = verify_replica(*pair.query_nodes())
    assert _table(report, "posts").different == [[10], [11]]


def test_queries_grow_with_differences_not_with_rows(pair: Pair) -> None:
    pair.write(1, "UPDATE posts SET body = 'x' WHERE id = 2500")
    source, replica = pair.query_nodes()
    report = verify_replica(source, replica, tables=["posts"], first_range_rows=5000,
                            fanout=16, leaf_rows=16)
    # 1 schema read and 1 stats query per node, then per level 16 digests per node.
    assert report.status == "drift" and _table(report, "posts").different == [[2500]]
    assert report.queries <= 2 * (2 + 1 + 3 * 16 + 1), report.queries
    assert report.queries < 5000 * 0.05


def test_many_differences_are_capped_but_counted_exactly(pair: Pair) -> None:
    pair.write(1, "UPDATE posts SET score = -1 WHERE id % 10 = 0")
    report = verify_replica(*pair.query_nodes(), tables=["posts"], cap=7)
    posts = _table(report, "posts")
    assert posts.totals == {"missing": 0, "extra": 0, "different": 500}
    assert posts.different == [[10 * i] for i in range(1, 8)]


def test_an_empty_replica_lists_every_row_missing(pair: Pair) -> None:
    pair.write(1, "DELETE FROM tags")
    report = verify_replica(*pair.query_nodes(), tables=["tags"], cap=3)
    tags = _table(report, "tags")
    assert tags.rows_replica == 0 and tags.totals["missing"] == 600
    assert tags.missing == [["tag-0000"], ["tag-0001"], ["tag-0002"]]


def test_a_composite_key_whose_first_column_never_changes_is_still_compared(
        pair: Pair) -> None:
    # One first-column value for 900 rows: no range can be cut, the whole table is a leaf.
    pair.write(0, "UPDATE votes SET post = 1")
    pair.write(1, "UPDATE votes SET post = 1")
    pair.write(1, "UPDATE votes SET weight = 9 WHERE voter = ?", [(f"0x{500:040x}",)])
    report = verify_replica(*pair.query_nodes(), tables=["votes"], first_range_rows=100,
                            leaf_rows=8)
    assert _table(report, "votes").different == [[1, f"0x{500:040x}"]]
