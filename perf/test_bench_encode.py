"""Encode cost of Arc's columnar payload: msgspec vs ormsgpack, column build, and the full encode_rows.

Run with `pytest perf/test_bench_encode.py` for numbers (recorded in memtrace/arc/encode.py's
docstring); with `--benchmark-disable` each benchmark runs once, as a correctness test.
"""

from __future__ import annotations

from typing import Any

import msgspec
import ormsgpack
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from memtrace.arc.encode import COLUMNS, build_columns, encode_rows
from memtrace.rows import MemoryRow

N_ROWS = 10_000
BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs


def make_rows(n: int = N_ROWS) -> list[MemoryRow]:
    return [
        MemoryRow(
            id=f"mem_01JABCDEFGHJKMNPQRST{i:06d}",
            time_us=BASE_US + i,
            org_id="org_bench",
            agent_id=f"agent_{i % 7}",
            session_id=f"sess_{i % 100}" if i % 3 else "",
            memory_type="episodic",
            event_type="tool_call",
            content=f"the agent looked at file number {i} and decided to refactor it",
            metadata_json='{"tool":"grep","ok":true}',
            tags_csv="perf,bench",
            dedup_key=f"k:{i}" if i % 2 else "",
            importance=(i % 10) / 10,
            parent_id="",
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def rows() -> list[MemoryRow]:
    return make_rows()


@pytest.fixture(scope="module")
def payload(rows: list[MemoryRow]) -> dict[str, Any]:
    return {"m": "events", "columns": build_columns(rows)}


_msgspec_encoder = msgspec.msgpack.Encoder()


def test_both_encoders_decode_to_the_same_payload(payload: dict[str, Any]) -> None:
    via_msgspec = msgspec.msgpack.decode(_msgspec_encoder.encode(payload))
    via_ormsgpack = ormsgpack.unpackb(ormsgpack.packb(payload))
    assert via_msgspec == via_ormsgpack == payload


def test_encode_rows_payload_shape(rows: list[MemoryRow]) -> None:
    decoded = msgspec.msgpack.decode(encode_rows("events", rows))
    assert decoded["m"] == "events"
    columns = decoded["columns"]
    assert tuple(columns) == COLUMNS
    assert all(len(values) == N_ROWS for values in columns.values())
    assert all(isinstance(t, int) for t in columns["time"])
    assert all(type(v) is float for v in columns["importance"])  # 0.0, never 0
    assert columns["id"][5] == rows[5].id and columns["time"][5] == rows[5].time_us


@pytest.mark.benchmark(group="encode-10k")
def test_bench_encode_msgspec(benchmark: BenchmarkFixture, payload: dict[str, Any]) -> None:
    out = benchmark(_msgspec_encoder.encode, payload)
    assert len(out) > N_ROWS


@pytest.mark.benchmark(group="encode-10k")
def test_bench_encode_ormsgpack(benchmark: BenchmarkFixture, payload: dict[str, Any]) -> None:
    out = benchmark(ormsgpack.packb, payload)
    assert len(out) > N_ROWS


@pytest.mark.benchmark(group="build-10k")
def test_bench_build_columns(benchmark: BenchmarkFixture, rows: list[MemoryRow]) -> None:
    columns = benchmark(build_columns, rows)
    assert len(columns["id"]) == N_ROWS


@pytest.mark.benchmark(group="build-10k")
def test_bench_build_columns_zip(benchmark: BenchmarkFixture, rows: list[MemoryRow]) -> None:
    """The transposition alternative, kept to show why build_columns uses one comprehension per column."""

    def build() -> list[tuple[Any, ...]]:
        return list(zip(*(msgspec.structs.astuple(r) for r in rows), strict=True))

    columns = benchmark(build)
    assert len(columns) == len(MemoryRow.__struct_fields__)  # the row's own fields; build_columns adds `terms`


@pytest.mark.benchmark(group="full-10k")
def test_bench_encode_rows(benchmark: BenchmarkFixture, rows: list[MemoryRow]) -> None:
    out = benchmark(encode_rows, "events", rows)
    assert len(out) > N_ROWS
