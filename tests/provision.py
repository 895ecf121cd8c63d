"""Create orgs, Arc bindings and keys in a real metadata DB, as the admin CLI does."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from memtrace.metadata.db import open_metadata


@dataclass(frozen=True)
class Tenant:
    org_id: str
    key: str
    database: str


async def _provision(db: Path, name: str, arc_url: str | None, database: str, permissions: str,
                     measurement: str) -> Tenant:
    metadata = await open_metadata(db)
    try:
        org = await metadata.orgs.create(name)
        if arc_url is not None:
            await metadata.arc_instances.upsert(org.id, arc_url, database, measurement)
        _, key = await metadata.api_keys.create(org.id, f"{name}-key", permissions)
        return Tenant(org.id, key, database)
    finally:
        await metadata.close()


def provision(db: Path, name: str, arc_url: str | None, database: str | None = None,
              permissions: str = "read,write", measurement: str = "events") -> Tenant:
    """An org named `name` bound to `arc_url` (or unbound when None) with one key."""
    return asyncio.run(_provision(db, name, arc_url, database or f"db_{name}", permissions, measurement))


async def _add_key(db: Path, org_id: str, name: str, permissions: str, expires_at_us: int | None) -> str:
    metadata = await open_metadata(db)
    try:
        _, key = await metadata.api_keys.create(org_id, name, permissions, expires_at_us)
        return key
    finally:
        await metadata.close()


def add_key(db: Path, org_id: str, name: str, permissions: str = "read,write",
            expires_at_us: int | None = None) -> str:
    return asyncio.run(_add_key(db, org_id, name, permissions, expires_at_us))
