"""The metadata SQLite store: one aiosqlite connection, versioned migrations, a cross-process change counter.

Several processes share the file (server workers, the admin CLI), so:
- WAL lets readers run while one writer commits; `busy_timeout` makes writers queue instead of failing.
- Every write transaction starts with `BEGIN IMMEDIATE`, taking the write lock up front. A deferred
  transaction that reads first and writes later can hit SQLITE_BUSY without the busy handler ever
  being called (the lock upgrade would deadlock), which surfaces as a spurious "database is locked".
- Migrations run inside one such transaction at open, so processes starting together apply each
  step exactly once; the others wait, then see the new version and do nothing.
- `change_counter` is bumped by triggers on organizations, arc_instances and api_keys, so a write by
  *any* process (the CLI, another worker) is visible to every server polling `change_version()`:
  that is how revocations and new Arc bindings take effect without a restart.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from memtrace.metadata.agents import Agents
from memtrace.metadata.api_keys import ApiKeys
from memtrace.metadata.arc_instances import ArcInstances
from memtrace.metadata.forgetting import Audit, Retention
from memtrace.metadata.orgs import Orgs
from memtrace.metadata.sessions import Sessions

BUSY_TIMEOUT_MS = 5000
_OPEN_DEADLINE_S = 30.0

Params = Sequence[Any] | dict[str, Any]


class SchemaError(Exception):
    """The DB was written by a newer Memtrace (unknown schema version); refuse rather than corrupt it."""


_V1_TABLES: tuple[str, ...] = (
    """CREATE TABLE organizations (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE arc_instances (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL UNIQUE REFERENCES organizations(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        api_key_cipher BLOB,
        api_key_nonce BLOB,
        database TEXT NOT NULL,
        measurement TEXT NOT NULL DEFAULT 'events',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        lookup_id TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        UNIQUE (org_id, name))""",
    """CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        last_active_at TEXT,
        UNIQUE (org_id, name))""",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
        metadata_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        closed_at TEXT,
        last_active_at TEXT)""",
)

# Tables whose changes bump change_counter: every process clears its key cache and Arc bindings then.
WATCHED_TABLES = ("organizations", "arc_instances", "api_keys")
_BUMP = "BEGIN UPDATE change_counter SET version = version + 1 WHERE id = 1; END"
_V2_CHANGE_COUNTER: tuple[str, ...] = (
    "CREATE TABLE change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "INSERT INTO change_counter (id, version) VALUES (1, 0)",
    *(
        f"CREATE TRIGGER {table}_{op.lower()}_bump AFTER {op} ON {table} {_BUMP}"
        for table in WATCHED_TABLES
        for op in ("INSERT", "UPDATE", "DELETE")
    ),
)

INDEXES_V3: tuple[str, ...] = (  # the PostgreSQL schema (pg.py) creates the same
    "CREATE INDEX api_keys_org ON api_keys (org_id, created_at)",
    "CREATE INDEX agents_org_created ON agents (org_id, created_at)",
    "CREATE INDEX sessions_org_created ON sessions (org_id, created_at)",
    "CREATE INDEX sessions_org_agent ON sessions (org_id, agent_id, created_at)",
)

# Forgetting: retention per org ('' = every memory type) and the deletion audit trail. The audit has no foreign
# key: it must outlive the org it describes (a purge is audited too).
_V4_FORGETTING: tuple[str, ...] = (
    """CREATE TABLE retention_policies (
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        memory_type TEXT NOT NULL,
        days INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (org_id, memory_type))""",
    """CREATE TABLE deletion_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        org_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        filter_json TEXT NOT NULL,
        rows INTEGER NOT NULL,
        state TEXT NOT NULL)""",
    "CREATE INDEX deletion_audit_org ON deletion_audit (org_id, id)",
)

