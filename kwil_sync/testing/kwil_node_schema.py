"""Schemas and SQLite execution for the kwild stand-in (see `kwil_node` for the model).

An action is a SQL body run by SQLite, not Kuneiform: named parameters `$x` are the
action's parameters, and `@caller` (the signer's EIP-55 address, "" for an unsigned
call), `@txid` (the transaction hash) and `@height` (the block height) are bound as
kwild's contextual variables. Several statements may be separated by `;`; a call
returns the rows of the last statement that returned any.

Extensions (kwild v0.9 remote extensions): a schema lists what it `use`s
(`ExtensionUse`), and a statement of the form `$r = alias.method(arg, ...);` (or without
`$r =`) calls that extension while the action runs, as Kuneiform does. Arguments are
string literals in single quotes, integers, `$parameters`, `@caller`, `@txid` and
`@height`; the first output is bound to `$r` for the statements that follow.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kwil_sync.errors import KwilSyncError

__all__ = ["ActionDef", "Database", "ExecutionError", "ExtensionCaller", "ExtensionUse",
           "Schema"]

# (extension name, method, arguments, metadata) -> outputs
ExtensionCaller = Callable[[str, str, Sequence[Any], Mapping[str, str]], list[Any]]
_EXTENSION_CALL = re.compile(r"^(?:\$(\w+)\s*=\s*)?([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*\((.*)\)\s*;?$",
                             re.DOTALL)
_ARGUMENT = re.compile(r"\s*('(?:[^']|'')*'|-?\d+|[$@]\w+)\s*(?:,|$)")

_INT_TYPES = ("int", "int8", "integer", "bigint")


class ExecutionError(KwilSyncError):
    """An action failed: `refused` when it was not allowed to run at all (unknown,
    owner-only, not a view), False when its SQL failed."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class ActionDef:
    """One action: `parameters` as (`$name`, type) pairs, `sql` with `$name` placeholders.

    `public=False` makes the action owner-only (the 2023 prototype's "private"); it is
    served with kwild's `OWNER` modifier, which is how v0.9 and v0.10 say owner-only.
    `view=True` marks a read-only action for `user.call`.
    """

    name: str
    parameters: list[tuple[str, str]]
    public: bool
    sql: str
    view: bool = False

    def modifiers(self) -> list[str]:
        """kwild's access modifiers (v0.10 `access_modifiers`, v0.9 `modifiers` minus PUBLIC)."""
        return ["PUBLIC"] + (["VIEW"] if self.view else []) + ([] if self.public else ["OWNER"])


