"""API-key authentication: one argon2id verify per key, then a dict lookup; failures are cached and budgeted.

Verified keys go into a bounded LRU keyed by SHA-256 of the key (the key itself is never kept), with a
TTL. Revocation and expiry are honoured within seconds: expiry is checked on every hit, and each worker
clears the cache whenever the metadata change counter moves (the "metadata refresh" loop of
`runtime.py`), which the admin CLI's writes bump through SQLite triggers. `clear()` also bumps a
generation: a verify that was in flight across it does not cache its result, so a key revoked meanwhile
is checked again on its next use.

Failed attempts answer the same way whatever went wrong and never echo the key. A wrong secret behind a real
key's lookup id costs an argon2 verify, so failures are bounded:
- a key that just failed is remembered (by SHA-256) for `negative_cache_ttl_s`: repeating it is free;
- each lookup id and each client address has a failure budget (token bucket). Over budget, a key that was
  never verified here gets 429 with Retry-After instead of a verify: if the client's address is over its
  budget, or if the lookup id is over its budget and this address has failed lately.

What keeps an attacker from locking a legitimate key out: verified keys are answered from the cache before
any budget is looked at, and a key that verified once in this worker stays "known good" for its lookup id
(a digest kept across cache clears and TTL expiry), which is always verified, never refused. A valid key
this worker never verified is refused only when its own address is the one failing (a shared NAT or proxy
address with an attacker behind it) — for as long as the failures continue at more than the refill rate.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from memtrace import timeutil
from memtrace.authlimit import Clock, FailureBuckets, NegativeCache
from memtrace.config import AuthSettings
from memtrace.errors import Forbidden, Overloaded, Unauthorized
from memtrace.keys import has_permission, lookup_id, verify_key
from memtrace.metadata.api_keys import KeyRecord
from memtrace.metrics import m

MISSING = "missing API key"
INVALID = "invalid API key"
TOO_MANY = "too many failed API key attempts; retry later"
# argon2 is deliberately slow: bound how many run at once so a flood of wrong keys cannot starve the loop's
# thread pool (the LRU keeps genuine traffic away from it).
MAX_CONCURRENT_VERIFIES = 4
UNKNOWN_CLIENT = "-"

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


class _Failed(Exception):
    """A key did not verify; `hashed` says whether an argon2 verify was spent on it."""

    def __init__(self, hashed: bool) -> None:
        super().__init__(INVALID)
        self.hashed = hashed


class Authenticator:
    def __init__(self, lookup: KeyLookup, cache_size: int, ttl_s: float, *,
                 limits: AuthSettings | None = None, clock: Clock = time.monotonic) -> None:
        limits = limits or AuthSettings()
        self._lookup = lookup
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._ttl_s = ttl_s
        self._inflight: dict[bytes, tuple[int, asyncio.Future[Principal]]] = {}
        self._verify_slots = asyncio.Semaphore(MAX_CONCURRENT_VERIFIES)
        self._generation = 0
        self._negative = NegativeCache(limits.negative_cache_size, limits.negative_cache_ttl_s, clock)
        self._known_good: OrderedDict[str, bytes] = OrderedDict()  # lookup id -> digest that verified
        self._key_failures = FailureBuckets(limits.key_failure_burst, limits.key_failures_per_s,
                                            limits.failure_tracking_size, clock)
        self._client_failures = FailureBuckets(limits.client_failure_burst, limits.client_failures_per_s,
                                               limits.failure_tracking_size, clock)
        self.misses = 0
        self.hashes = 0  # argon2 verifies run

    @classmethod
    def from_settings(cls, lookup: KeyLookup, settings: AuthSettings) -> Authenticator:
        return cls(lookup, settings.cache_size, settings.cache_ttl_s, limits=settings)

    def clear(self) -> None:
        """Forget every verified key and every recent failure; called when keys may have changed."""
        self._cache.clear()
        self._negative.clear()
        self._generation += 1

    async def authenticate(self, key: str | None, client: str | None = None) -> Principal:
        """The key's principal; 401 if it does not verify, 429 if it may not be tried now (see module doc)."""
        if not key:
            raise Unauthorized(MISSING)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            principal, cached_at = hit
            if self._clock() - cached_at < self._ttl_s and not _expired(principal):
                self._cache.move_to_end(digest)
                m().auth_cache_hits.inc()
                return principal
            del self._cache[digest]
        if digest in self._negative:
            raise Unauthorized(INVALID)
        lid = lookup_id(key)
        if lid is None:
            raise Unauthorized(INVALID)  # cannot be a key: no DB read, nothing to budget
        client = client or UNKNOWN_CLIENT
        if self._known_good.get(lid) != digest:
            self._within_budget(lid, client)
        generation = self._generation
        pending = self._inflight.get(digest)
        if pending is not None and pending[0] == generation:
            return await asyncio.shield(pending[1])
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        entry = (generation, future)
        self._inflight[digest] = entry
        try:
            principal = await self._verify(key, lid)
        except _Failed as failed:
            self._record_failure(digest, lid, client, failed.hashed, generation)
            error = Unauthorized(INVALID)
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise error from None
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            if self._inflight.get(digest) is entry:
                del self._inflight[digest]
        future.set_result(principal)
        if generation == self._generation:  # keys did not change while we verified
            self._cache[digest] = (principal, self._clock())
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self._known_good[lid] = digest
            self._known_good.move_to_end(lid)
            if len(self._known_good) > self._cache_size:
                self._known_good.popitem(last=False)
        return principal

    def _within_budget(self, lid: str, client: str) -> None:
        if self._client_failures.exhausted(client):
            raise Overloaded(TOO_MANY, self._client_failures.retry_after(client))
        if self._key_failures.exhausted(lid) and not self._client_failures.clean(client):
            raise Overloaded(TOO_MANY, self._key_failures.retry_after(lid))

    def _record_failure(self, digest: bytes, lid: str, client: str, hashed: bool, generation: int) -> None:
        self._client_failures.charge(client)
        if hashed:
            self._key_failures.charge(lid)
        if generation == self._generation:  # a key created meanwhile must not be remembered as bad
            self._negative.add(digest)

    async def _verify(self, key: str, lid: str) -> Principal:
        self.misses += 1
        m().auth_cache_misses.inc()
        record = await self._lookup(lid)
        if record is None or record.revoked_at_us is not None:
            raise _Failed(hashed=False)
        principal = Principal(record.org_id, record.id, record.permissions, record.expires_at_us)
        if _expired(principal):
            raise _Failed(hashed=False)
        async with self._verify_slots:
            self.hashes += 1
            ok = await asyncio.to_thread(verify_key, record.key_hash, key)
        if not ok:
            raise _Failed(hashed=True)
        return principal


def _expired(principal: Principal) -> bool:
    return principal.expires_at_us is not None and principal.expires_at_us <= timeutil.now_us()
