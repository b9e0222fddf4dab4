"""Bad input for replica verification: each case gets a clear report, never a crash and
never a false "verified". Also: the stand-in's query RPC answers one SELECT only."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kwil_sync.replica import QueryNode, verify_replica
from kwil_sync.testing.kwil_node import KwilNodeStandIn, Schema
from kwil_sync.testing.kwil_node_reads import reads_of

OWNER = "0x" + "cd" * 20


class Nodes:
    def __init__(self, version: str) -> None:
        self.version = version
        self.nodes = [KwilNodeStandIn.start(version=version, block_interval=0)
                      for _ in range(2)]
        self.targets: list[str] = []

    def deploy(self, source_tables: list[str], replica_tables: list[str]) -> None:
        self.targets = [n.deploy(OWNER, "shop", Schema(t)) for n, t in
                        zip(self.nodes, (source_tables, replica_tables), strict=True)]

    def write(self, side: int, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        conn = self.nodes[side].chain.databases[self.targets[side]].conn
        conn.executemany(sql, rows) if rows is not None else conn.execute(sql)

    def query_nodes(self) -> tuple[QueryNode, QueryNode]:
        source, replica = (QueryNode(n.url, t) for n, t in zip(self.nodes, self.targets,
                                                                 strict=True))
        return source, replica


@pytest.fixture(params=["v0.9", "v0.10"])
def nodes(request: pytest.FixtureRequest) -> Iterator[Nodes]:
    made = Nodes(request.param)
    yield made
    for node in made.nodes:
        node.stop()


def test_a_table_without_primary_key_is_compared_whole_and_never_falsely_equal(
        nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE log (at INT, line TEXT)"],
                 ["CREATE TABLE log (at INT, line TEXT)"])
    rows = [(i, f"line {i}") for i in range(300)]
    nodes.write(0, "INSERT INTO log VALUES (?, ?)", rows)
    nodes.write(1, "INSERT INTO log VALUES (?, ?)", list(reversed(rows)))  # other order
    report = verify_replica(*nodes.query_nodes())
    assert report.status == "verified" and "no primary key" in report.tables[0].note

    nodes.write(1, "UPDATE log SET line = 'changed' WHERE at = 150")
    report = verify_replica(*nodes.query_nodes())
    log = report.tables[0]
    assert report.status == "drift" and log.status == "differs"
    assert log.totals == {"missing": -1, "extra": -1, "different": -1}
    assert "cannot be named" in log.note


@pytest.mark.parametrize(("replica_ddl", "words"), [
    ("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price INT, extra TEXT)",
     "columns only on the replica: extra"),
    ("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price TEXT)",
     "column price is int8 on the source, text on the replica"),
    ("CREATE TABLE items (id INT, name TEXT PRIMARY KEY, price INT)",
     "primary key (id) on the source, (name) on the replica"),
])
def test_unequal_schemas_are_drift_with_the_difference_named(nodes: Nodes, replica_ddl: str,
                                                             words: str) -> None:
    nodes.deploy(["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price INT)"],
                 [replica_ddl])
    report = verify_replica(*nodes.query_nodes())
    assert report.status == "drift"
    assert report.tables[0].status == "schema_differs" and words in report.tables[0].note


def test_a_table_on_one_side_only_is_drift(nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE a (id INTEGER PRIMARY KEY)", "CREATE TABLE b (id INT PRIMARY KEY)"],
                 ["CREATE TABLE a (id INTEGER PRIMARY KEY)", "CREATE TABLE c (id INT PRIMARY KEY)"])
    report = verify_replica(*nodes.query_nodes())
    assert report.status == "drift"
    assert {t.table: t.status for t in report.tables} == {
        "a": "equal", "b": "only_on_source", "c": "only_on_replica"}


def test_a_node_that_refuses_the_query_rpc_leaves_it_unverified(nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE a (id INTEGER PRIMARY KEY)"],
                 ["CREATE TABLE a (id INTEGER PRIMARY KEY)"])
    reads_of(nodes.nodes[1].service).refuse_queries = True  # private mode
    report = verify_replica(*nodes.query_nodes())
    assert report.status == "unverified"  # v0.9 lists tables through user.schema first
    assert not report.tables or report.tables[0].status == "error"
    text = json.dumps(report.to_dict())
    assert "-1007" in text and "private mode" in text


def test_a_node_that_is_down_leaves_it_unverified(nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE a (id INTEGER PRIMARY KEY)"],
                 ["CREATE TABLE a (id INTEGER PRIMARY KEY)"])
    nodes.nodes[0].go_down()
    report = verify_replica(*nodes.query_nodes())
    assert report.status == "unverified" and "no answer from" in report.notes[0]


def test_an_unknown_database_is_not_verified_equal(nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE a (id INTEGER PRIMARY KEY)"],
                 ["CREATE TABLE a (id INTEGER PRIMARY KEY)"])
    source, _ = nodes.query_nodes()
    wrong = QueryNode(nodes.nodes[1].url, "nosuchdb" if nodes.version == "v0.10"
                      else "x" + "0" * 56)
    report = verify_replica(source, wrong)
    assert report.status != "verified"


def test_huge_text_values_are_hashed_by_the_node_and_a_one_byte_change_found(
        nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)"],
                 ["CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)"])
    huge = "x" * 4_000_000
    for side in (0, 1):
        nodes.write(side, "INSERT INTO docs VALUES (?, ?)",
                    [(i, huge if i in (3, 4) else f"doc {i}") for i in range(10)])
    nodes.write(1, "UPDATE docs SET body = ? WHERE id = 4", [(huge[:-1] + "y",)])
    source, replica = nodes.query_nodes()
    report = verify_replica(source, replica)
    assert report.tables[0].different == [[4]] and report.status == "drift"


def _query(node: KwilNodeStandIn, target: str, sql: str) -> dict[str, Any]:
    params: dict[str, Any] = {"query": sql}
    if node.version == "v0.9":
        params["dbid"] = target
    answer = httpx.post(f"{node.url}/rpc/v1", json={"jsonrpc": "2.0", "id": 1,
                                                    "method": "user.query", "params": params})
    return dict(answer.json())


@pytest.mark.parametrize("statement", [
    "DELETE FROM t", "UPDATE t SET v = 'x'", "INSERT INTO t VALUES (9, 'x')", "DROP TABLE t",
    "SELECT 1; DELETE FROM t", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "PRAGMA writable_schema = 1",
])
def test_the_stand_in_answers_select_only_as_kwild_does(nodes: Nodes, statement: str) -> None:
    nodes.deploy(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"],
                 ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    nodes.write(0, "INSERT INTO t VALUES (1, 'kept')")
    node, target = nodes.nodes[0], nodes.targets[0]
    prefix = "" if nodes.version == "v0.9" else f"{target}."
    answer = _query(node, target, statement.replace(" t", f" {prefix}t"))
    assert answer["error"]["code"] == -300
    if statement.split()[0] in ("DELETE", "UPDATE", "INSERT"):
        expected = ("cannot execute a mutative query in a read-only transaction"
                    if nodes.version == "v0.9" else
                    "connection is read-only and cannot mutate state")
        assert answer["error"]["message"].startswith(expected)
    assert node.rows(target, "SELECT id, v FROM t") == [{"id": 1, "v": "kept"}]
    ok = _query(node, target, f"SELECT id, v FROM {prefix}t")
    if nodes.version == "v0.9":
        assert json.loads(base64.b64decode(ok["result"]["result"])) == [{"id": 1, "v": "kept"}]
    else:
        assert ok["result"]["values"] == [[1, "kept"]]


def test_the_v09_stand_in_refuses_several_columns_in_one_aggregate_as_kwild_does(
        nodes: Nodes) -> None:
    nodes.deploy(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"],
                 ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    node, target = nodes.nodes[0], nodes.targets[0]
    prefix = "" if nodes.version == "v0.9" else f"{target}."
    answer = _query(node, target, f"SELECT array_agg(format('%L,%L', id, v)) AS a "
                                  f"FROM {prefix}t")
    if nodes.version == "v0.9":  # v0.9.4 parse/analyze.go; the comparator uses a subquery
        assert answer["error"] == {"code": -300, "message": "cannot use multiple columns in "
                                                           "aggregate function args"}
    else:
        assert "result" in answer