@dataclass(frozen=True)
class ExtensionUse:
    """`use <name> {metadata} as <alias>;`: an extension the schema's actions call."""

    name: str
    alias: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Schema:
    """Tables (SQLite DDL statements), actions and extensions of one database."""

    tables: list[str]
    actions: list[ActionDef] = field(default_factory=list)
    extensions: list[ExtensionUse] = field(default_factory=list)

    def action(self, name: str) -> ActionDef | None:
        return next((a for a in self.actions if a.name == name.lower()), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Schema:
        raw = json.loads(text)
        actions = [ActionDef(a["name"], [tuple(p) for p in a["parameters"]],  # type: ignore[misc]
                             a["public"], a["sql"], a.get("view", False)) for a in raw["actions"]]
        uses = [ExtensionUse(e["name"], e["alias"], dict(e.get("metadata") or {}))
                for e in raw.get("extensions") or []]
        return cls(list(raw["tables"]), actions, uses)


def _statements(sql: str) -> list[str]:
    """Split a body into complete statements (quotes and `;` inside literals respected)."""
    out, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n\t;"):
                out.append(current.strip())
            current = ""
    if current.strip(" \n\t;"):
        out.append(current.strip())
    return out


def _coerce(value: Any, type_name: str, param: str) -> Any:
    """Cast a decoded argument to the declared parameter type, as kwild does."""
    base = type_name.lower().removesuffix("[]")
    if value is None or base == "":  # untyped, as v0.9 action parameters are
        return value
    if base == "text":
        return str(value)
    try:
        if base in _INT_TYPES:
            return int(value)
        if base in ("bool", "boolean"):
            return int(value in (True, 1, "true", "t", "1"))
    except (TypeError, ValueError):
        raise ExecutionError(f"cannot convert argument {param} = {value!r} to {type_name}") \
            from None
    return value


def _arguments(text: str) -> list[str]:
    """Split `'a', $b, @txid, 7` into its tokens; refuse anything else."""
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _ARGUMENT.match(text, position)
        if match is None:
            raise ExecutionError(f"cannot read extension arguments at {text[position:][:40]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _argument(token: str, binds: Mapping[str, Any]) -> Any:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token[0] in "$@":
        if token[1:] not in binds:
            raise ExecutionError(f"unknown variable {token} in an extension call")
        return binds[token[1:]]
    return int(token)


class Database:
    """One deployed database: its owner, schema and SQLite connection."""

    def __init__(self, owner: str, name: str, target: str, schema: Schema,
                 path: str = ":memory:") -> None:
        self.owner, self.name, self.target, self.schema = owner, name, target, schema
        self.extension_metadata: dict[str, dict[str, str]] = {}  # by alias, from Initialize
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")

    def create_tables(self) -> None:
        with self.conn:
            for ddl in self.schema.tables:
                self.conn.execute(ddl)

    def reset(self) -> None:
        """Drop every table and create the schema's again (a node replaying from genesis)."""
        with self.conn:
            names = [n for (n,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                "'sqlite_%'").fetchall()]
            for name in names:
                self.conn.execute(f'DROP TABLE "{name}"')
        self.create_tables()

    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def run(self, version: str, action_name: str, args: Sequence[Any], *, caller: str,
            txid: str, height: int, read_only: bool,
            extensions: ExtensionCaller | None = None) -> list[dict[str, Any]]:
        """Execute one action inside a savepoint (always rolled back when `read_only`).

        Args:
            extensions: Calls an extension method (None: the node has no extensions).

        Raises:
            ExecutionError: With kwild's message for the version.
        """
        action = self._authorize(version, action_name, caller, read_only)
        if len(args) != len(action.parameters):
            raise ExecutionError(f'action "{action.name}" expects {len(action.parameters)} '
                                 f"argument(s), got {len(args)}")
        binds: dict[str, Any] = {"caller": caller, "txid": txid, "height": height}
        for (param, type_name), value in zip(action.parameters, args, strict=True):
            binds[param.lstrip("$")] = _coerce(value, type_name, param)
        self.conn.execute("SAVEPOINT action")
        try:
            rows: list[dict[str, Any]] = []
            for statement in _statements(action.sql):
                if self._extension_call(statement, binds, extensions):
                    continue
                cursor = self.conn.execute(statement, binds)
                if cursor.description:
                    names = [d[0] for d in cursor.description]
                    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK TO action")
            raise ExecutionError(f"ERROR: {exc}") from None
        finally:
            if read_only:
                self.conn.execute("ROLLBACK TO action")
            self.conn.execute("RELEASE action")
        return rows

    def _extension_call(self, statement: str, binds: dict[str, Any],
                        extensions: ExtensionCaller | None) -> bool:
        """Run `statement` if it calls an extension the schema uses; False if it is SQL."""
        match = _EXTENSION_CALL.match(statement.strip())
        uses = {u.alias: u for u in self.schema.extensions}
        if match is None or match.group(2) not in uses:
            return False
        receiver, alias, method, text = match.groups()
        if extensions is None:
            raise ExecutionError(f'extension "{uses[alias].name}" is not available on this node')
        values = [_argument(token, binds) for token in _arguments(text)]
        try:
            outputs = extensions(uses[alias].name, method, values,
                                 self.extension_metadata.get(alias, uses[alias].metadata))
        except Exception as exc:  # the extension failed: kwild fails the action
            raise ExecutionError(f"ERROR: {exc}") from None
        if receiver:
            binds[receiver] = outputs[0] if outputs else None
        return True

    def _authorize(self, version: str, name: str, caller: str, read_only: bool) -> ActionDef:
        action = self.schema.action(name)
        if action is None:
            message = (f'action "{name}" not found' if version == "v0.9" else
                       f'unknown action: action "{name}" does not exist in namespace '
                       f'"{self.target}"')
            raise ExecutionError(message, refused=True)
        if not action.public and caller.lower() != self.owner.lower():
            message = ("cannot call owner action, not owner" if version == "v0.9" else
                       f"action is owner-only: action {name} can only be executed by the owner")
            raise ExecutionError(message, refused=True)
        if read_only and not action.view:
            raise ExecutionError(f'action "{name}" is not a view action: use a transaction',
                                 refused=True)
        return action

    def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """A read-only query, rolled back whatever it did."""
        self.conn.execute("SAVEPOINT query")
        try:
            cursor = self.conn.execute(sql, params or {})
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            self.conn.execute("ROLLBACK TO query")
            self.conn.execute("RELEASE query")

    def close(self) -> None:
        self.conn.close()
