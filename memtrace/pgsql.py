"""Shared PostgreSQL plumbing for the scale-out backend (`metadata.url = "postgresql://…"`).

The repositories and journal parts are written once, in SQLite's dialect; `to_pg` rewrites the few constructs
that differ (`?` placeholders, `rowid`, two-argument `max`, `INSERT OR REPLACE`, a boolean `SUM`), so both
backends run the same queries. Rows come back as `PgRow`, indexable by position and by column name like `sqlite3.Row`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import BaseRowFactory

URL_PREFIXES: Final = ("postgresql://", "postgres://")

# One lock order for every journal bookkeeping transaction across hosts (`pg_advisory_xact_lock`).
JOURNAL_LOCK: Final = 0x6D656D74

_REPLACE = re.compile(r"INSERT OR REPLACE INTO (\w+)\s*\(([^)]*)\)(.*)", re.S)
_CONFLICT_KEYS: Final = {"lease": ("name",), "dedup": ("org_id", "dedup_key")}


def is_pg_url(url: str) -> bool:
    return url.startswith(URL_PREFIXES)


@functools.lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """SQLite-dialect SQL as PostgreSQL runs it."""
    replaced = _REPLACE.fullmatch(sql.strip())
    if replaced:
        table, columns, rest = replaced.groups()
        names = [c.strip() for c in columns.split(",")]
        keys = _CONFLICT_KEYS[table]
        sets = ", ".join(f"{c} = excluded.{c}" for c in names if c not in keys)
        sql = f"INSERT INTO {table}({columns}){rest} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    sql = sql.replace("%", "%%").replace("?", "%s")
    sql = re.sub(r"\browid\b", "seq", sql)
    sql = re.sub(r"\bAND 0\b(?![.\d])", "AND false", sql)
    sql = re.sub(r"\bSUM\(([^()]*=[^()]*)\)", r"count(*) FILTER (WHERE \1)", sql, flags=re.I)
    return re.sub(r"\bmax\(0,", "greatest(0,", sql)


_NUMBERED = re.compile(r"\?(\d+)")


def bind(sql: str, params: Any) -> tuple[str, Any]:
    """`to_pg`, also for SQLite's numbered `?N` placeholders (psycopg has none): repeated in order of use."""
    order = [int(n) for n in _NUMBERED.findall(sql)]
    if not order:
        return to_pg(sql), params
    values = list(params)
    return to_pg(_NUMBERED.sub("?", sql)), tuple(values[n - 1] for n in order)


class PgRow(tuple[Any, ...]):
    """A result row readable as `row[0]` and `row["column"]`, as the SQLite repositories read theirs."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def pg_row(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, names)


ROW_FACTORY: BaseRowFactory[PgRow] = pg_row


def describe(url: str) -> str:
    """`host:port/dbname` of a connection URL, for messages: never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "the configured database"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def unavailable(exc: BaseException) -> bool:
    """The database is unreachable or went away (not a fault of the statement)."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not isinstance(
        exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected)
