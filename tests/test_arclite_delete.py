"""arclite's Arc delete API over real HTTP: refusals, dry runs, tenancy, buffered rows, durability, hostile SQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ormsgpack
import pytest

from tests.procs import ArcLite

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
THRESHOLD = 10
MAX_ROWS = 50
DISABLED = "Delete operations are disabled. Set delete.enabled=true in arc.toml to enable."
ENABLED = ["--delete-enabled", "--delete-confirmation-threshold", str(THRESHOLD),
           "--delete-max-rows-per-delete", str(MAX_ROWS)]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArcLite]:
    proc = ArcLite(tmp_path_factory.mktemp("arclite-del"), extra=ENABLED)
    yield proc
    assert proc.stop() == 0, proc.output()


def dbname() -> str:
    return "d" + uuid.uuid4().hex[:12]


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def write(c: httpx.Client, arc: ArcLite, db: str, cols: dict[str, list[Any]], m: str = "events",
          token: str | None = None) -> None:
    r = c.post(f"{arc.url}/api/v1/write/msgpack", content=ormsgpack.packb({"m": m, "columns": cols}),
               headers={"Content-Type": "application/msgpack", "x-arc-database": db, **auth(token)})
    assert r.status_code == 204, r.text


def events(orgs: list[str], n: int, start: int = 0) -> dict[str, list[Any]]:
    """`n` rows per org with identical content, ids and times: only `org_id` tells them apart."""
    cols: dict[str, list[Any]] = {"time": [], "org_id": [], "id": [], "content": [], "importance": []}
    for org in orgs:
        for i in range(start, start + n):
            cols["time"].append(T0 + i)
            cols["org_id"].append(org)
            cols["id"].append(f"m{i}")
            cols["content"].append(f"same text {i}")
            cols["importance"].append(0.5)
    return cols


def flush(c: httpx.Client, arc: ArcLite, token: str | None = None) -> None:
    r = c.post(f"{arc.url}/api/v1/write/line-protocol/flush", headers=auth(token))
    assert r.status_code == 200, r.text


def select(c: httpx.Client, arc: ArcLite, db: str, sql: str, token: str | None = None) -> list[list[Any]]:
    r = c.post(f"{arc.url}/api/v1/query", json={"sql": sql}, headers={"x-arc-database": db, **auth(token)})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def per_org(c: httpx.Client, arc: ArcLite, db: str, m: str = "events") -> dict[str, int]:
    return {org: n for org, n in select(c, arc, db, f"SELECT org_id, count(*) FROM {m} GROUP BY org_id")}


def delete(c: httpx.Client, arc: ArcLite, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    return c.post(f"{arc.url}/api/v1/delete", json=body, headers=auth(token))


def refused(r: httpx.Response, status: int = 400) -> str:
    """The error text of an Arc-shaped refusal (Arc's DeleteResponse with success false)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["deleted_count"] == 0 and body["files_processed"] is None
    return str(body["error"])


def test_disabled_by_default_403_with_arcs_text(client: httpx.Client, tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d")
    try:
        db = dbname()
        write(client, arc, db, events(["a"], 3))
        r = delete(client, arc, {"database": db, "measurement": "events", "where": "org_id = 'a'", "confirm": True})
        assert refused(r, 403) == DISABLED
        cfg = client.get(f"{arc.url}/api/v1/delete/config").json()
        assert cfg["enabled"] is False
        assert (cfg["confirmation_threshold"], cfg["max_rows_per_delete"]) == (10_000, 1_000_000)
        assert per_org(client, arc, db) == {"a": 3}
    finally:
        assert arc.stop() == 0


def test_config_reports_flags(client: httpx.Client, arc: ArcLite) -> None:
    cfg = client.get(f"{arc.url}/api/v1/delete/config").json()
    assert cfg["enabled"] is True
    assert (cfg["confirmation_threshold"], cfg["max_rows_per_delete"]) == (THRESHOLD, MAX_ROWS)
    assert set(cfg) >= {"implementation", "performance_impact"}


def test_dry_run_counts_and_deletes_nothing(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    write(client, arc, db, events(["a", "b"], 4))
    r = delete(client, arc, {"database": db, "measurement": "events", "where": "org_id = 'a' AND id <> 'm0'",
                             "dry_run": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["dry_run"] is True
    assert (body["deleted_count"], body["affected_files"], body["rewritten_files"]) == (3, 1, 0)
    assert body["files_processed"] == [f"{db}.duckdb"]
    assert isinstance(body["execution_time_ms"], int)
    assert per_org(client, arc, db) == {"a": 4, "b": 4}


def test_confirm_deletes_and_rows_are_gone(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    write(client, arc, db, events(["a"], 5))
    r = delete(client, arc, {"database": db, "measurement": "events", "where": "id IN ('m1', 'm3')",
                             "confirm": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["success"], body["dry_run"], body["deleted_count"], body["rewritten_files"]) == (True, False, 2, 1)
    assert "error" not in body
    assert select(client, arc, db, "SELECT id FROM events ORDER BY id") == [["m0"], ["m2"], ["m4"]]
    again = delete(client, arc, {"database": db, "measurement": "events", "where": "id IN ('m1', 'm3')",
                                 "confirm": True}).json()
    assert (again["success"], again["deleted_count"], again["files_processed"]) == (True, 0, [])


def test_two_orgs_in_one_measurement_only_one_loses_rows(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    write(client, arc, db, events(["a", "b"], 6))
    where = "org_id = 'a' AND id IN ('m0', 'm1', 'm2') AND time < '2027-01-01'"
    r = delete(client, arc, {"database": db, "measurement": "events", "where": where, "confirm": True})
    assert r.json()["deleted_count"] == 3, r.text
    assert per_org(client, arc, db) == {"a": 3, "b": 6}
    assert select(client, arc, db, "SELECT id FROM events WHERE org_id = 'b' ORDER BY id") == \
        [[f"m{i}"] for i in range(6)]


def test_unknown_database_or_measurement_is_zero_and_creates_nothing(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    r = delete(client, arc, {"database": db, "measurement": "events", "where": "x = 1", "confirm": True})
    assert r.status_code == 200 and r.json()["deleted_count"] == 0, r.text
    assert not (arc.data_dir / f"{db}.duckdb").exists()
    write(client, arc, db, events(["a"], 1))
    r = delete(client, arc, {"database": db, "measurement": "other", "where": "x = 1", "dry_run": True})
    assert r.status_code == 200 and r.json()["deleted_count"] == 0, r.text


def test_confirmation_rules_and_thresholds(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    write(client, arc, db, events(["a"], THRESHOLD + 2))
    base = {"database": db, "measurement": "events"}
    assert refused(delete(client, arc, {**base, "where": "id = 'm0'"})) == (
        "Confirmation required for delete operation. Set confirm=true or use dry_run=true to preview.")
    for where in ("1=1", "true", "2 > 1", "NOT false"):
        msg = refused(delete(client, arc, {**base, "where": where, "dry_run": True}))
        assert msg == "Full table delete detected (WHERE 1=1). Set confirm=true to proceed.", where
    msg = refused(delete(client, arc, {**base, "where": "org_id = 'a'", "dry_run": True}))
    assert msg == f"Delete would affect {THRESHOLD + 2} rows (threshold: {THRESHOLD}). Set confirm=true to proceed."
    ok = delete(client, arc, {**base, "where": "1=1", "dry_run": True, "confirm": True})
    assert ok.status_code == 200 and ok.json()["deleted_count"] == THRESHOLD + 2, ok.text
    assert per_org(client, arc, db) == {"a": THRESHOLD + 2}

    write(client, arc, db, events(["b"], MAX_ROWS))
    over = f"Delete would affect {THRESHOLD + 2 + MAX_ROWS} rows, exceeding maximum of {MAX_ROWS}. " \
           "Adjust delete.max_rows_per_delete in arc.toml or refine WHERE clause."
    assert refused(delete(client, arc, {**base, "where": "1=1", "confirm": True})) == over
    assert refused(delete(client, arc, {**base, "where": "1=1", "dry_run": True, "confirm": True})) == over
    assert per_org(client, arc, db) == {"a": THRESHOLD + 2, "b": MAX_ROWS}
    r = delete(client, arc, {**base, "where": "org_id = 'b'", "confirm": True})
    assert r.status_code == 200 and r.json()["deleted_count"] == MAX_ROWS, r.text
    assert per_org(client, arc, db) == {"a": THRESHOLD + 2}


HOSTILE = [
    "1=1; DROP TABLE x",
    "org_id = 'a'; DROP TABLE x",
    "org_id = 'a' OR 1=1 --",
    "org_id = 'a' /* hidden */ OR 1=1",
    "org_id = 'a' -- '\n; DROP TABLE x",
    "id IN (SELECT v FROM x)",
    "EXISTS (SELECT 1 FROM x)",
    "id IN (SELECT id FROM events)",
    "id IN (FROM x)",  # DuckDB's FROM-first subquery: no SELECT keyword, still refused by the AST walk
    "EXISTS (FROM read_csv('/etc/passwd'))",
    "id IN (VALUES ('m1'))",
    "id = (TABLE x)",
    "org_id IN (SELECT * FROM read_csv('/etc/passwd'))",
    "EXISTS (SELECT * FROM glob('/etc/*'))",
    "read_csv('/etc/passwd') IS NOT NULL",
    "getenv('HOME') IS NOT NULL",
    "org_id = 'a') OR (1=1",  # balanced into one expression: allowed by the parser, but it is not 'a' only
    "org_id = 'a') UNION SELECT count(*) FROM x WHERE (1=1",
    "org_id = 'a') LIMIT (1",
    "org_id = 'a' ORDER BY 1",
    "org_id = $1",
    "org_id = ?",
    "_arclite_stage.events.org_id = 'a'",
    "x.v = 1",
    "nosuch = 1",
    "importance = 'not a number'",
    "count(*) > 0",
    "WHERE org_id = 'a'",
    "org_id = 'a' RETURNING *",
    "",
    "   ",
    "x" * 65_537,
]


def test_hostile_where_refused_and_nothing_deleted(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    write(client, arc, db, events(["a", "b"], 3))
    write(client, arc, db, {"time": [T0], "v": ["m1"]}, m="x")
    for where in HOSTILE:
        r = delete(client, arc, {"database": db, "measurement": "events", "where": where, "confirm": True})
        if where == "org_id = 'a') OR (1=1":
            # One boolean expression after all; it matches everything, and the operator asked for it.
            assert r.status_code == 200 and r.json()["deleted_count"] == 6, r.text
            write(client, arc, db, events(["a", "b"], 3))
            continue
        assert r.status_code == 400, (where, r.text)
        assert r.json()["success"] is False and r.json()["error"], where
    assert per_org(client, arc, db) == {"a": 3, "b": 3}
    assert select(client, arc, db, "SELECT v FROM x") == [["m1"]]
    # the same words and marks inside string literals are data, as in Arc
    quoted = "content = 'DROP TABLE x; -- SELECT /* */' OR id = E'SET' OR id = $$UNION$$"
    r = delete(client, arc, {"database": db, "measurement": "events", "where": quoted, "confirm": True})
    assert r.status_code == 200 and r.json()["deleted_count"] == 0, r.text


def test_long_id_list_where(client: httpx.Client, arc: ArcLite) -> None:
    """Deleting by ids: ~1,800 quoted ids fit in one `where`."""
    db = dbname()
    write(client, arc, db, events(["a", "b"], 40))
    ids = [f"'m{i}'" for i in range(40)] + [f"'zz{i:024d}'" for i in range(1_700)]
    where = f"org_id = 'a' AND id IN ({', '.join(ids)})"
    assert len(where) > 50_000
    r = delete(client, arc, {"database": db, "measurement": "events", "where": where, "confirm": True})
    assert r.status_code == 200 and r.json()["deleted_count"] == 40, r.text[:300]
    assert per_org(client, arc, db) == {"b": 40}


@pytest.mark.parametrize("body", [
    {"measurement": "events", "where": "a = 1", "confirm": True},
    {"database": "", "measurement": "events", "where": "a = 1", "confirm": True},
    {"database": "db", "where": "a = 1", "confirm": True},
    {"database": "../etc", "measurement": "events", "where": "a = 1", "confirm": True},
    {"database": "a/b", "measurement": "events", "where": "a = 1", "confirm": True},
    {"database": "1db", "measurement": "events", "where": "a = 1", "confirm": True},
    {"database": "db", "measurement": "ev/ents", "where": "a = 1", "confirm": True},
    {"database": "db", "measurement": 'ev"ents', "where": "a = 1", "confirm": True},
    {"database": "db", "measurement": "x" * 129, "where": "a = 1", "confirm": True},
    {"database": "db", "measurement": "events", "where": 5, "confirm": True},
    {"database": "db", "measurement": "events", "where": "a = 1", "confirm": "yes"},
    {"database": ["db"], "measurement": "events", "where": "a = 1", "confirm": True},
])
def test_bad_requests_400(client: httpx.Client, arc: ArcLite, body: dict[str, Any]) -> None:
    assert refused(delete(client, arc, body))


def test_unparseable_bodies_400_or_413(client: httpx.Client, arc: ArcLite) -> None:
    url = f"{arc.url}/api/v1/delete"
    for raw in (b"", b"{", b"[1, 2]", b"null"):
        assert refused(client.post(url, content=raw)).startswith("Invalid request body"), raw
    big = b'{"database": "db", "measurement": "events", "where": "' + b"x" * 270_000 + b'"}'
    refused(client.post(url, content=big), 413)


def test_token_required_when_set(client: httpx.Client, tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d", token="s3cret", extra=["--delete-enabled"])
    try:
        db = dbname()
        write(client, arc, db, events(["a"], 2), token="s3cret")
        flush(client, arc, "s3cret")
        body = {"database": db, "measurement": "events", "where": "id = 'm0'", "confirm": True}
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = client.post(f"{arc.url}/api/v1/delete", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "Invalid or expired token"
            assert client.get(f"{arc.url}/api/v1/delete/config", headers=headers).status_code == 401
        assert select(client, arc, db, "SELECT count(*) FROM events", "s3cret") == [[2]]
        r = client.post(f"{arc.url}/api/v1/delete", json=body, headers={"x-api-key": "s3cret"})
        assert r.status_code == 200 and r.json()["deleted_count"] == 1, r.text
        assert select(client, arc, db, "SELECT id FROM events", "s3cret") == [["m1"]]
    finally:
        assert arc.stop() == 0


def test_buffered_rows_are_deleted_and_never_reappear(client: httpx.Client, tmp_path: Path) -> None:
    """Lenient `--delete-buffered`: rows acknowledged but still in the ingest buffer match a delete like flushed
    ones, through the measurement's schema: its column types and its columns the buffered rows lack (NULL)."""
    arc = ArcLite(tmp_path / "d", extra=[*ENABLED, "--buffer-age-ms", "3000", "--delete-buffered"])
    try:
        db = dbname()
        write(client, arc, db, {**events(["a", "b"], 2), "extra": ["e"] * 4})
        flush(client, arc)  # main table: time, org_id, id, content, importance, extra
        staged = events(["a", "b"], 3, start=10)
        staged["importance"] = ["0.5"] * 6  # a string here: staged as VARCHAR, flushed into a DOUBLE column
        write(client, arc, db, staged)
        assert per_org(client, arc, db) == {"a": 2, "b": 2}  # still buffered
        where = "org_id = 'a' AND extra IS NULL AND importance = 0.5"
        dry = delete(client, arc, {"database": db, "measurement": "events", "where": where, "dry_run": True})
        assert dry.json()["deleted_count"] == 3, dry.text
        r = delete(client, arc, {"database": db, "measurement": "events", "where": where, "confirm": True})
        assert r.json()["deleted_count"] == 3, r.text
        r = delete(client, arc, {"database": db, "measurement": "events", "where": "org_id = 'b' AND id = 'm0'",
                                 "confirm": True})
        assert r.json()["deleted_count"] == 1, r.text
        flush(client, arc)
        assert per_org(client, arc, db) == {"a": 2, "b": 4}
        assert select(client, arc, db, "SELECT id FROM events WHERE org_id = 'a' ORDER BY id") == [["m0"], ["m1"]]
        # a buffered-only measurement (no flushed table yet) is matched too
        write(client, arc, db, events(["a", "b"], 2), m="fresh")
        r = delete(client, arc, {"database": db, "measurement": "fresh", "where": "org_id = 'b'", "confirm": True})
        assert r.json()["deleted_count"] == 2, r.text
        flush(client, arc)
        assert per_org(client, arc, db, "fresh") == {"a": 2}
    finally:
        assert arc.stop() == 0


@pytest.mark.slow
def test_delete_survives_kill9_right_after_200(client: httpx.Client, tmp_path: Path) -> None:
    data = tmp_path / "d"
    arc = ArcLite(data, extra=[*ENABLED, "--buffer-age-ms", "600000", "--delete-buffered"])
    db = dbname()
    write(client, arc, db, events(["a", "b"], 3))
    flush(client, arc)
    write(client, arc, db, events(["a", "b"], 3, start=10))  # still buffered when deleted
    r = delete(client, arc, {"database": db, "measurement": "events", "where": "org_id = 'a'", "confirm": True})
    assert r.status_code == 200 and r.json()["deleted_count"] == 6, r.text
    arc.kill9()
    arc.stop()
    arc2 = ArcLite(data, extra=ENABLED)  # no buffering: leftover staged rows are moved in at start
    try:
        flush(client, arc2)
        assert per_org(client, arc2, db) == {"b": 6}
    finally:
        assert arc2.stop() == 0


def test_stats_count_deleted_rows(client: httpx.Client, arc: ArcLite) -> None:
    db = dbname()
    write(client, arc, db, events(["a", "b"], 4))
    before = client.get(f"{arc.url}/api/v1/arclite/stats").json()
    base = {"database": db, "measurement": "events"}
    assert delete(client, arc, {**base, "where": "org_id = 'a'", "dry_run": True}).status_code == 200
    assert delete(client, arc, {**base, "where": "org_id = 'a' AND id <> 'm0'", "confirm": True}).status_code == 200
    assert delete(client, arc, {**base, "where": "nosuch = 1", "confirm": True}).status_code == 400
    after = client.get(f"{arc.url}/api/v1/arclite/stats").json()
    assert after["deleted_by_database"][db] == {"events": 3}
    assert (after["delete_requests"] - before["delete_requests"], after["rows_deleted"] - before["rows_deleted"]) \
        == (1, 3)


def test_delete_past_timeout_is_504_and_rolled_back(client: httpx.Client, tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d", extra=["--delete-enabled", "--delete-max-rows-per-delete", "100000",
                                         "--query-timeout-s", "0.3"])
    try:
        db = dbname()
        write(client, arc, db, events(["a"], 20_000))
        slow = "list_sum(list_transform(range(3000), lambda x: x * importance)) >= 0"  # ~2 s of CPU here
        r = delete(client, arc, {"database": db, "measurement": "events", "where": slow, "confirm": True})
        assert refused(r, 504) == "Delete timed out; nothing was deleted"
        assert per_org(client, arc, db) == {"a": 20_000}
        r = delete(client, arc, {"database": db, "measurement": "events", "where": "id = 'm5'", "confirm": True})
        assert r.status_code == 200 and r.json()["deleted_count"] == 1, r.text  # the writer thread is free
        write(client, arc, db, events(["b"], 1))
        assert per_org(client, arc, db) == {"a": 19_999, "b": 1}
    finally:
        assert arc.stop() == 0


def test_deletes_racing_buffered_writes_and_flushes_touch_one_org_only(client: httpx.Client, tmp_path: Path) -> None:
    """Writers keep adding identical rows for orgs a and b while the buffer flushes every ~100 ms and org a
    is deleted over and over: no error, b keeps every row, and a final delete leaves no a anywhere."""
    arc = ArcLite(tmp_path / "d", extra=[*ENABLED, "--delete-max-rows-per-delete", "100000",
                                         "--buffer-age-ms", "100", "--delete-buffered"])
    stop = threading.Event()
    written_b: list[int] = []
    errors: list[str] = []

    def writer(offset: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = offset
            while not stop.is_set():
                try:
                    write(c, arc, db, events(["a", "b"], 5, start=i))
                except AssertionError as exc:
                    errors.append(str(exc))
                    return
                written_b.append(5)
                i += 5

    db = dbname()
    try:
        threads = [threading.Thread(target=writer, args=(k * 1_000_000,)) for k in range(2)]
        for t in threads:
            t.start()
        deleted = rounds = 0
        deadline = time.monotonic() + 15
        while rounds < 30 or len(written_b) < 40:
            assert time.monotonic() < deadline, (rounds, len(written_b), errors[:3])
            rounds += 1
            r = delete(client, arc, {"database": db, "measurement": "events", "where": "org_id = 'a'",
                                     "confirm": True})
            assert r.status_code == 200, r.text
            deleted += r.json()["deleted_count"]
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        r = delete(client, arc, {"database": db, "measurement": "events", "where": "org_id = 'a'", "confirm": True})
        assert r.status_code == 200, r.text
        flush(client, arc)
        assert deleted > 0
        assert per_org(client, arc, db) == {"b": sum(written_b)}
    finally:
        stop.set()
        assert arc.stop() == 0
