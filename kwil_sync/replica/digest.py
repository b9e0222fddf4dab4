"""The SQL the comparator sends: a digest per primary-key range, computed by the node.

Every query is written in Kwil's SQL dialect, which kwild v0.9 and v0.10 both accept
and turn into PostgreSQL; it uses only functions both versions define (kwil-db v0.9.4
`parse/functions.go`, v0.10.2 `node/engine/functions.go`): `count`, `min`, `max`,
`format`, `array_agg`, `digest` (pgcrypto) and `encode`.

- A row's text is `format('%L,%L,...', c1, c2, ...)`: each value quoted as a literal
  (NULL bare), so distinct rows give distinct texts, whatever their values hold.
- A range's digest is `encode(digest(format('%s', array_agg(row)), 'sha256'), 'hex')`:
  kwild generates `array_agg(x ORDER BY x)`, so the digest is of the range's rows
  sorted by their text, the same on any node holding the same rows, whatever order
  its storage returns them in. With `count(*)`; the key's `min` and `max` are asked
  once per table (`stats_sql`), not per range.
- A leaf lists `key, encode(digest(row, 'sha256'), 'hex')`: a hash per row, never the
  values, so huge texts cost the node a hash and us 64 characters.

Values are written into the text as literals (v0.9's `user.query` takes no
parameters): integers as digits, text between single quotes with quotes doubled
(PostgreSQL's standard_conforming_strings, on by default and in kwild). Table and
column names are checked to be plain identifiers first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kwil_sync.errors import KwilSyncError
from kwil_sync.replica.node import TableSchema

__all__ = ["INT_TYPES", "KeyRange", "TEXT_TYPES", "UnsupportedTable", "digest_sql", "literal",
           "row_hashes_sql", "split_point_sql", "stats_sql"]

INT_TYPES = frozenset({"int", "int8", "int4", "int2", "integer", "bigint"})
TEXT_TYPES = frozenset({"text", "varchar"})
ROW_HASH = "kwil_sync_row_hash"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class UnsupportedTable(KwilSyncError, ValueError):
    """The table cannot be compared by key ranges (the reason says why)."""


@dataclass(frozen=True)
class KeyRange:
    """Rows whose first key column is in [lo, hi); None leaves that end open."""

    lo: Any = None
    hi: Any = None

    def where(self, column: str) -> str:
        terms = ([f"{column} >= {literal(self.lo)}"] if self.lo is not None else []) + \
                ([f"{column} < {literal(self.hi)}"] if self.hi is not None else [])
        return f" WHERE {' AND '.join(terms)}" if terms else ""


def literal(value: Any) -> str:
    """A key value as a Kwil SQL literal (integers and text only)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UnsupportedTable(f"cannot write {type(value).__name__} key values as literals")
    if isinstance(value, int):
        return str(value)
    if "\x00" in value:
        raise UnsupportedTable("a text key holds a NUL character")
    return "'" + value.replace("'", "''") + "'"


def checked(schema: TableSchema) -> TableSchema:
    """The schema, once its names are plain identifiers (they are written into SQL)."""
    for name in (schema.name, *(c.name for c in schema.columns)):
        if not _IDENTIFIER.match(name):
            raise UnsupportedTable(f"the name {name!r} is not a plain identifier")
    return schema


def _row_text(schema: TableSchema) -> str:
    template = ",".join(["%L"] * len(schema.columns))
    return f"format('{template}', {', '.join(c.name for c in schema.columns)})"


def stats_sql(table_ref: str, key: str) -> str:
    """Row count and key bounds, no hashing: sizes the first ranges."""
    return f"SELECT count(*) AS n, min({key}) AS lo, max({key}) AS hi FROM {table_ref}"


def digest_sql(table_ref: str, schema: TableSchema, key_range: KeyRange) -> str:
    """Count and digest of one range (the whole table without a key).

    The row texts come from a subquery so that each aggregate reads one column: kwild
    v0.9 refuses "multiple columns in aggregate function args" (v0.9.4
    `parse/analyze.go`).
    """
    where = key_range.where(schema.key[0]) if schema.key else ""
    inner = f"SELECT {_row_text(schema)} AS r FROM {table_ref}{where}"
    return (f"SELECT count(*) AS n, encode(digest(format('%s', array_agg(r)), 'sha256'), "
            f"'hex') AS d FROM ({inner}) AS s")


def row_hashes_sql(table_ref: str, schema: TableSchema, key_range: KeyRange) -> str:
    """Each row's key and hash in one range, in key order."""
    keys = ", ".join(schema.key)
    return (f"SELECT {keys}, encode(digest({_row_text(schema)}, 'sha256'), 'hex') AS {ROW_HASH} "
            f"FROM {table_ref}{key_range.where(schema.key[0])} ORDER BY {keys}")


def split_point_sql(table_ref: str, key: str, key_range: KeyRange, offset: int) -> str:
    """The key value `offset` rows into a range (a boundary for text keys)."""
    return (f"SELECT {key} AS k FROM {table_ref}{key_range.where(key)} ORDER BY {key} "
            f"LIMIT 1 OFFSET {int(offset)}")


def int_splits(lo: int, hi: int, parts: int) -> list[int]:
    """Up to `parts - 1` increasing boundaries strictly inside [lo, hi]."""
    width = max(1, -(-(hi - lo + 1) // max(1, parts)))
    return list(range(lo + width, hi + 1, width))[:max(0, parts - 1)]


def hashes_of(rows: Sequence[dict[str, Any]], key: Sequence[str]) -> dict[tuple[Any, ...], str]:
    """Leaf rows as key tuple -> row hash."""
    return {tuple(r[k] for k in key): str(r[ROW_HASH]) for r in rows}
