"""Arc bindings: which Arc (URL, database, measurement, API key) holds each org's memories.

The Arc API key is stored only as AES-256-GCM ciphertext bound to the org (see `memtrace.crypto`);
decrypting needs the master key, which only the server process and `admin org show-arc` hold; the Arc side
does it (`memtrace.arc.binding.decrypt_binding`), so this store knows nothing of Arc clients.
"""

from __future__ import annotations

import builtins
import sqlite3
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from memtrace import crypto
from memtrace.errors import Invalid, NotFound
from memtrace.metadata._util import new_id
from memtrace.metadata.models import ArcInstance, ArcInstanceRow
from memtrace.patterns import DATABASE_RE, MEASUREMENT_RE
from memtrace.timeutil import format_us, now_us

if TYPE_CHECKING:
    from memtrace.metadata.db import MetadataDB

DEFAULT_MEASUREMENT = "events"


def validate_url(url: str) -> str:
    """http(s) with a host; no credentials in the URL, since the URL is stored and shown in clear."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise Invalid(f"Arc URL is malformed: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"Arc URL must be http:// or https:// with a host, got {url!r}")
    if parts.username or parts.password:
        raise Invalid("Arc URL must not contain credentials: pass the Arc token as the API key instead")
    if parts.query or parts.fragment:
        raise Invalid(f"Arc URL must not have a query or fragment: {url!r}")
    del port
    return url.strip().rstrip("/")


def validate_database(database: str) -> str:
    if not DATABASE_RE.fullmatch(database):
        raise Invalid(
            f"Arc database name must match {DATABASE_RE.pattern} (letter first, then letters, digits, '_' "
            f"or '-', max 64): {database!r}"
        )
    return database


def validate_measurement(measurement: str) -> str:
    if not MEASUREMENT_RE.fullmatch(measurement):
        raise Invalid(
            f"measurement name must match {MEASUREMENT_RE.pattern} (letter first, max 128): {measurement!r}"
        )
    return measurement


def _info(row: sqlite3.Row) -> ArcInstance:
    return ArcInstance(
        org_id=row["org_id"],
        url=row["url"],
        database=row["database"],
        measurement=row["measurement"],
        has_api_key=row["api_key_cipher"] is not None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _row(row: sqlite3.Row) -> ArcInstanceRow:
    return ArcInstanceRow(
        org_id=row["org_id"],
        url=row["url"],
        database=row["database"],
        measurement=row["measurement"],
        api_key_cipher=None if row["api_key_cipher"] is None else bytes(row["api_key_cipher"]),
        api_key_nonce=None if row["api_key_nonce"] is None else bytes(row["api_key_nonce"]),
    )


class ArcInstances:
    def __init__(self, db: MetadataDB) -> None:
        self._db = db

    async def upsert(
        self,
        org_id: str,
        url: str,
        database: str,
        measurement: str = DEFAULT_MEASUREMENT,
        api_key: str | None = None,
        master_key: bytes | None = None,
        *,
        clear_api_key: bool = False,
    ) -> ArcInstance:
        """Bind (or rebind) the org to an Arc.

        `api_key=None` keeps the stored key when rebinding (changing the URL needs no secret);
        `clear_api_key=True` removes it. A new key needs `master_key` to encrypt it.
        """
        url = validate_url(url)
        database = validate_database(database)
        measurement = validate_measurement(measurement)
        cipher: bytes | None = None
        nonce: bytes | None = None
        if api_key is not None:
            if not api_key.strip():
                raise Invalid("Arc API key must not be empty")
            if master_key is None:
                raise crypto.MasterKeyError(
                    f"{crypto.MASTER_KEY_ENV} is required to store an Arc API key: generate one with "
                    "`memtrace admin keygen master` and export it"
                )
            cipher, nonce = crypto.encrypt(master_key, org_id, api_key)
        now = format_us(now_us())
        async with self._db.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM organizations WHERE id = ?", (org_id,)) is None:
                raise NotFound(f"unknown org {org_id!r}")
            existing = await tx.fetchone("SELECT id FROM arc_instances WHERE org_id = ?", (org_id,))
            if existing is None:
                await tx.execute(
                    "INSERT INTO arc_instances (id, org_id, url, api_key_cipher, api_key_nonce, database, "
                    "measurement, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new_id("arc", 8), org_id, url, cipher, nonce, database, measurement, now, now),
                )
            elif api_key is not None or clear_api_key:
                await tx.execute(
                    "UPDATE arc_instances SET url = ?, database = ?, measurement = ?, api_key_cipher = ?, "
                    "api_key_nonce = ?, updated_at = ? WHERE org_id = ?",
                    (url, database, measurement, cipher, nonce, now, org_id),
                )
            else:
                await tx.execute(
                    "UPDATE arc_instances SET url = ?, database = ?, measurement = ?, updated_at = ? "
                    "WHERE org_id = ?",
                    (url, database, measurement, now, org_id),
                )
            row = await tx.fetchone("SELECT * FROM arc_instances WHERE org_id = ?", (org_id,))
        assert row is not None
        return _info(row)

    async def get(self, org_id: str) -> ArcInstance | None:
        row = await self._db.fetchone("SELECT * FROM arc_instances WHERE org_id = ?", (org_id,))
        return _info(row) if row else None

    async def get_row(self, org_id: str) -> ArcInstanceRow | None:
        """The org's binding with its encrypted key (for `arc.binding.decrypt_binding`)."""
        row = await self._db.fetchone("SELECT * FROM arc_instances WHERE org_id = ?", (org_id,))
        return _row(row) if row else None

    async def delete(self, org_id: str) -> bool:
        async with self._db.transaction() as tx:
            return await tx.execute("DELETE FROM arc_instances WHERE org_id = ?", (org_id,)) > 0

    async def list_all(self) -> builtins.list[ArcInstanceRow]:
        """Every org's binding, still encrypted: the server decrypts them at start and on each change."""
        rows = await self._db.fetchall("SELECT * FROM arc_instances ORDER BY org_id")
        return [_row(r) for r in rows]
