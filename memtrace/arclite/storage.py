"""One DuckDB file per Arc database: schema evolution, durable inserts, staging, and read-only queries.

Durability: DuckDB appends every COMMIT to `<file>.wal` and calls fdatasync on it before COMMIT returns
(verified with strace on duckdb 2.0.1), and replays the WAL when the file is next opened. So a write is
acknowledged only after its transaction committed, and it survives `kill -9` of the process.

Threading: every write of a database runs on that database's single writer thread (DuckDB has one writer
and schema changes must not interleave); queries run on any thread through a cursor owned by that thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from memtrace.arclite import sqlguard
from memtrace.arclite.ingest import Batch, PayloadError

MAIN = "main"
STAGE = "_arclite_stage"
"""Schema of the staging tables that emulate Arc's ingest buffer; unreachable from user SQL."""
STAGED_AT = "_arclite_at"
ROWID = "_arclite rowid"
"""Name of the staged row id inside a delete's projection; the space keeps it apart from every column."""


class TooManyRows(Exception):
    """A delete matched more rows than allowed; it was rolled back."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.rows = rows


def q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


@dataclass
class QueryJob:
    """Lets the event loop interrupt a query that outlived its timeout on another thread."""

    cursor: duckdb.DuckDBPyConnection | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.cursor is not None:
            with contextlib.suppress(duckdb.Error):
                self.cursor.interrupt()


def job_cursor(con: duckdb.DuckDBPyConnection, job: QueryJob) -> duckdb.DuckDBPyConnection:
    """A fresh connection per job, so interrupting it can never hit another request's statement."""
    cur = con.cursor()
    job.cursor = cur
    if job.cancelled:
        cur.close()
        raise duckdb.InterruptException("cancelled before start")
    return cur


