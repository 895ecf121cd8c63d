"""How long one 1-row delete takes in arclite over HTTP, on a measurement of 100k rows.

`pytest perf/test_bench_arclite_delete.py` prints the distribution of 20 deletes (each removes a different
row, confirm=true, answered after the DuckDB COMMIT and its WAL fsync); the median is the number quoted
for issue 9. With `--benchmark-disable` it runs once, as a correctness test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import ormsgpack
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tests.procs import ArcLite

ROWS = 100_000
T0 = 1_767_225_600_000_000
DB = "bench"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArcLite, httpx.Client]]:
    arc = ArcLite(Path(tmp_path_factory.mktemp("arclite-del-bench")), extra=["--delete-enabled"])
    client = httpx.Client(timeout=60)
    try:
        for start in range(0, ROWS, 25_000):
            n = range(start, start + 25_000)
            cols = {"time": [T0 + i for i in n], "org_id": [f"org_{i % 4}" for i in n],
                    "id": [f"mem_{i:08d}" for i in n], "content": [f"memory number {i} " + "x" * 80 for i in n],
                    "importance": [0.5] * len(n)}
            payload = ormsgpack.packb({"m": "events", "columns": cols})
            headers = {"Content-Type": "application/msgpack", "x-arc-database": DB}
            r = client.post(f"{arc.url}/api/v1/write/msgpack", content=payload, headers=headers)
            assert r.status_code == 204, r.text
        yield arc, client
    finally:
        client.close()
        arc.stop()


def test_one_row_delete_over_http(loaded: tuple[ArcLite, httpx.Client], benchmark: BenchmarkFixture) -> None:
    arc, client = loaded
    ids = itertools.count(7, 997)
    deleted: list[int] = []

    def one() -> None:
        i = next(ids)
        body = {"database": DB, "measurement": "events", "confirm": True,
                "where": f"org_id = 'org_{i % 4}' AND id = 'mem_{i:08d}'"}
        r = client.post(f"{arc.url}/api/v1/delete", json=body)
        assert r.status_code == 200, r.text
        deleted.append(r.json()["deleted_count"])

    benchmark.pedantic(one, rounds=20, iterations=1, warmup_rounds=1)
    assert deleted and all(n == 1 for n in deleted)
    r = client.post(f"{arc.url}/api/v1/query", json={"sql": "SELECT count(*) FROM events"},
                    headers={"x-arc-database": DB})
    assert r.json()["data"] == [[ROWS - len(deleted)]]
