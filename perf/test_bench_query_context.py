"""Read-path CPU outside Arc: SQL building, parsing Arc's answer, and rendering a 1,000-memory context."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from memtrace.memory import query
from memtrace.memory.context import render_context
from memtrace.rows import MemoryFilter, MemoryRow
from memtrace.timeutil import format_us

NOW_US = 1_767_225_600_000_000
TYPES = ("episodic", "decision", "session", "entity")


def rows(n: int) -> list[MemoryRow]:
    return [
        MemoryRow(
            id=f"mem_01JABCDEFGHJKMNPQRST{i:06d}",
            time_us=NOW_US + i * 1000,
            org_id="org_bench",
            agent_id=f"agent_{i % 7}",
            session_id="sess_bench",
            memory_type=TYPES[i % 4],
            event_type="error" if i % 17 == 0 else "tool_call",
            content=f"step {i}: crawled https://example.com/page/{i} and found {i % 9} products\nnext line",
            metadata_json='{"reasoning":"only two pages deep"}' if i % 4 == 1 else '{"tool":"grep"}',
            tags_csv="crawl,perf",
            dedup_key=f"k{i}",
            importance=(i % 10) / 10,
            parent_id="",
        )
        for i in range(n)
    ]


FULL = MemoryFilter(
    agent_id="agent_1", session_id="sess_bench", memory_types=("episodic", "decision"),
    event_types=("tool_call", "error"), tags=("crawl", "perf"), content_contains="50% off 'today'",
    since_us=NOW_US - 86_400_000_000, until_us=NOW_US, min_importance=0.3,
)


@pytest.mark.benchmark(group="sql-build")
def test_bench_select_memories_all_filters(benchmark: BenchmarkFixture) -> None:
    sql = benchmark(query.select_memories, "events", "org_bench", FULL, "desc", 101, 0)
    assert "org_id = 'org_bench'" in sql and '"events"' in sql
    # The quoted search text never reaches the SQL as text: it travels hex-encoded.
    assert "today" not in sql and FULL.content_contains.lower().encode().hex() in sql


@pytest.mark.benchmark(group="sql-build")
def test_bench_select_memories_plain(benchmark: BenchmarkFixture) -> None:
    sql = benchmark(query.select_memories, "events", "org_bench", MemoryFilter(), "desc", 101, 0)
    assert sql.count("org_id = 'org_bench'") == 2


def arc_answer(n: int) -> tuple[list[str], list[list[Any]]]:
    cols = list(query.COLUMNS)
    data = []
    for r in rows(n):
        values = [getattr(r, "time_us" if c == "time" else c) for c in cols]
        values[1] = format_us(r.time_us)
        data.append(values)
    return cols, data


@pytest.mark.benchmark(group="arc-parse")
def test_bench_rows_from_arc_1000(benchmark: BenchmarkFixture) -> None:
    cols, data = arc_answer(1000)
    parsed = benchmark(query.rows_from_arc, cols, data)
    assert len(parsed) == 1000 and parsed[5].time_us == NOW_US + 5000


@pytest.mark.benchmark(group="context-1000")
def test_bench_render_context_1000(benchmark: BenchmarkFixture) -> None:
    memories = rows(1000)
    out = benchmark(render_context, "sess_bench", memories, None)
    assert out.memory_count == 1000 and out.context.startswith("## Session Context (sess_bench)")
    assert "### Recent Actions (" in out.context and "### Errors (" in out.context


@pytest.mark.benchmark(group="context-1000")
def test_bench_render_context_1000_budget(benchmark: BenchmarkFixture) -> None:
    memories = rows(1000)
    out = benchmark(render_context, "sess_bench", memories, 2000)
    assert out.truncated and len(out.context) <= 4 * 2000 + 400 and "more)" in out.context
