"""Journal group commit on a real SQLite file: N concurrent single-row appends share fsyncs.

The figure to read is rows per second for 200 concurrent appends, against the same rows in one append
(the best a group can do). As a test it checks every row is stored once and duplicates are refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from memtrace.journal import Journal, JournalConfig
from memtrace.rows import MemoryRow

BASE_US = time.time_ns() // 1000  # inside the dedup window
CONCURRENT = 200


def row(n: int) -> MemoryRow:
    return MemoryRow(
        id=f"mem_01JABCDEFGHJKMNPQR{n:08d}", time_us=BASE_US + n, org_id="org_bench", agent_id=f"agent_{n % 9}",
        session_id=f"sess_{n % 30}", memory_type="episodic", event_type="tool_call",
        content=f"row {n} of the journal benchmark", metadata_json="{}", tags_csv="perf", dedup_key=f"k{n}",
        importance=0.5, parent_id="",
    )


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def journal(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[Journal]:
    config = JournalConfig(tmp_path / "journal.db", dedup_window_s=86_400, retention_s=10.0,
                           max_pending_per_org=10_000_000)
    j = loop.run_until_complete(Journal.open(config))
    yield j
    loop.run_until_complete(j.close())


class Counter:
    n = 0

    def take(self, k: int) -> range:
        start = self.n
        self.n += k
        return range(start, start + k)


@pytest.mark.benchmark(group="journal")
def test_bench_group_commit_concurrent_singles(benchmark: BenchmarkFixture, journal: Journal,
                                                loop: asyncio.AbstractEventLoop) -> None:
    counter = Counter()

    async def burst() -> int:
        results = await asyncio.gather(*(journal.append("org_bench", [row(n)]) for n in counter.take(CONCURRENT)))
        return sum(len(r.stored) for r in results)

    groups_before = journal.stats.groups
    stored = benchmark(lambda: loop.run_until_complete(burst()))
    assert stored == CONCURRENT
    benchmark.extra_info["rows_per_round"] = CONCURRENT
    rounds = counter.n // CONCURRENT
    assert journal.stats.groups - groups_before < rounds * CONCURRENT  # rows did share commits
    dup = loop.run_until_complete(journal.append("org_bench", [row(0)]))
    assert dup.duplicate_indexes == [0] and not dup.stored


@pytest.mark.benchmark(group="journal")
def test_bench_one_append_of_200(benchmark: BenchmarkFixture, journal: Journal,
                                 loop: asyncio.AbstractEventLoop) -> None:
    counter = Counter()

    async def one() -> int:
        result = await journal.append("org_bench", [row(n) for n in counter.take(CONCURRENT)])
        return len(result.stored)

    assert benchmark(lambda: loop.run_until_complete(one())) == CONCURRENT
    benchmark.extra_info["rows_per_round"] = CONCURRENT
