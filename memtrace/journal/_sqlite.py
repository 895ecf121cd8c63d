"""The journal's SQLite plumbing: schema, tuned connections, and one connection per thread with a
cross-process write lock.

Every write transaction first takes an exclusive `flock` on `<journal>.lock`: SQLite's own busy handler
sleeps in steps of up to 100 ms, while a blocked flock wakes the moment the other process commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from memtrace.threadnames import name_os_thread

T = TypeVar("T")

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    accepted_at REAL NOT NULL,
    row BLOB NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal(org_id, seq) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS journal_delivered ON journal(delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS journal_org_time ON journal(org_id, time_us);
DROP INDEX IF EXISTS journal_id;
CREATE TABLE IF NOT EXISTS dedup (
    org_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    memory_id TEXT,
    PRIMARY KEY (org_id, dedup_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_time ON dedup(time_us);
CREATE TABLE IF NOT EXISTS org_pending (org_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
"""

SQLITE_IOERR: Final = 10
SQLITE_FULL: Final = 13

# Columns added after a table's first release: `CREATE TABLE IF NOT EXISTS` leaves an existing file's table as it
# was, so they are added to it here (NULL in the rows written before: a ledger key without the id of its memory).
ADDED_COLUMNS: Final = (("dedup", "memory_id", "TEXT"),)


def add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, kind in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


# Bound parameters per statement stay far below SQLite's limit with 500 rows of up to 7 values.
CHUNK: Final = 500


def connect(path: Path, synchronous: str, max_bytes: int = 0) -> sqlite3.Connection:
    """A connection tuned for a multi-process group-commit journal; past `max_bytes` (0: no bound) of
    database pages its writes fail with SQLITE_FULL, exactly as on a full disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    if max_bytes:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count={max(1, max_bytes // page_size)}")
    return conn


def out_of_space(exc: BaseException) -> bool:
    """SQLITE_FULL (disk full, or the journal's size bound) or SQLITE_IOERR (a failed write, e.g. ENOSPC)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in (SQLITE_FULL, SQLITE_IOERR)


def free_room(conn: sqlite3.Connection, path: Path, max_bytes: int) -> int:
    """Bytes a write could still use: free pages inside the file, plus what the bound (or else the disk)
    leaves for the file to grow."""
    page_size, pages, free_pages = (int(conn.execute(f"PRAGMA {name}").fetchone()[0])
                                    for name in ("page_size", "page_count", "freelist_count"))
    if max_bytes:
        grow = max(0, max_bytes - pages * page_size)
    else:
        disk = os.statvfs(path.parent)
        grow = disk.f_bavail * disk.f_frsize
    return free_pages * page_size + grow


def marks(n: int) -> str:
    """`?,?,…` for an IN list of `n` values."""
    return ",".join("?" * n)


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def insert_many(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]],
                tail: str = "") -> None:
    """Multi-row `VALUES (…),(…)` inserts, up to 500 rows per statement. Measured on a 25-row group:
    0.68 ms against 0.81 ms with `executemany`."""
    one = "(" + marks(width) + ")"
    for chunk in chunks(rows):
        params = [value for row in chunk for value in row]
        conn.execute(head + ",".join([one] * len(chunk)) + tail, params)


class ThreadedConnection:
    """One SQLite connection on its own thread, with write transactions serialised across processes."""

    def __init__(self, conn: sqlite3.Connection, lock_path: Path, name: str, max_bytes: int = 0) -> None:
        self.conn = conn
        self.path = lock_path.with_name(lock_path.name.removesuffix(".lock"))
        self.max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name,
                                            initializer=name_os_thread, initargs=(name,))
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    async def open(cls, path: Path, synchronous: str, name: str, max_bytes: int = 0) -> ThreadedConnection:
        conn = await asyncio.get_running_loop().run_in_executor(None, connect, path, synchronous, max_bytes)
        return cls(conn, path.with_name(path.name + ".lock"), name, max_bytes)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on this connection's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` … `COMMIT` under the cross-process flock; rolled back on any error."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (e.g. on SQLITE_FULL); never mask the first error.
                with contextlib.suppress(sqlite3.Error):
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def create_schema(self, schema: str = SCHEMA) -> None:
        with self.write() as conn:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            add_missing_columns(conn)


    async def close(self) -> None:
        await self.run(self.conn.close)
        os.close(self._lock_fd)
        self._executor.shutdown(wait=True)


def narrowing(org_id: str, *, agent_id: str | None = None, session_id: str | None = None,
              since_us: int | None = None, until_us: int | None = None,
              ids: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """A WHERE clause (and its parameters) over the columns journal and dead-letter rows keep beside their
    blob: it narrows the candidates by index, and callers still apply the full filter to the decoded rows."""
    clauses = ["org_id = ?"]
    params: list[Any] = [org_id]
    for clause, value in (("agent_id = ?", agent_id), ("session_id = ?", session_id),
                          ("time_us >= ?", since_us), ("time_us < ?", until_us)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if ids:
        clauses.append(f"id IN ({marks(len(ids))})")
        params.extend(ids)
    return " AND ".join(clauses), params
