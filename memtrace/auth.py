"""API-key authentication: one argon2id verify per key, then a dict lookup.

Verified keys go into a bounded LRU keyed by SHA-256 of the key (the key itself is never kept), with a
TTL. Revocation and expiry are honoured within seconds: expiry is checked on every hit, and each worker
clears the cache whenever the metadata change counter moves (`refresh_loop` in `app.py`), which the admin
CLI's writes bump through SQLite triggers. Failed attempts answer the same way whatever went wrong and
never echo the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from memtrace.errors import Forbidden, Unauthorized
from memtrace.keys import has_permission, lookup_id, verify_key
from memtrace.metadata.api_keys import KeyRecord
from memtrace.metrics import m

MISSING = "missing API key"
INVALID = "invalid API key"
# argon2 is deliberately slow: bound how many run at once so a flood of wrong keys cannot starve the loop's
# thread pool (the LRU keeps genuine traffic away from it).
MAX_CONCURRENT_VERIFIES = 4

KeyLookup = Callable[[str], Awaitable[KeyRecord | None]]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the org comes from here and only from here."""

    org_id: str
    key_id: str
    permissions: frozenset[str]
    expires_at_us: int | None

    def require(self, permission: str) -> None:
        if not has_permission(self.permissions, permission):
            raise Forbidden(f"this API key lacks the '{permission}' permission")


def key_from_headers(x_api_key: bytes | None, authorization: bytes | None) -> str | None:
    """`x-api-key: mtk_...` or `Authorization: Bearer mtk_...`."""
    if x_api_key:
        return x_api_key.decode("latin-1").strip() or None
    if authorization:
        scheme, _, value = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class Authenticator:
    def __init__(self, lookup: KeyLookup, cache_size: int, ttl_s: float) -> None:
        self._lookup = lookup
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._ttl_s = ttl_s
        self._inflight: dict[bytes, asyncio.Future[Principal]] = {}
        self._verify_slots = asyncio.Semaphore(MAX_CONCURRENT_VERIFIES)
        self.misses = 0

    def clear(self) -> None:
        """Forget every verified key; called when keys may have been revoked."""
        self._cache.clear()

    async def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized(MISSING)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            principal, cached_at = hit
            if time.monotonic() - cached_at < self._ttl_s and not _expired(principal):
                self._cache.move_to_end(digest)
                m().auth_cache_hits.inc()
                return principal
            del self._cache[digest]
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            principal = await self._verify(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[digest]
        future.set_result(principal)
        self._cache[digest] = (principal, time.monotonic())
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, key: str) -> Principal:
        self.misses += 1
        m().auth_cache_misses.inc()
        lid = lookup_id(key)
        if lid is None:
            raise Unauthorized(INVALID)
        record = await self._lookup(lid)
        if record is None or record.revoked_at_us is not None:
            raise Unauthorized(INVALID)
        principal = Principal(record.org_id, record.id, record.permissions, record.expires_at_us)
        if _expired(principal):
            raise Unauthorized(INVALID)
        async with self._verify_slots:
            ok = await asyncio.to_thread(verify_key, record.key_hash, key)
        if not ok:
            raise Unauthorized(INVALID)
        return principal


def _expired(principal: Principal) -> bool:
    return principal.expires_at_us is not None and principal.expires_at_us <= time.time_ns() // 1000
