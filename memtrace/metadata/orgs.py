"""Organizations: the tenants. Deleting one cascades to its binding, keys, agents and sessions."""

from __future__ import annotations

import builtins
import sqlite3
from typing import TYPE_CHECKING

from memtrace.errors import Conflict, NotFound
from memtrace.metadata._util import check_id, check_text, new_id, unique_violation
from memtrace.metadata.models import Org
from memtrace.timeutil import format_us, now_us

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

MAX_NAME_LEN = 200


def _org(row: sqlite3.Row) -> Org:
    return Org(id=row["id"], name=row["name"], created_at=row["created_at"])


class Orgs:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def create(self, name: str, id: str | None = None) -> Org:
        """Create an org; the id defaults to `org_<hex>`. Duplicate name or id → Conflict."""
        name = check_text(name, "org name", MAX_NAME_LEN)
        org_id = check_id(id, "org id") if id is not None else new_id("org", 8)
        created = format_us(now_us())
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)",
                    (org_id, name, created),
                )
        except sqlite3.IntegrityError as exc:
            where = unique_violation(exc)
            if where == "organizations.name":
                raise Conflict(f"an org named {name!r} already exists") from None
            if where == "organizations.id":
                raise Conflict(f"org id {org_id!r} already exists") from None
            raise
        return Org(id=org_id, name=name, created_at=created)

    async def list(self) -> builtins.list[Org]:
        rows = await self._db.fetchall(
            "SELECT id, name, created_at FROM organizations ORDER BY created_at, id"
        )
        return [_org(r) for r in rows]

    async def find(self, org_id: str) -> Org | None:
        row = await self._db.fetchone(
            "SELECT id, name, created_at FROM organizations WHERE id = ?", (org_id,)
        )
        return _org(row) if row else None

    async def find_by_name(self, name: str) -> Org | None:
        row = await self._db.fetchone("SELECT id, name, created_at FROM organizations WHERE name = ?", (name,))
        return _org(row) if row else None

    async def get(self, org_id: str) -> Org:
        """The org, or NotFound naming the id (the CLI prints that message as is)."""
        org = await self.find(org_id)
        if org is None:
            raise NotFound(f"unknown org {org_id!r}")
        return org

    async def delete(self, org_id: str) -> bool:
        """Delete the org and, by cascade, everything it owns in the metadata DB (not its Arc data)."""
        async with self._db.transaction() as tx:
            return await tx.execute("DELETE FROM organizations WHERE id = ?", (org_id,)) > 0