@dataclass
class Catalog:
    """What tables and columns a database has, as created (names keep their first spelling, columns their
    first type), and the statements a delete or count runs against a measurement and its staged rows."""

    cols: dict[tuple[str, str], dict[str, tuple[str, str]]] = field(default_factory=dict)
    """(schema, lower-cased table) -> lower-cased column -> (column as created, SQL type)."""
    names: dict[tuple[str, str], str] = field(default_factory=dict)

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.cols = {}
        self.names = {}
        rows = con.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name IN (?, ?)",
            [MAIN, STAGE],
        ).fetchall()
        for schema, table, col, typ in rows:
            self.cols.setdefault((schema, table.lower()), {})[col.lower()] = (col, typ)
            self.names[(schema, table.lower())] = table

    def ensure(self, con: duckdb.DuckDBPyConnection, schema: str, table: str,
               types: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Create the table or add the columns it lacks; existing columns keep their first type."""
        key = (schema, table.lower())
        have = self.cols.get(key)
        extra = {STAGED_AT: "BIGINT"} if schema == STAGE else {}
        if have is None:
            defs = {**types, **extra}
            ddl = ", ".join(f"{q(c)} {t}" for c, t in defs.items())
            con.execute(f"CREATE TABLE {q(schema)}.{q(table)} ({ddl})")
            have = self.cols[key] = {c.lower(): (c, t) for c, t in defs.items()}
            self.names[key] = table
            return have
        for c, t in types.items():
            if c.lower() not in have:
                con.execute(f"ALTER TABLE {q(schema)}.{q(table)} ADD COLUMN {q(c)} {t}")
                have[c.lower()] = (c, t)
        return have

    def targets(self, measurement: str, where: str, verb: str, staged: bool) -> list[str]:
        """The statements that apply `verb` with the client's `where` to the measurement, and to its staged
        rows when `staged` (the lenient `--delete-buffered`; Arc's delete never sees its buffer).

        Staged rows are matched through a projection that looks exactly like the measurement will after
        the flush (the measurement's column types, its extra columns as NULL), so a `where` selects the
        same buffered rows it would select once they are flushed.
        """
        key = measurement.lower()
        out: list[str] = []
        main_cols = self.cols.get((MAIN, key))
        if main_cols is not None:
            out.append(f"{verb} FROM {q(MAIN)}.{q(self.names[(MAIN, key)])} WHERE ({where}\n)")
        stage_cols = self.cols.get((STAGE, key)) if staged else None
        if stage_cols is not None:
            have = main_cols or {}
            sel = [f"s.rowid AS {q(ROWID)}"]
            for low, (col, typ) in stage_cols.items():
                if col == STAGED_AT:
                    continue
                want = have.get(low, (col, typ))
                expr = f"s.{q(col)}" if want[1] == typ else f"TRY_CAST(s.{q(col)} AS {want[1]})"
                sel.append(f"{expr} AS {q(want[0])}")
            sel.extend(f"NULL::{typ} AS {q(col)}" for low, (col, typ) in have.items() if low not in stage_cols)
            table = f"{q(STAGE)}.{q(self.names[(STAGE, key)])}"
            view = f"(SELECT {', '.join(sel)} FROM {table} AS s) AS {q(measurement)}"  # noqa: S608
            match = f"SELECT {q(ROWID)} FROM {view} WHERE ({where}\n)"  # noqa: S608
            if verb == "DELETE":
                out.append(f"DELETE FROM {table} WHERE rowid IN ({match})")  # noqa: S608
            else:
                out.append(f"{verb} FROM ({match})")
        return out


@dataclass
class Database:
    name: str
    path: Path | None
    """None means an empty in-memory stand-in: querying a database never written to creates no file."""
    con: duckdb.DuckDBPyConnection = field(init=False)
    catalog: Catalog = field(init=False, default_factory=Catalog)
    _local: threading.local = field(init=False, default_factory=threading.local)
    _cursors: list[duckdb.DuckDBPyConnection] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    pending_since: int | None = field(init=False, default=None)
    """Epoch µs of the oldest staged row not yet moved to its measurement (None: nothing staged)."""
    _dir_synced: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        cfg: dict[str, str | bool | int | float | list[str]] = {
            "enable_external_access": False, "autoinstall_known_extensions": False}
        self.con = duckdb.connect(str(self.path) if self.path else ":memory:", config=cfg)
        if self.path is not None:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGE}")
        self.catalog.load(self.con)
        self._refresh_pending()

    def tables(self) -> list[str]:
        return sorted(t for (s, t) in self._table_names() if s == MAIN and not t.startswith("_"))

    def _table_names(self) -> list[tuple[str, str]]:
        rows = self.con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        return [(str(s), str(t)) for s, t in rows]

    # ---- writes (writer thread only) ----------------------------------------------------------------
    def write(self, batches: list[Batch], staged: bool) -> None:
        """Insert all batches in one transaction: the request is acknowledged whole or not at all."""
        now = time.time_ns() // 1000
        self.con.execute("BEGIN TRANSACTION")
        try:
            for b in batches:
                self._insert(STAGE if staged else MAIN, b, now if staged else None)
            self.con.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            self.catalog.load(self.con)
            if isinstance(exc, duckdb.ConversionException | duckdb.InvalidInputException | OverflowError):
                raise PayloadError(f"type conflict: {sqlguard.first_line(exc)}") from exc
            if isinstance(exc, orjson.JSONEncodeError):
                raise PayloadError(f"unsupported value: {exc}") from exc
            raise
        if staged and self.pending_since is None:
            self.pending_since = now
        self._sync_dir_once()

    def _insert(self, schema: str, b: Batch, staged_at: int | None) -> None:
        have = self.catalog.ensure(self.con, schema, b.measurement, b.types)
        names = [c for c in b.columns if c.lower() in have]
        spec = {c: ["BIGINT" if c == "time" else have[c.lower()][1]] for c in names}
        sel = [
            f"make_timestamp(unnest(j.{q(c)}))" if c == "time" else f"unnest(j.{q(c)})"
            for c in names
        ]
        target = [q(have[c.lower()][0]) for c in names]
        params: list[Any] = [orjson.dumps({c: b.columns[c] for c in names}).decode()]
        if staged_at is not None:
            target.append(q(STAGED_AT))
            sel.append("$2::BIGINT")
            params.append(staged_at)
        spec_sql = orjson.dumps(spec).decode().replace("'", "''")
        src = f"(SELECT json_transform_strict($1::VARCHAR, '{spec_sql}') AS j)"
        into = f"{q(schema)}.{q(b.measurement)} ({', '.join(target)})"
        self.con.execute(f"INSERT INTO {into} SELECT {', '.join(sel)} FROM {src}", params)  # noqa: S608

    def flush_staged(self, cutoff: int | None) -> int:
        """Move staged rows written at or before `cutoff` (µs; None = all) into their measurements."""
        if self.pending_since is None or (cutoff is not None and self.pending_since > cutoff):
            return 0
        moved = 0
        cond = "" if cutoff is None else f" WHERE {q(STAGED_AT)} <= {int(cutoff)}"
        self.con.execute("BEGIN TRANSACTION")
        try:
            for key, cols in list(self.catalog.cols.items()):
                if key[0] != STAGE:
                    continue
                table = self.catalog.names[key]
                types = {c: t for c, t in cols.values() if c != STAGED_AT}
                have = self.catalog.ensure(self.con, MAIN, table, types)
                names = [q(have[c.lower()][0]) for c in types]
                src = f"{q(STAGE)}.{q(table)}"
                cl = ", ".join(names)
                order = f"ORDER BY {q(STAGED_AT)}, rowid"
                sql = f"INSERT INTO {q(MAIN)}.{q(table)} ({cl}) SELECT {cl} FROM {src}{cond} {order}"  # noqa: S608
                row = self.con.execute(sql).fetchone()
                moved += int(row[0]) if row else 0
                self.con.execute(f"DELETE FROM {src}{cond}")  # noqa: S608 - quoted idents
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            self.catalog.load(self.con)
            raise
        self._refresh_pending()
        return moved

    def _refresh_pending(self) -> None:
        oldest: int | None = None
        for key in self.catalog.cols:
            if key[0] != STAGE:
                continue
            sql = f"SELECT min({q(STAGED_AT)}) FROM {q(STAGE)}.{q(self.catalog.names[key])}"  # noqa: S608
            row = self.con.execute(sql).fetchone()
            if row and row[0] is not None:
                oldest = int(row[0]) if oldest is None else min(oldest, int(row[0]))
        self.pending_since = oldest

    def _sync_dir_once(self) -> None:
        """fsync the data directory after the first commit so the new .wal's directory entry is durable
        against power loss too (kill -9 alone would not need it)."""
        if self._dir_synced or self.path is None:
            return
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._dir_synced = True

    # ---- deletes (writer thread only; the statements come from `Catalog.targets`) ----
    def count_matching(self, measurement: str, where: str, staged: bool, job: QueryJob) -> int:
        """Rows of the measurement (and its staged rows when `staged`) that `where` selects; nothing changes."""
        cur = job_cursor(self.con, job)
        try:
            cur.execute("BEGIN TRANSACTION READ ONLY")
            return _total(cur, self.catalog.targets(measurement, where, "SELECT count(*)", staged))
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            cur.close()

    def delete_matching(self, measurement: str, where: str, max_rows: int, staged: bool, job: QueryJob) -> int:
        """Delete what `where` selects (staged rows too when `staged`) in one transaction; returns the count.

        Returns only after COMMIT, i.e. after the WAL holding the delete was fsynced. If more than
        `max_rows` rows match, nothing is deleted and TooManyRows is raised.
        """
        cur = job_cursor(self.con, job)
        try:
            cur.execute("BEGIN TRANSACTION")
            total = _total(cur, self.catalog.targets(measurement, where, "DELETE", staged))
            if total > max_rows:
                cur.execute("ROLLBACK")
                raise TooManyRows(total)
            if total:
                cur.execute("COMMIT")
            else:
                cur.execute("ROLLBACK")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
        if total:
            self._refresh_pending()
        return total

    # ---- queries (any thread) -----------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            with self._lock:
                cur = self.con.cursor()
                self._cursors.append(cur)
            self._local.cur = cur
        return cur

    def query(self, sql: str, job: QueryJob) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Run one already-vetted SELECT in a READ ONLY transaction; returns names, types and rows."""
        cur = self._cursor()
        job.cursor = cur
        if job.cancelled:
            raise duckdb.InterruptException("query cancelled before start")
        cur.execute("BEGIN TRANSACTION READ ONLY")
        try:
            cur.execute(sql)
            desc = cur.description or []
            rows = cur.fetchall()
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
        return [str(d[0]) for d in desc], [str(d[1]) for d in desc], rows

    def close(self) -> None:
        with self._lock:
            for cur in self._cursors:
                with contextlib.suppress(duckdb.Error):
                    cur.close()
            self._cursors.clear()
        if self.path is not None:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("CHECKPOINT")
        self.con.close()


def _total(cur: duckdb.DuckDBPyConnection, statements: list[str]) -> int:
    """The sum of the counts the statements answer (a DELETE answers the rows it removed)."""
    total = 0
    for sql in statements:
        row = cur.execute(sql).fetchone()
        total += int(row[0]) if row else 0
    return total

