"""Replica verification: compare a database's tables on two nodes through kwild's
read-only query RPC, by primary-key ranges digested in SQL, at one log position.

See docs/VERIFY.md. Entry point: `verify_replica(QueryNode(...), QueryNode(...))`.
"""

from kwil_sync.replica.compare import KeyDiff, RangeComparator
from kwil_sync.replica.node import Column, QueryNode, QueryRefused, TableSchema
from kwil_sync.replica.point import LogPoint, published_point, wait_until_covered
from kwil_sync.replica.tables import TableReport, compare_table, schema_problems
from kwil_sync.replica.verify import Settle, VerifyReport, verify_replica

__all__ = ["Column", "KeyDiff", "LogPoint", "QueryNode", "QueryRefused", "RangeComparator",
           "Settle", "TableReport", "TableSchema", "VerifyReport", "compare_table",
           "published_point", "schema_problems", "verify_replica", "wait_until_covered"]
