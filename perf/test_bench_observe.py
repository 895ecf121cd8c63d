"""Per-request cost of the observation middleware (request id, counter, histogram, access-line check).

Compares one ASGI request through a do-nothing app, bare and wrapped in `Observed`, with the samples in
mmap'd files as under `memtrace serve` (multiprocess mode). The difference is the middleware overhead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from memtrace import metrics
from memtrace.api.observe import ROUTE_KEY, Observed
from memtrace.logs import JsonFormatter

SCOPE_HEADERS = [(b"host", b"localhost"), (b"x-api-key", b"mtk_x"), (b"content-type", b"application/json")]


async def inner(scope: Any, receive: Any, send: Any) -> None:
    scope[ROUTE_KEY] = "/api/v1/memories/:memory_id"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def send(message: Any) -> None:
    return None


def run_once(app: Any) -> None:
    """Drive one request without an event loop: nothing here suspends, so one send() completes it."""
    scope = {"type": "http", "method": "GET", "path": "/api/v1/memories/x", "headers": SCOPE_HEADERS}
    coro = app(scope, receive, send)
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("the request suspended")


@pytest.fixture
def multiproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    monkeypatch.setattr(metrics, "_current", None)
    monkeypatch.setattr(metrics, "_registry", None)
    yield
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    metrics._current = None
    metrics.values.ValueClass = metrics.values.get_value_class()  # type: ignore[no-untyped-call]


@pytest.mark.benchmark(group="observe")
def test_bench_bare_request(benchmark: BenchmarkFixture) -> None:
    benchmark(run_once, inner)


@pytest.mark.benchmark(group="observe")
def test_bench_observed_request(benchmark: BenchmarkFixture, multiproc: None) -> None:
    app = Observed(inner)
    benchmark(run_once, app)
    assert b"/api/v1/memories/:memory_id" in metrics.exposition()


@pytest.mark.benchmark(group="observe")
def test_bench_observed_request_with_json_access_line(benchmark: BenchmarkFixture, multiproc: None,
                                                      tmp_path: Path) -> None:
    """Same, with the access line on (log_level info) in JSON, written to a file."""
    handler = logging.FileHandler(tmp_path / "access.log")
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("memtrace.access")
    saved = (access.level, access.propagate)
    access.setLevel(logging.INFO)
    access.propagate = False
    access.addHandler(handler)
    try:
        benchmark(run_once, Observed(inner))
    finally:
        access.removeHandler(handler)
        access.setLevel(saved[0])
        access.propagate = saved[1]
        handler.close()
    assert '"route":"/api/v1/memories/:memory_id"' in (tmp_path / "access.log").read_text()
