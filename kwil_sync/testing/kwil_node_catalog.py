"""What the stand-in tells about its tables: v0.9's `user.schema` tables and v0.10's
`info.columns` rows, read from SQLite's own table info.

Shapes: kwil-db v0.9.4 `core/types/schema.go` (`Table`, `Column`, `Attribute` of type
`PRIMARY_KEY`, an `Index` of type `PRIMARY` for a key of several columns) and v0.10.2
`node/engine/interpreter/schema.sql` (`info.columns`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["table_columns", "tables_v09"]

_SQL_TYPES_V09 = {"int8": "int", "bytea": "blob", "bool": "bool", "text": "text",
                  "uuid": "uuid", "numeric": "decimal"}

_KWIL_TYPES = {"integer": "int8", "int": "int8", "int8": "int8", "bigint": "int8", "text": "text",
               "blob": "bytea", "bytea": "bytea", "bool": "bool", "boolean": "bool",
               "uuid": "uuid", "numeric": "numeric"}


def table_columns(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every column of every table, as v0.10's `info.columns` lists them (types in
    kwild's v0.10 names; `is_primary_key` from SQLite's own table info)."""
    rows = []
    tables = [t for (t,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    for table in tables:
        for cid, name, declared, notnull, default, pk in conn.execute(
                f"PRAGMA table_info(\"{table}\")"):
            rows.append({"table_name": table, "name": name, "is_nullable": not notnull,
                         "data_type": _KWIL_TYPES.get(str(declared).lower(), str(declared)),
                         "default_value": default, "is_primary_key": pk > 0,
                         "primary_key_position": pk, "ordinal_position": cid + 1})
    return rows


def tables_v09(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """v0.9 `schema.tables`: columns with a PRIMARY_KEY attribute, or a PRIMARY index
    when the key has several columns (kwil-db v0.9.4 core/types/schema.go)."""
    tables: dict[str, dict[str, Any]] = {}
    keys: dict[str, list[tuple[int, str]]] = {}
    for column in table_columns(conn):
        table = tables.setdefault(column["table_name"], {
            "name": column["table_name"], "columns": [], "indexes": [], "foreign_keys": []})
        if column["primary_key_position"]:
            keys.setdefault(table["name"], []).append((column["primary_key_position"],
                                                       column["name"]))
        table["columns"].append({"name": column["name"], "attributes": [], "type": {
            "name": _SQL_TYPES_V09.get(column["data_type"], column["data_type"]),
            "is_array": False}})
    for name, key in keys.items():
        ordered = [c for _, c in sorted(key)]
        if len(ordered) == 1:
            column = next(c for c in tables[name]["columns"] if c["name"] == ordered[0])
            column["attributes"].append({"type": "PRIMARY_KEY", "value": ""})
        else:
            tables[name]["indexes"].append({"name": f"{name}_pkey", "columns": ordered,
                                            "type": "PRIMARY"})
    return list(tables.values())
