"""Per-request CPU of the write path, piece by piece: request decode, dedup key, row build, response encode.

`make bench` prints the figures; with `--benchmark-disable` each runs once and checks its result.
The single-memory figures are per call; the batch figures are per 1,000-memory request.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from memtrace.api.memories import parse_create
from memtrace.config import LimitsSettings
from memtrace.memory.build import build_rows, to_memory
from memtrace.memory.dedup import dedup_key
from memtrace.memory.model import BatchCreated, NewMemory

NOW_US = 1_767_225_600_000_000
_json = msgspec.json.Encoder()


def item(n: int) -> dict[str, Any]:
    return {
        "agent_id": f"agent_{n % 50}",
        "session_id": f"sess_{n % 200}",
        "event_type": "tool_call",
        "content": f"item {n}: the agent read a file and decided to refactor it " * 2,
        "tags": ["load", "perf"],
        "metadata": {"tool": "grep", "n": n},
        "importance": 0.7,
    }


SINGLE = _json.encode(item(1))
BATCH = _json.encode({"memories": [item(n) for n in range(1000)]})
LIMITS = LimitsSettings()


@pytest.mark.benchmark(group="request-decode")
def test_bench_decode_single(benchmark: BenchmarkFixture) -> None:
    items, batch = benchmark(parse_create, SINGLE, 1000)
    assert not batch and items[0].agent_id == "agent_1"


@pytest.mark.benchmark(group="request-decode")
def test_bench_decode_batch_1000(benchmark: BenchmarkFixture) -> None:
    items, batch = benchmark(parse_create, BATCH, 1000)
    assert batch and len(items) == 1000 and items[999].session_id == "sess_199"


@pytest.mark.benchmark(group="dedup-key")
def test_bench_dedup_key_short(benchmark: BenchmarkFixture) -> None:
    key = benchmark(dedup_key, "agent_1", "tool_call", "the agent read a file")
    assert len(key) == 32 and key == dedup_key("agent_1", "tool_call", "the agent read a file")


@pytest.mark.benchmark(group="dedup-key")
def test_bench_dedup_key_long_multibyte(benchmark: BenchmarkFixture) -> None:
    content = "é" * 5000  # forces the UTF-8-safe 200-byte cut
    key = benchmark(dedup_key, "agent_1", "tool_call", content)
    assert key == dedup_key("agent_1", "tool_call", "é" * 100)


@pytest.mark.benchmark(group="build-rows")
def test_bench_build_rows_single(benchmark: BenchmarkFixture) -> None:
    items = [msgspec.json.decode(SINGLE, type=NewMemory)]
    rows = benchmark(build_rows, "org_bench", items, NOW_US, LIMITS, False)
    assert rows[0].org_id == "org_bench" and rows[0].tags_csv == "load,perf"


@pytest.mark.benchmark(group="build-rows")
def test_bench_build_rows_batch_1000(benchmark: BenchmarkFixture) -> None:
    items, _ = parse_create(BATCH, 1000)
    rows = benchmark(build_rows, "org_bench", items, NOW_US, LIMITS, True)
    assert len(rows) == 1000 and len({r.id for r in rows}) == 1000


@pytest.mark.benchmark(group="response-encode")
def test_bench_encode_response_single(benchmark: BenchmarkFixture) -> None:
    row = build_rows("org_bench", [msgspec.json.decode(SINGLE, type=NewMemory)], NOW_US, LIMITS, False)[0]
    out = benchmark(lambda: _json.encode(to_memory(row)))
    assert msgspec.json.decode(out)["id"] == row.id


@pytest.mark.benchmark(group="response-encode")
def test_bench_encode_response_batch_1000(benchmark: BenchmarkFixture) -> None:
    items, _ = parse_create(BATCH, 1000)
    rows = build_rows("org_bench", items, NOW_US, LIMITS, True)

    def encode() -> bytes:
        memories = [to_memory(r) for r in rows]
        return _json.encode(BatchCreated(memories=memories, count=len(memories), duplicates=0, skipped=[]))

    out = benchmark(encode)
    assert msgspec.json.decode(out)["count"] == 1000
