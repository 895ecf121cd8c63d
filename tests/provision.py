"""Create orgs, Arc bindings and keys in a real metadata DB, as the admin CLI does."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from memtrace.metadata.db import MetadataDB, open_metadata


async def _open(db: Path | str) -> MetadataDB:
    """A SQLite file, or a shared PostgreSQL URL (tests/test_scaleout.py)."""
    if isinstance(db, str):
        from memtrace.metadata.pg import open_pg_metadata

        return await open_pg_metadata(db)
    return await open_metadata(db)


@dataclass(frozen=True)
class Tenant:
    org_id: str
    key: str
    database: str


async def _provision(db: Path | str, name: str, arc_url: str | None, database: str, permissions: str,
                     measurement: str) -> Tenant:
    metadata = await _open(db)
    try:
        org = await metadata.orgs.create(name)
        if arc_url is not None:
            await metadata.arc_instances.upsert(org.id, arc_url, database, measurement)
        _, key = await metadata.api_keys.create(org.id, f"{name}-key", permissions)
        return Tenant(org.id, key, database)
    finally:
        await metadata.close()


def provision(db: Path | str, name: str, arc_url: str | None, database: str | None = None,
              permissions: str = "read,write", measurement: str = "events") -> Tenant:
    """An org named `name` bound to `arc_url` (or unbound when None) with one key."""
    return asyncio.run(_provision(db, name, arc_url, database or f"db_{name}", permissions, measurement))


async def _add_key(db: Path | str, org_id: str, name: str, permissions: str, expires_at_us: int | None) -> str:
    metadata = await _open(db)
    try:
        _, key = await metadata.api_keys.create(org_id, name, permissions, expires_at_us)
        return key
    finally:
        await metadata.close()


def add_key(db: Path | str, org_id: str, name: str, permissions: str = "read,write",
            expires_at_us: int | None = None) -> str:
    return asyncio.run(_add_key(db, org_id, name, permissions, expires_at_us))
