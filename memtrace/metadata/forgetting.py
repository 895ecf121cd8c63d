"""Retention policies and the deletion audit trail, in the metadata store.

Retention: per org, a number of days for every memory type (`memory_type` '') and optionally per type;
a type's own policy wins over the org's default. Audit: one row per deletion (API, agent erase, retention,
purge): when, which key id (never the secret), which filter (JSON), how many rows, and whether Arc had
confirmed at that moment (`applied`) or the deletion waited in the journal (`pending`).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

import msgspec

from memtrace.errors import Invalid
from memtrace.timeutil import format_us, now_us

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

ALL_TYPES = ""
MAX_RETENTION_DAYS = 36_500


class RetentionPolicy(msgspec.Struct, kw_only=True):
    org_id: str
    memory_type: str  # '' means every type without its own policy
    days: int
    updated_at: str


class AuditEntry(msgspec.Struct, kw_only=True):
    id: int
    at: str
    org_id: str
    key_id: str
    kind: str
    filter: dict[str, Any]
    rows: int
    state: str


class Retention:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def set(self, org_id: str, days: int | None, per_type: dict[str, int]) -> None:
        """Replace the org's policies: `days` for every type (None: no default) and `per_type` overrides."""
        for value in [days, *per_type.values()]:
            if value is not None and not 1 <= value <= MAX_RETENTION_DAYS:
                raise Invalid(f"retention days must be 1..{MAX_RETENTION_DAYS}, got {value}")
        at = format_us(now_us())
        rows = [(org_id, t, d, at) for t, d in per_type.items()]
        if days is not None:
            rows.append((org_id, ALL_TYPES, days, at))
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM retention_policies WHERE org_id = ?", (org_id,))
            for row in rows:
                await tx.execute(
                    "INSERT INTO retention_policies (org_id, memory_type, days, updated_at) VALUES (?, ?, ?, ?)",
                    row)

    async def clear(self, org_id: str) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM retention_policies WHERE org_id = ?", (org_id,))

    async def list(self, org_id: str | None = None) -> builtins.list[RetentionPolicy]:
        sql = "SELECT org_id, memory_type, days, updated_at FROM retention_policies"
        params: tuple[str, ...] = ()
        if org_id is not None:
            sql += " WHERE org_id = ?"
            params = (org_id,)
        rows = await self._db.fetchall(sql + " ORDER BY org_id, memory_type", params)
        return [RetentionPolicy(org_id=r["org_id"], memory_type=r["memory_type"], days=int(r["days"]),
                                updated_at=r["updated_at"]) for r in rows]


def describe(policies: builtins.list[RetentionPolicy]) -> str:
    """`30d, decision=365d` for one org's policies ('' when none)."""
    parts = [f"{p.days}d" for p in policies if p.memory_type == ALL_TYPES]
    parts += [f"{p.memory_type}={p.days}d" for p in policies if p.memory_type != ALL_TYPES]
    return ", ".join(parts)


class Audit:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def record(self, org_id: str, key_id: str, kind: str, filter: dict[str, Any], rows: int,
                     state: str) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO deletion_audit (at, org_id, key_id, kind, filter_json, rows, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (format_us(now_us()), org_id, key_id, kind, msgspec.json.encode(filter).decode(), rows, state))

    async def list(self, org_id: str | None = None, limit: int = 1000) -> builtins.list[AuditEntry]:
        sql = "SELECT id, at, org_id, key_id, kind, filter_json, rows, state FROM deletion_audit"
        params: tuple[Any, ...] = ()
        if org_id is not None:
            sql += " WHERE org_id = ?"
            params = (org_id,)
        rows = await self._db.fetchall(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [AuditEntry(id=int(r["id"]), at=r["at"], org_id=r["org_id"], key_id=r["key_id"], kind=r["kind"],
                           filter=msgspec.json.decode(r["filter_json"]), rows=int(r["rows"]), state=r["state"])
                for r in rows]
