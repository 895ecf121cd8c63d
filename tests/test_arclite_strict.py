"""arclite is as strict as Arc by default wherever Memtrace depends on Arc's behaviour (docs/arc.md lists each
behaviour with its test): a delete never touches rows still in the ingest buffer, a query without ORDER BY has
no order, and rows become queryable only after Arc's buffer age. The lenient modes exist only as flags."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ormsgpack
import pytest

from memtrace.arclite.__main__ import parse_args
from tests.procs import ArcLite
from tests.waiting import wait_until

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
N = 200


def db() -> str:
    return "s" + uuid.uuid4().hex[:12]


def write(arc: ArcLite, database: str, orgs: list[str], start: int = 0) -> None:
    n = len(orgs)
    doc = {"m": "events", "columns": {"time": [T0 + start + i for i in range(n)], "org_id": orgs,
                                      "v": [start + i for i in range(n)]}}
    resp = httpx.post(f"{arc.url}/api/v1/write/msgpack", content=ormsgpack.packb(doc),
                      headers={"Content-Type": "application/msgpack", "x-arc-database": database})
    assert resp.status_code == 204, resp.text


def values(arc: ArcLite, database: str, sql: str) -> list[Any]:
    resp = httpx.post(f"{arc.url}/api/v1/query", json={"sql": sql}, headers={"x-arc-database": database})
    assert resp.status_code == 200, resp.text
    return [row[0] for row in resp.json()["data"]]


def delete(arc: ArcLite, database: str, where: str, **flags: bool) -> dict[str, Any]:
    resp = httpx.post(f"{arc.url}/api/v1/delete", json={"database": database, "measurement": "events",
                                                        "where": where, **flags})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def flush(arc: ArcLite) -> None:
    assert httpx.post(f"{arc.url}/api/v1/write/line-protocol/flush").status_code == 200


@pytest.fixture(scope="module")
def buffered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArcLite]:
    """Rows wait in the buffer until the test flushes (10 minutes otherwise)."""
    arc = ArcLite(tmp_path_factory.mktemp("strict"), extra=["--delete-enabled", "--buffer-age-ms", "600000"])
    try:
        yield arc
    finally:
        arc.stop()


def test_defaults_are_arcs() -> None:
    """Without flags: Arc's max_buffer_age_ms (5000), deletes blind to the buffer, unordered results shuffled."""
    args = parse_args([])
    assert (args.buffer_age_ms, args.delete_buffered, args.keep_order) == (5000, False, False)


def test_a_delete_leaves_buffered_rows_and_they_appear_at_the_flush(buffered: ArcLite) -> None:
    """Arc's delete (internal/api/delete.go) reads only its Parquet files: buffered rows are neither counted by a
    dry run nor deleted, and become queryable at the flush."""
    name = db()
    write(buffered, name, ["a", "b"] * 3)
    flush(buffered)
    write(buffered, name, ["a", "b"] * 2, start=100)  # still buffered
    assert sorted(values(buffered, name, "SELECT org_id FROM events")) == ["a"] * 3 + ["b"] * 3
    assert delete(buffered, name, "org_id = 'a'", dry_run=True)["deleted_count"] == 3
    assert delete(buffered, name, "org_id = 'a'", confirm=True)["deleted_count"] == 3
    assert values(buffered, name, "SELECT count(*) FROM events WHERE org_id = 'a'") == [0]
    flush(buffered)
    assert sorted(values(buffered, name, "SELECT v FROM events WHERE org_id = 'a'")) == [100, 102]
    assert delete(buffered, name, "org_id = 'a'", confirm=True)["deleted_count"] == 2  # a second delete does


def test_a_buffered_only_measurement_has_nothing_to_delete(buffered: ArcLite) -> None:
    name = db()
    write(buffered, name, ["a"] * 3)
    body = delete(buffered, name, "org_id = 'a'", confirm=True)
    assert (body["deleted_count"], body["affected_files"]) == (0, 0)
    flush(buffered)
    assert values(buffered, name, "SELECT count(*) FROM events") == [3]


def test_rows_without_order_by_come_back_in_no_particular_order(buffered: ArcLite) -> None:
    """Arc 26.09 no longer preserves insertion order: a client that needs an order must say ORDER BY."""
    name = db()
    write(buffered, name, ["a"] * N)
    flush(buffered)
    inserted = list(range(N))
    answers = [values(buffered, name, "SELECT v FROM events") for _ in range(2)]
    assert all(sorted(a) == inserted for a in answers)
    assert all(a != inserted for a in answers) and answers[0] != answers[1]
    assert values(buffered, name, "SELECT v FROM events ORDER BY v") == inserted
    assert values(buffered, name, "SELECT v FROM events ORDER BY v DESC LIMIT 3") == [N - 1, N - 2, N - 3]
    union = "SELECT v FROM events WHERE v < 3 UNION ALL SELECT v FROM events WHERE v >= 197 ORDER BY v"
    assert values(buffered, name, union) == [0, 1, 2, 197, 198, 199]
    # an ORDER BY inside a subquery orders nothing outside it
    nested = values(buffered, name, "SELECT v FROM (SELECT v FROM events ORDER BY v)")
    assert sorted(nested) == inserted and nested != inserted


def test_rows_become_queryable_only_after_the_buffer_age(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path, extra=["--buffer-age-ms", "800"])
    try:
        name = db()
        written = time.monotonic()
        write(arc, name, ["a"] * 3)
        assert values(arc, name, "SELECT count(*) FROM events") == []  # no such table yet, as in Arc
        wait_until(lambda: values(arc, name, "SELECT count(*) FROM events") == [3], "buffered rows queryable",
                   interval=0.02)
        assert time.monotonic() - written >= 0.8
    finally:
        arc.stop()


def test_lenient_flags_restore_the_old_behaviour(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path, extra=["--delete-enabled", "--buffer-age-ms", "600000", "--delete-buffered",
                                   "--keep-order"])
    try:
        name = db()
        write(arc, name, ["a"] * N)
        flush(arc)
        assert values(arc, name, "SELECT v FROM events") == list(range(N))
        write(arc, name, ["a"] * 2, start=N)
        assert delete(arc, name, "org_id = 'a'", confirm=True)["deleted_count"] == N + 2
        flush(arc)
        assert values(arc, name, "SELECT count(*) FROM events") == [0]
    finally:
        arc.stop()


def test_the_cli_names_the_flags() -> None:
    import subprocess

    shown = " ".join(subprocess.run([sys.executable, "-m", "memtrace.arclite", "--help"], capture_output=True,
                                    text=True, check=True).stdout.split())
    assert "--delete-buffered" in shown and "--keep-order" in shown and "default 5000" in shown
