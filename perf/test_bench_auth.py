"""Cached key check (a dict lookup) versus an uncached argon2id verify, on a real metadata DB.

`make bench` prints both; the ratio is what matters (expect three to four orders of magnitude).
As a test (`--benchmark-disable`) it checks that both paths accept the key and the cache is hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from memtrace.auth import Authenticator
from memtrace.keys import lookup_id, verify_key
from memtrace.metadata.db import MetadataDB, open_metadata
from memtrace.metadata.models import KeyRecord

CALLS_PER_ROUND = 1000


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def keyed(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[tuple[MetadataDB, str, KeyRecord]]:
    async def setup() -> tuple[MetadataDB, str, KeyRecord]:
        db = await open_metadata(tmp_path / "m.db")
        org = await db.orgs.create("bench")
        _, key = await db.api_keys.create(org.id, "bench")
        lid = lookup_id(key)
        assert lid is not None
        record = await db.api_keys.get_by_lookup(lid)
        assert record is not None
        return db, key, record

    db, key, record = loop.run_until_complete(setup())
    yield db, key, record
    loop.run_until_complete(db.close())


def test_cached_auth(benchmark: BenchmarkFixture, keyed: tuple[MetadataDB, str, KeyRecord],
                     loop: asyncio.AbstractEventLoop) -> None:
    db, key, _ = keyed
    auth = Authenticator(db.api_keys.get_by_lookup, cache_size=100, ttl_s=300)

    async def many() -> str:
        principal = None
        for _ in range(CALLS_PER_ROUND):
            principal = await auth.authenticate(key)
        assert principal is not None
        return principal.org_id

    org_id = loop.run_until_complete(many())
    benchmark.extra_info["calls_per_round"] = CALLS_PER_ROUND
    assert benchmark(lambda: loop.run_until_complete(many())) == org_id
    assert auth.misses == 1  # one argon2 verify, then only cache hits


def test_uncached_argon2_verify(benchmark: BenchmarkFixture, keyed: tuple[MetadataDB, str, KeyRecord]) -> None:
    _, key, record = keyed
    assert benchmark(verify_key, record.key_hash, key) is True
    assert verify_key(record.key_hash, key[:-1] + ("A" if key[-1] != "A" else "B")) is False
