"""Memtrace API keys as stored: argon2id hash, lookup id, permissions, expiry, revocation.

The plaintext key exists only in the return value of `create`; the DB never sees it. Revoking keeps
the row (for audit), and bumps the change counter so every server drops its cached verification.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from memtrace.errors import Conflict, Invalid, NotFound
from memtrace.keys import (
    DEFAULT_PERMISSIONS,
    format_permissions,
    generate_api_key,
    hash_key,
    lookup_id,
    parse_permissions,
)
from memtrace.metadata._util import check_text, new_id, parse_ts_opt, unique_violation
from memtrace.metadata.models import ApiKeyInfo, KeyRecord
from memtrace.timeutil import format_us, now_us

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

__all__ = ["ApiKeys", "KeyRecord"]

MAX_NAME_LEN = 128
_LOOKUP_RETRIES = 5
_SELECT = "SELECT id, org_id, name, permissions, created_at, expires_at, revoked_at FROM api_keys"


def _info(row: sqlite3.Row) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        permissions=sorted(parse_permissions(row["permissions"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


class ApiKeys:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def create(
        self,
        org_id: str,
        name: str,
        permissions: str | Iterable[str] = DEFAULT_PERMISSIONS,
        expires_at_us: int | None = None,
    ) -> tuple[ApiKeyInfo, str]:
        """Create a key for the org; returns (its record, the plaintext key: show it once, then forget it)."""
        name = check_text(name, "key name", MAX_NAME_LEN)
        perms = format_permissions(parse_permissions(permissions))
        now = now_us()
        if expires_at_us is not None and expires_at_us <= now:
            raise Invalid("key expiry must be in the future")
        expires = None if expires_at_us is None else format_us(expires_at_us)
        created = format_us(now)
        for _ in range(_LOOKUP_RETRIES):
            key = generate_api_key()
            lookup = lookup_id(key)
            assert lookup is not None
            key_hash = await asyncio.to_thread(hash_key, key)  # argon2 costs milliseconds: off the loop
            key_id = new_id("key", 8)
            try:
                async with self._db.transaction() as tx:
                    if await tx.fetchone("SELECT 1 FROM organizations WHERE id = ?", (org_id,)) is None:
                        raise NotFound(f"unknown org {org_id!r}")
                    await tx.execute(
                        "INSERT INTO api_keys (id, org_id, lookup_id, key_hash, name, permissions, "
                        "created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                        (key_id, org_id, lookup, key_hash, name, perms, created, expires),
                    )
            except sqlite3.IntegrityError as exc:
                where = unique_violation(exc)
                if where == "api_keys.org_id, api_keys.name":
                    raise Conflict(f"org {org_id!r} already has a key named {name!r}") from None
                if where in ("api_keys.lookup_id", "api_keys.id"):
                    continue  # 72-bit collision: astronomically rare, but a retry is free
                raise
            info = ApiKeyInfo(
                id=key_id,
                org_id=org_id,
                name=name,
                permissions=perms.split(","),
                created_at=created,
                expires_at=expires,
                revoked_at=None,
            )
            return info, key
        raise RuntimeError("could not allocate a unique API key id")

    async def get_by_lookup(self, lookup: str) -> KeyRecord | None:
        """The one row a presented key can match (revoked and expired rows included: auth decides)."""
        row = await self._db.fetchone(
            "SELECT id, org_id, name, key_hash, permissions, expires_at, revoked_at FROM api_keys "
            "WHERE lookup_id = ?",
            (lookup,),
        )
        if row is None:
            return None
        return KeyRecord(
            id=row["id"],
            org_id=row["org_id"],
            name=row["name"],
            key_hash=row["key_hash"],
            permissions=parse_permissions(row["permissions"]),
            expires_at_us=parse_ts_opt(row["expires_at"]),
            revoked_at_us=parse_ts_opt(row["revoked_at"]),
        )

    async def list(self, org_id: str) -> builtins.list[ApiKeyInfo]:
        rows = await self._db.fetchall(
            _SELECT + " WHERE org_id = ? ORDER BY created_at, rowid", (org_id,)
        )
        return [_info(r) for r in rows]

    async def get(self, key_id: str, org_id: str | None = None) -> ApiKeyInfo | None:
        sql = _SELECT + " WHERE id = ?"
        params: tuple[str, ...] = (key_id,)
        if org_id is not None:
            sql += " AND org_id = ?"
            params = (key_id, org_id)
        row = await self._db.fetchone(sql, params)
        return _info(row) if row else None

    async def revoke(self, key_id: str, org_id: str | None = None) -> bool:
        """Revoke a key (idempotent: the first revocation time is kept). False if no such key.

        `org_id` scopes the call for the API; the admin CLI revokes by key id alone.
        """
        sql = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?"
        params: tuple[str, ...] = (format_us(now_us()), key_id)
        if org_id is not None:
            sql += " AND org_id = ?"
            params = (*params, org_id)
        async with self._db.transaction() as tx:
            return await tx.execute(sql, params) > 0