# A memory names its session by the client's id (api.md, "First-hour expectations"), so session ids are unique per
# org: another org's `sess_demo` must neither keep this org's from existing nor reveal that it exists.
# The sessions table since v5: v1's columns, keyed per org (PostgreSQL's, pg.py, adds its `seq` column).
SESSIONS_V5_COLUMNS = (
    "id TEXT NOT NULL, org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE, agent_id TEXT NOT NULL, "
    "status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')), "
    "metadata_json TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL, closed_at TEXT, "
    "last_active_at TEXT, CONSTRAINT sessions_pkey PRIMARY KEY (org_id, id)"
)
_SESSION_COLUMNS = "id, org_id, agent_id, status, metadata_json, created_at, updated_at, closed_at, last_active_at"
_V5_SESSIONS_PER_ORG: tuple[str, ...] = (
    f"CREATE TABLE sessions_v5 ({SESSIONS_V5_COLUMNS})",
    f"INSERT INTO sessions_v5 ({_SESSION_COLUMNS}) SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY rowid",  # noqa: S608 - constant columns
    "DROP TABLE sessions",  # and its indexes; no table refers to it
    "ALTER TABLE sessions_v5 RENAME TO sessions",
    *(index for index in INDEXES_V3 if " ON sessions " in index),
)

# Append only: step i upgrades schema version i to i + 1. Never edit a released step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1_TABLES, _V2_CHANGE_COUNTER, INDEXES_V3, _V4_FORGETTING,
                                           _V5_SESSIONS_PER_ORG)
LATEST_VERSION = len(MIGRATIONS)


class Tx:
    """Statements inside one write transaction (the caller already holds the connection lock)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cur = await self._conn.execute(sql, params)
        count = cur.rowcount
        await cur.close()
        return count

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        cur = await self._conn.executemany(sql, rows)
        count = cur.rowcount
        await cur.close()
        return count

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())


class MetadataDB:
    """One connection plus the per-table repositories (`db.orgs`, `db.api_keys`, ...), built here and only here.

    aiosqlite runs everything on one thread, but coroutines could still interleave statements of
    different transactions on the shared connection; an asyncio lock keeps each transaction whole.
    """

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = asyncio.Lock()
        self._tx = Tx(conn)
        self._build_repositories()

    def _build_repositories(self) -> None:
        """Every repository, once, over this store (the PostgreSQL store builds the same ones)."""
        self.orgs = Orgs(self)
        self.arc_instances = ArcInstances(self)
        self.api_keys = ApiKeys(self)
        self.agents = Agents(self)
        self.sessions = Sessions(self)
        self.retention = Retention(self)
        self.audit = Audit(self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction holding SQLite's write lock from the start (BEGIN IMMEDIATE)."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
                await self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._lock:
            return await self._tx.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return await self._tx.fetchall(sql, params)

    async def change_version(self) -> int:
        """Bumped by any process on every change to orgs, Arc bindings or keys; cheap enough to poll."""
        row = await self.fetchone("SELECT version FROM change_counter WHERE id = 1")
        return int(row[0]) if row else 0

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT version FROM schema_version WHERE id = 1")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self._conn.close()


async def _migrate(conn: aiosqlite.Connection, path: Path, upto: int) -> None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        async with conn.execute("SELECT version FROM schema_version WHERE id = 1") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        if current > LATEST_VERSION:
            raise SchemaError(
                f"metadata DB {path} has schema version {current}, newer than this Memtrace "
                f"(knows up to {LATEST_VERSION}); upgrade Memtrace"
            )
        for version in range(current, upto):
            for statement in MIGRATIONS[version]:
                await conn.execute(statement)
        if upto > current:
            await conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (upto,),
            )
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def open_metadata(path: Path, *, schema_version: int | None = None) -> MetadataDB:
    """Open (creating if needed) and migrate the metadata DB.

    `schema_version` stops migrating at that version; only tests use it, to build an old DB.
    Opening is retried while another process holds the lock longer than busy_timeout (e.g. many
    workers and CLI calls starting at once on a fresh file), within a bounded deadline.
    """
    upto = LATEST_VERSION if schema_version is None else schema_version
    if not 0 <= upto <= LATEST_VERSION:
        raise ValueError(f"schema_version must be within 0..{LATEST_VERSION}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _OPEN_DEADLINE_S
    delay = 0.01
    while True:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await _migrate(conn, path, upto)
            return MetadataDB(path, conn)
        except sqlite3.OperationalError as exc:
            await conn.close()
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
        except BaseException:
            await conn.close()
            raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
