"""The metadata store on PostgreSQL: the same repositories as SQLite, shared by every host.

`PgMetadataDB` satisfies `MetadataDB`'s interface (`transaction`, `fetchone`, `fetchall`, `change_version`,
`schema_version`, `close`), so `Orgs`, `ApiKeys`, `Agents`, `Sessions` and `ArcInstances` run unchanged: their
SQL goes through `to_pg`. Differences handled here:
- an identity column `seq` stands in for SQLite's `rowid` (creation order among equal timestamps);
- a unique violation is reported by constraint name, translated to SQLite's "UNIQUE constraint failed: t.c"
  text the repositories already understand;
- migrations run in one transaction holding `schema_version` FOR UPDATE, so hosts starting together apply
  each step once;
- triggers bump `change_counter` and `pg_notify('memtrace_changes')`, which `listen.py` turns into an
  immediate auth-cache and binding-registry clear on every host.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, cast

import psycopg
from psycopg_pool import AsyncConnectionPool

from memtrace.metadata.agents import Agents
from memtrace.metadata.api_keys import ApiKeys
from memtrace.metadata.arc_instances import ArcInstances
from memtrace.metadata.db import LATEST_VERSION, MetadataDB, Params, SchemaError
from memtrace.metadata.orgs import Orgs
from memtrace.metadata.sessions import Sessions
from memtrace.pgsql import ROW_FACTORY, PgRow, bind, to_pg

CHANNEL: Final = "memtrace_changes"
POOL_TIMEOUT_S: Final = 5.0

_WATCHED = ("organizations", "arc_instances", "api_keys")

# The SQLite schema at LATEST_VERSION, in PostgreSQL's dialect (one step: a Postgres store starts current).
SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE organizations (
        id TEXT CONSTRAINT organizations_id PRIMARY KEY,
        name TEXT NOT NULL CONSTRAINT organizations_name UNIQUE,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE arc_instances (
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL UNIQUE REFERENCES organizations(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        api_key_cipher BYTEA,
        api_key_nonce BYTEA,
        database TEXT NOT NULL,
        measurement TEXT NOT NULL DEFAULT 'events',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    """CREATE TABLE api_keys (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        id TEXT CONSTRAINT api_keys_id PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        lookup_id TEXT NOT NULL CONSTRAINT api_keys_lookup_id UNIQUE,
        key_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        permissions TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        CONSTRAINT api_keys_org_id_name UNIQUE (org_id, name))""",
    """CREATE TABLE agents (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        config_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        last_active_at TEXT,
        CONSTRAINT agents_org_id_name UNIQUE (org_id, name))""",
    """CREATE TABLE sessions (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
        metadata_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        closed_at TEXT,
        last_active_at TEXT)""",
    "CREATE TABLE change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
    "INSERT INTO change_counter (id, version) VALUES (1, 0)",
    f"""CREATE FUNCTION memtrace_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE change_counter SET version = version + 1 WHERE id = 1;
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$""",  # noqa: S608 - a constant channel name
    *(f"CREATE TRIGGER {t}_bump AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH STATEMENT"
      " EXECUTE FUNCTION memtrace_bump()" for t in _WATCHED),
    "CREATE INDEX api_keys_org ON api_keys (org_id, created_at)",
    "CREATE INDEX agents_org_created ON agents (org_id, created_at)",
    "CREATE INDEX sessions_org_created ON sessions (org_id, created_at)",
    "CREATE INDEX sessions_org_agent ON sessions (org_id, agent_id, created_at)",
    """CREATE TABLE retention_policies (
        org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
        memory_type TEXT NOT NULL,
        days INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (org_id, memory_type))""",
    """CREATE TABLE deletion_audit (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at TEXT NOT NULL,
        org_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        filter_json TEXT NOT NULL,
        rows INTEGER NOT NULL,
        state TEXT NOT NULL)""",
    "CREATE INDEX deletion_audit_org ON deletion_audit (org_id, id)",
)

# Constraint name -> the "table.column[, table.column]" SQLite names in its unique-violation message.
_UNIQUE: Final = {
    "organizations_id": "organizations.id",
    "organizations_name": "organizations.name",
    "api_keys_id": "api_keys.id",
    "api_keys_lookup_id": "api_keys.lookup_id",
    "api_keys_org_id_name": "api_keys.org_id, api_keys.name",
    "agents_org_id_name": "agents.org_id, agents.name",
}


def _integrity(exc: psycopg.errors.IntegrityError) -> sqlite3.IntegrityError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        name = exc.diag.constraint_name or ""
        return sqlite3.IntegrityError(f"UNIQUE constraint failed: {_UNIQUE.get(name, name)}")
    return sqlite3.IntegrityError(str(exc))


class PgTx:
    """Statements inside one transaction on one pooled connection."""

    def __init__(self, conn: psycopg.AsyncConnection[PgRow]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            cur = await self._conn.execute(*bind(sql, params))
        except psycopg.errors.IntegrityError as exc:
            raise _integrity(exc) from None
        return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        bound = [bind(sql, row) for row in rows]
        if not bound:
            return 0
        async with self._conn.cursor() as cur:
            await cur.executemany(bound[0][0], [params for _, params in bound])
            return cur.rowcount

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        cur = await self._conn.execute(to_pg(sql), params)
        return cast("sqlite3.Row | None", await cur.fetchone())

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        cur = await self._conn.execute(to_pg(sql), params)
        return cast("list[sqlite3.Row]", await cur.fetchall())


class PgMetadataDB(MetadataDB):
    """A connection pool plus the same per-table repositories as the SQLite store."""

    def __init__(self, url: str, pool: AsyncConnectionPool[psycopg.AsyncConnection[PgRow]]) -> None:
        # Deliberately not calling MetadataDB.__init__: there is no SQLite connection.
        self.path = Path("postgresql")
        self.url = url
        self.pool = pool
        self.orgs = Orgs(self)
        self.arc_instances = ArcInstances(self)
        self.api_keys = ApiKeys(self)
        self.agents = Agents(self)
        self.sessions = Sessions(self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTx]:  # type: ignore[override]
        async with self.pool.connection() as conn, conn.transaction():
            yield PgTx(conn)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self.pool.connection() as conn:
            return await PgTx(conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self.pool.connection() as conn:
            return await PgTx(conn).fetchall(sql, params)

    async def close(self) -> None:
        await self.pool.close()


async def _migrate(conn: psycopg.AsyncConnection[Any]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7301)")  # the first host creates schema_version
        cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
        exists = await cur.fetchone()
        if not (exists and exists[0]):  # no DDL at all on a database already set up
            await conn.execute("CREATE TABLE schema_version "
                               "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
            await conn.execute("INSERT INTO schema_version (id, version) VALUES (1, 0)")
        cur = await conn.execute("SELECT version FROM schema_version WHERE id = 1 FOR UPDATE")
        found = await cur.fetchone()
        current = int(found[0]) if found else 0
        if current > LATEST_VERSION:
            raise SchemaError(f"metadata database has schema version {current}, newer than this Memtrace "
                              f"(knows up to {LATEST_VERSION}); upgrade Memtrace")
        if current == 0:
            for statement in SCHEMA:
                await conn.execute(statement)
            await conn.execute("UPDATE schema_version SET version = %s WHERE id = 1", (LATEST_VERSION,))


async def open_pg_metadata(url: str) -> PgMetadataDB:
    """Open a pool on `url` and bring the schema up to date."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await _migrate(conn)
    pool: AsyncConnectionPool[psycopg.AsyncConnection[PgRow]] = AsyncConnectionPool(
        url, min_size=1, max_size=4, open=False, timeout=POOL_TIMEOUT_S, name="memtrace-metadata",
        kwargs={"autocommit": True, "row_factory": ROW_FACTORY},
        check=AsyncConnectionPool.check_connection,
    )
    await pool.open()
    return PgMetadataDB(url, pool)
