"""Failed key checks are cached and budgeted, without ever refusing a key that already verified.

A real `ApiKeys` repository on a real SQLite file; only the clock is ours, so TTLs and refills are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memtrace.auth import Authenticator
from memtrace.config import AuthSettings
from memtrace.errors import Overloaded, Unauthorized
from memtrace.keys import KEY_PREFIX, LOOKUP_ID_LEN, generate_api_key, hash_key, lookup_id
from memtrace.metadata.api_keys import ApiKeys, KeyRecord
from memtrace.metadata.db import MetadataDB, open_metadata

LIMITS = AuthSettings(negative_cache_ttl_s=5.0, key_failure_burst=3, key_failures_per_s=0.5,
                      client_failure_burst=5, client_failures_per_s=1.0)
ATTACKER, FRIEND = "203.0.113.7", "198.51.100.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Keys:
    db: MetadataDB
    repo: ApiKeys
    org_id: str


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[Keys]:
    db = await open_metadata(tmp_path / "memtrace.db")
    org = await db.orgs.create("acme")
    yield Keys(db, db.api_keys, org.id)
    await db.close()


def auth_for(keys: Keys, clock: Clock, limits: AuthSettings = LIMITS) -> Authenticator:
    return Authenticator(keys.repo.get_by_lookup, 100, 300.0, limits=limits, clock=clock)


def wrong_secret(key: str, n: int) -> str:
    """Same lookup id as `key`, another secret."""
    head = key[: len(KEY_PREFIX) + LOOKUP_ID_LEN]
    return head + f"{n:031d}"[-31:].replace("0", "A")


async def test_a_repeated_wrong_key_is_answered_from_the_negative_cache(keys: Keys) -> None:
    _, key = await keys.repo.create(keys.org_id, "k")
    clock = Clock()
    auth = auth_for(keys, clock)
    bad = wrong_secret(key, 1)
    for _ in range(20):
        with pytest.raises(Unauthorized):
            await auth.authenticate(bad, ATTACKER)
    assert auth.hashes == 1
    clock.now += 6  # the negative entry has expired: one more verify
    with pytest.raises(Unauthorized):
        await auth.authenticate(bad, ATTACKER)
    assert auth.hashes == 2


async def test_wrong_secrets_behind_a_lookup_id_get_429_after_the_budget(keys: Keys) -> None:
    _, key = await keys.repo.create(keys.org_id, "k")
    clock = Clock()
    auth = auth_for(keys, clock)
    statuses = []
    for n in range(40):
        try:
            await auth.authenticate(wrong_secret(key, n), ATTACKER)
        except (Unauthorized, Overloaded) as exc:
            statuses.append(exc.status)
    assert statuses[:3] == [401, 401, 401]
    assert set(statuses[3:]) == {429}
    assert auth.hashes == 3
    with pytest.raises(Overloaded) as refused:
        await auth.authenticate(wrong_secret(key, 99), ATTACKER)
    assert refused.value.retry_after >= 1
    clock.now += 120  # both budgets refill
    with pytest.raises(Unauthorized):
        await auth.authenticate(wrong_secret(key, 100), ATTACKER)


async def test_an_attacker_cannot_lock_out_the_key_whose_lookup_id_it_attacks(keys: Keys) -> None:
    info, key = await keys.repo.create(keys.org_id, "victim")
    clock = Clock()
    auth = auth_for(keys, clock)
    assert (await auth.authenticate(key, FRIEND)).key_id == info.id
    for n in range(50):
        with pytest.raises((Unauthorized, Overloaded)):
            await auth.authenticate(wrong_secret(key, n), ATTACKER)
    # Cached: answered whatever the budgets say, from any address, the attacker's included.
    assert (await auth.authenticate(key, ATTACKER)).key_id == info.id
    # After a cache clear (keys changed somewhere) it is verified again, not refused: it is known good.
    auth.clear()
    assert (await auth.authenticate(key, ATTACKER)).key_id == info.id
    # Known good is a right to be verified, not to pass: a revocation still wins.
    await keys.repo.revoke(info.id)
    auth.clear()
    with pytest.raises(Unauthorized):
        await auth.authenticate(key, FRIEND)


async def test_a_key_never_seen_here_works_from_a_clean_address_during_an_attack(keys: Keys) -> None:
    info, key = await keys.repo.create(keys.org_id, "fresh")
    clock = Clock()
    auth = auth_for(keys, clock)
    for n in range(50):
        with pytest.raises((Unauthorized, Overloaded)):
            await auth.authenticate(wrong_secret(key, n), ATTACKER)
    assert (await auth.authenticate(key, FRIEND)).key_id == info.id
    # Only the attacked lookup id is over budget: the attacker's address may still try another key.
    other_info, other = await keys.repo.create(keys.org_id, "other")
    assert (await auth.authenticate(other, ATTACKER)).key_id == other_info.id
    # The documented limit: once the address itself is over budget, a key never verified here waits.
    for n in range(50):
        with pytest.raises((Unauthorized, Overloaded)):
            await auth.authenticate(KEY_PREFIX + f"{n:043d}", ATTACKER)
    third_info, third = await keys.repo.create(keys.org_id, "third")
    with pytest.raises(Overloaded):
        await auth.authenticate(third, ATTACKER)
    assert (await auth.authenticate(other, ATTACKER)).key_id == other_info.id  # cached: never refused
    clock.now += 60
    assert (await auth.authenticate(third, ATTACKER)).key_id == third_info.id


async def test_unknown_lookup_ids_are_budgeted_per_client(keys: Keys) -> None:
    clock = Clock()
    auth = auth_for(keys, clock)
    lookups = 0

    async def counting(lid: str) -> KeyRecord | None:
        nonlocal lookups
        lookups += 1
        return await keys.repo.get_by_lookup(lid)

    auth._lookup = counting
    refused = 0
    for n in range(100):
        try:
            await auth.authenticate(KEY_PREFIX + f"{n:043d}", ATTACKER)
        except Overloaded:
            refused += 1
        except Unauthorized:
            pass
    assert lookups == LIMITS.client_failure_burst
    assert refused == 100 - LIMITS.client_failure_burst
    _, key = await keys.repo.create(keys.org_id, "k")
    assert (await auth.authenticate(key, FRIEND)).org_id == keys.org_id


async def test_a_verify_in_flight_across_a_clear_does_not_cache_a_revoked_key(keys: Keys) -> None:
    info, key = await keys.repo.create(keys.org_id, "racy")
    auth = auth_for(keys, Clock())
    looked_up = asyncio.Event()
    release = asyncio.Event()

    async def slow_lookup(lid: str) -> KeyRecord | None:
        record = await keys.repo.get_by_lookup(lid)
        looked_up.set()
        await release.wait()
        return record

    auth._lookup = slow_lookup
    first = asyncio.create_task(auth.authenticate(key, FRIEND))
    await looked_up.wait()
    await keys.repo.revoke(info.id)  # revoked while the verify is in flight...
    auth.clear()  # ...and the worker noticed the change
    release.set()
    await first  # it started before the revocation
    auth._lookup = keys.repo.get_by_lookup
    with pytest.raises(Unauthorized):
        await auth.authenticate(key, FRIEND)


async def test_a_key_created_after_a_failed_try_works_once_keys_change(keys: Keys) -> None:
    clock = Clock()
    auth = auth_for(keys, clock)
    key = generate_api_key()
    with pytest.raises(Unauthorized):
        await auth.authenticate(key, FRIEND)  # no such key yet: remembered as bad for a few seconds
    async with keys.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO api_keys (id, org_id, lookup_id, key_hash, name, permissions, created_at) "
            "VALUES ('key_late', ?, ?, ?, 'late', 'read', '2026-01-01T00:00:00Z')",
            (keys.org_id, lookup_id(key), hash_key(key)),
        )
    with pytest.raises(Unauthorized):
        await auth.authenticate(key, FRIEND)
    auth.clear()  # the change counter moved: the negative cache does not hold the new key back
    assert (await auth.authenticate(key, FRIEND)).key_id == "key_late"
