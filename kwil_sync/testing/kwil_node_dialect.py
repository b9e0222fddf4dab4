"""kwild's `user.query` rules and the few Kwil SQL functions replica verification uses,
for the stand-in's SQLite. THIS IS NOT KWILD'S SQL ENGINE.

kwild v0.9 and v0.10 parse a query in Kwil's SQL dialect, check it is read-only and run
the PostgreSQL they generate from it (kwil-db v0.9.4 `internal/engine/execution/global.go`
`Execute`, v0.10.2 `node/engine/interpreter/planner.go`). The stand-in runs SQLite, so
it accepts the same Kwil-dialect text and maps the functions that SQLite lacks:

- `format(fmt, a, b, ...)` with only `%L` and `%s` conversions: `format('%L,%L', a, b)`
  becomes `json_array(a, b)` (one C call, three times faster than concatenating,
  which matters for a million rows), and any other template, or the same when a
  value is a BLOB (JSON cannot hold one), `quote(a) || ...`. Both are injective like
  PostgreSQL's `quote_literal`, in other words: two stand-ins agree with each other,
  not with PostgreSQL, whose digests differ;
- `position(needle, haystack)` (Kwil's call form of PostgreSQL's `position(a in b)`)
  becomes `instr(haystack, needle)`;
- `array_agg(x)` is kwild's `array_agg(x ORDER BY x)` (v0.9.4 `parse/functions.go`,
  v0.10.2 `node/engine/functions.go`), rendered `{a,b}` as a text array prints;
- `digest(x, 'sha256' | 'sha1' | 'md5' | ...)` (pgcrypto) and `encode(b, 'hex' | 'base64')`.

Anything but one SELECT (or WITH ... SELECT) is refused, with kwild's words.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from kwil_sync.errors import KwilSyncError

__all__ = ["MUTATION_REFUSED", "QueryRefused", "install_functions", "read_only_sql"]

# kwild v0.9 (global.go) and v0.10 (engine/errors.go ErrCannotMutateState + planner.go).
MUTATION_REFUSED = {
    "v0.9": "cannot execute a mutative query in a read-only transaction",
    "v0.10": "connection is read-only and cannot mutate state: SQL statement mutates state, "
             "but the execution context is read-only: {sql}",
}
_MUTATING = re.compile(r"\b(insert|update|delete|upsert|create|drop|alter|grant|revoke|"
                       r"attach|detach|pragma|vacuum|reindex|replace)\b", re.I)
_AGGREGATE = re.compile(r"\b(count|sum|min|max|avg|array_agg)\s*\(", re.I)
_NAME = re.compile(r"\b([A-Za-z_][A-Za-z0-9_.]*)\b(?!\s*\()")
_KEYWORDS = {"distinct", "as", "and", "or", "not", "null", "case", "when", "then", "else",
             "end", "is", "in", "like", "true", "false"}
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


class QueryRefused(KwilSyncError):
    """kwild would not run this text through `user.query`."""


def read_only_sql(sql: str, version: str, *, blobs: bool = False) -> str:
    """The query translated for SQLite, or `QueryRefused` for anything but one SELECT.

    `blobs`: write row texts with `quote()` (for tables holding BLOBs), not JSON.
    """
    bare = _QUOTED.sub("''", sql).strip().rstrip(";").strip()
    if ";" in bare:
        raise QueryRefused("syntax error: only one statement is allowed")
    first = bare.split(None, 1)[0].lower() if bare else ""
    if first not in ("select", "with") or _MUTATING.search(bare):
        raise QueryRefused(MUTATION_REFUSED[version].format(sql=sql.strip()))
    if version == "v0.9":
        _one_column_per_aggregate(bare)
    return _rewrite(sql.strip().rstrip(";"), _format_exact if blobs else _format)


def _one_column_per_aggregate(bare: str) -> None:
    """kwild v0.9's analyzer refuses an aggregate whose arguments name several columns
    (v0.9.4 `parse/analyze.go`); names followed by `(` are functions, not columns."""
    for match in _AGGREGATE.finditer(bare):
        args, _ = _arguments(bare, match.end())
        names = {n.lower() for n in _NAME.findall(" ".join(args))} - _KEYWORDS
        if len(names) > 1:
            raise QueryRefused("cannot use multiple columns in aggregate function args")


def _rewrite(sql: str, formatter: Callable[[list[str]], str]) -> str:
    for name, build in (("format", formatter), ("position", _position)):
        sql = _rewrite_calls(sql, name, build, formatter)
    return sql


def _rewrite_calls(sql: str, name: str, build: Callable[[list[str]], str],
                   formatter: Callable[[list[str]], str]) -> str:
    """Replace every `name(args)` call (outside quotes) by `build(args)`, args rewritten."""
    out: list[str] = []
    i = 0
    pattern = re.compile(rf"\b{name}\s*\(", re.I)
    while True:
        match = _next_outside_quotes(pattern, sql, i)
        if match is None:
            return "".join(out) + sql[i:]
        args, end = _arguments(sql, match.end())
        out.append(sql[i:match.start()])
        out.append(build([_rewrite(a, formatter) for a in args]))
        i = end


def _next_outside_quotes(pattern: re.Pattern[str], sql: str, start: int) -> re.Match[str] | None:
    quoted = [m.span() for m in _QUOTED.finditer(sql)]
    for match in pattern.finditer(sql, start):
        if not any(a <= match.start() < b for a, b in quoted):
            return match
    return None


def _arguments(sql: str, start: int) -> tuple[list[str], int]:
    """Split the top-level arguments of a call whose `(` ends just before `start`."""
    depth, quote, args, current = 0, "", [], start
    for i in range(start, len(sql)):
        char = sql[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == ")":
            args.append(sql[current:i].strip())
            return [a for a in args if a], i + 1
        elif char == "," and not depth:
            args.append(sql[current:i].strip())
            current = i + 1
    raise QueryRefused("syntax error: unbalanced parentheses")


def _format(args: list[str]) -> str:
    if args[0].strip("'").split(",") == ["%L"] * (len(args) - 1):
        return f"json_array({', '.join(args[1:])})"
    return _format_exact(args)


def _format_exact(args: list[str]) -> str:
    template = args[0]
    if not (template.startswith("'") and template.endswith("'")):
        raise QueryRefused("the stand-in's format() takes a literal format string")
    pieces = re.split(r"(%[LsI])", template[1:-1].replace("''", "'"))
    values, parts = iter(args[1:]), []
    for piece in pieces:
        if piece in ("%L", "%I"):
            parts.append(f"quote({next(values)})")
        elif piece == "%s":
            parts.append(f"coalesce(({next(values)}), '')")
        elif piece:
            parts.append("'" + piece.replace("'", "''") + "'")
    return "(" + " || ".join(parts or ["''"]) + ")"


def _position(args: list[str]) -> str:
    return f"instr({args[1]}, {args[0]})"


class _ArrayAgg(list[Any]):
    """kwild's `array_agg(x ORDER BY x)`, printed `{a,b,NULL}` like a PostgreSQL array.

    Elements are not quoted as PostgreSQL quotes them: the comparator aggregates
    `format('%L,...')` texts, which delimit themselves, so the plain join stays unique.
    `step` is `list.append` itself: a million rows cost no Python frame each.
    """

    step = list.append

    def finalize(self) -> str | None:
        if not self:
            return None
        try:  # the comparator's case, all texts: sorted and joined in C
            return "{" + ",".join(sorted(self)) + "}"
        except TypeError:  # NULLs, numbers or bytes among them
            pass
        known = [v.hex() if isinstance(v, bytes) else str(v) for v in self if v is not None]
        known.sort()
        nulls = ["NULL"] * (len(self) - len(known))  # PostgreSQL sorts NULLs last
        return "{" + ",".join(known + nulls) + "}"


def _digest(data: Any, algorithm: str) -> bytes | None:
    if data is None:
        return None
    raw = data if isinstance(data, bytes) else str(data).encode()
    try:
        return hashlib.new(str(algorithm).lower(), raw).digest()
    except ValueError:
        raise sqlite3.OperationalError(f"Cannot use \"{algorithm}\": No such hash algorithm") \
            from None


def _encode(data: Any, encoding: str) -> str | None:
    if data is None:
        return None
    raw = data if isinstance(data, bytes) else str(data).encode()
    if encoding == "hex":
        return raw.hex()
    if encoding == "base64":
        return base64.b64encode(raw).decode()
    raise sqlite3.OperationalError(f'unrecognized encoding: "{encoding}"')


def install_functions(conn: sqlite3.Connection) -> None:
    """Give a connection kwild's `digest`, `encode` and ordered `array_agg`."""
    conn.create_function("digest", 2, _digest, deterministic=True)
    conn.create_function("encode", 2, _encode, deterministic=True)
    conn.create_aggregate("array_agg", 1, _ArrayAgg)  # type: ignore[arg-type]

