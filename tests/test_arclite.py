"""arclite over real HTTP in real subprocesses: Arc protocol conformance, refusals, durability, buffering."""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ormsgpack
import pytest
import zstandard
from arc_client import ArcClient
from arc_client.exceptions import ArcQueryError

from tests.procs import ArcLite
from tests.waiting import wait_until

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs


_local = threading.local()
_clients: list[httpx.Client] = []


def http() -> httpx.Client:
    """One keep-alive client per thread: building an httpx client per request costs ~50 ms."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = _local.client = httpx.Client(timeout=30)
        _clients.append(client)
    return client


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def dbname() -> str:
    return "t" + uuid.uuid4().hex[:12]


def post_msgpack(arc: ArcLite, doc: Any, db: str, raw: bytes | None = None, token: str | None = None,
                 ) -> httpx.Response:
    headers = {"Content-Type": "application/msgpack", "x-arc-database": db}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = raw if raw is not None else ormsgpack.packb(doc)
    return http().post(f"{arc.url}/api/v1/write/msgpack", content=body, headers=headers)


def query(arc: ArcLite, sql: str, db: str | None = None, token: str | None = None) -> httpx.Response:
    headers = {"x-arc-database": db} if db else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http().post(f"{arc.url}/api/v1/query", json={"sql": sql}, headers=headers)


def rows(arc: ArcLite, sql: str, db: str, token: str | None = None) -> list[list[Any]]:
    r = query(arc, sql, db, token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["row_count"] == len(body["data"])
    return list(body["data"])


def flush(arc: ArcLite, token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = http().post(f"{arc.url}/api/v1/write/line-protocol/flush", headers=headers)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def arc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArcLite]:
    proc = ArcLite(tmp_path_factory.mktemp("arclite"), extra=["--query-timeout-s", "1"])
    yield proc
    assert proc.stop() == 0, proc.output()


def test_official_client_roundtrip_gzip(arc: ArcLite) -> None:
    db = dbname()
    cols = {"time": [T0, T0 + 1, T0 + 2_500_000], "host": ["a", "b", "c'\"é"], "usage": [0.5, 1.0, 2.25],
            "n": [1, -2, 2**62], "ok": [True, False, None]}
    with ArcClient(host="127.0.0.1", port=arc.port, database=db) as client:
        assert client.config.compression  # gzip by default: the path Memtrace's peers use
        client.write.write_columnar("cpu", cols)
        res = client.query.query("SELECT * FROM cpu ORDER BY time")
        assert res.success and res.columns == ["time", "host", "usage", "n", "ok"]
        assert res.data == [
            ["2026-01-01T00:00:00.000000Z", "a", 0.5, 1, True],
            ["2026-01-01T00:00:00.000001Z", "b", 1.0, -2, False],
            ["2026-01-01T00:00:02.500000Z", "c'\"é", 2.25, 2**62, None],
        ]
        assert db in client.query.list_databases()
        tables = client.query.show_tables(db)
        assert [r[:2] for r in tables.data] == [[db, "cpu"]]
        assert tables.columns[:2] == ["database", "table_name"]
        assert [(m.database, m.measurement) for m in client.query.list_measurements(db)] == [(db, "cpu")]
        assert client.health().status == "ok" and client.ready()


def test_token_auth(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d", token="s3cret")
    try:
        db = dbname()
        with ArcClient(host="127.0.0.1", port=arc.port, token="s3cret", database=db) as client:
            client.write.write_columnar("m", {"time": [T0], "v": [1.5]})
            flush(arc, "s3cret")
            assert client.query.query("SELECT v FROM m").data == [[1.5]]
        with ArcClient(host="127.0.0.1", port=arc.port, token="wrong", database=db) as bad, \
                pytest.raises(ArcQueryError, match="Authentication failed"):
            bad.query.query("SELECT 1")
        url = f"{arc.url}/api/v1/query"
        for headers in ({"Authorization": "Bearer s3cret"}, {"Authorization": "Token s3cret"},
                        {"Authorization": "s3cret"}, {"x-api-key": "s3cret"}):
            assert http().post(url, json={"sql": "SELECT 1"}, headers=headers).status_code == 200, headers
        for headers in ({}, {"Authorization": "Bearer s3cre"}, {"x-api-key": "nope"}, {"Authorization": "Bearer"}):
            r = http().post(url, json={"sql": "SELECT 1"}, headers=headers)
            assert r.status_code == 401 and r.json() == {"success": False, "error": "Invalid or expired token"}
        assert post_msgpack(arc, {"m": "m", "columns": {"v": [1]}}, db).status_code == 401
        assert http().get(f"{arc.url}/api/v1/arclite/stats").status_code == 401
        assert http().get(f"{arc.url}/health").status_code == 200
        assert http().get(f"{arc.url}/ready").status_code == 200
        assert "s3cret" not in arc.output()
    finally:
        arc.stop()


def test_zstd_list_batch_and_row_forms(arc: ArcLite) -> None:
    db = dbname()
    one = {"m": "ev", "columns": {"time": [T0, T0 + 1], "k": ["z1", "z2"]}}
    r = post_msgpack(arc, None, db, raw=zstandard.ZstdCompressor().compress(ormsgpack.packb(one)))
    assert r.status_code == 204 and r.content == b""
    listed = [{"m": "ev", "columns": {"time": [T0 + 2], "k": ["l1"]}},
              {"m": "other", "columns": {"time": [T0], "x": [7]}}]
    assert post_msgpack(arc, listed, db).status_code == 204
    assert post_msgpack(arc, {"batch": [{"m": "ev", "columns": {"time": [T0 + 3], "k": ["b1"]}}]},
                        db).status_code == 204
    row_form = [{"m": "ev", "t": T0 + 4, "fields": {"k": "r1"}, "tags": {"host": "h"}},
                {"m": "ev", "t": T0 + 5, "fields": {"k": "r2"}}]
    assert post_msgpack(arc, None, db, raw=gzip.compress(ormsgpack.packb(row_form))).status_code == 204
    with ArcClient(host="127.0.0.1", port=arc.port, database=db) as client:
        client.write.write_records([{"measurement": "ev", "timestamp": T0 + 6, "fields": {"k": "c1"}}])
    assert rows(arc, "SELECT k, host FROM ev ORDER BY time", db) == [
        ["z1", None], ["z2", None], ["l1", None], ["b1", None], ["r1", "h"], ["r2", None], ["c1", None]]
    assert rows(arc, "SELECT x FROM other", db) == [[7]]


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"m": "ev", "columns": {"time": [T0, T0 + 1], "k": ["a"]}}, "length mismatch"),
    ({"m": "1bad", "columns": {"time": [T0]}}, "invalid measurement"),
    ({"m": "bad name", "columns": {"time": [T0]}}, "invalid measurement"),
    ({"m": "x" * 129, "columns": {"time": [T0]}}, "invalid measurement"),
    ({"m": "ev", "columns": {"bad col": [1]}}, "invalid column"),
    ({"m": "ev", "columns": {"time": []}}, "empty"),
    ({"m": "ev", "columns": {}}, "non-empty"),
    ({"m": "ev", "columns": {"time": ["yesterday"]}}, "time"),
    ([], "Empty payload"),
    ({"nothing": 1}, "columns"),
])
def test_write_rejected_with_400(arc: ArcLite, doc: Any, fragment: str) -> None:
    r = post_msgpack(arc, doc, dbname())
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]


def test_write_rejections_raw(arc: ArcLite) -> None:
    db = dbname()
    assert post_msgpack(arc, None, db, raw=b"").status_code == 400
    assert post_msgpack(arc, None, db, raw=b"\xc1\xc1garbage").status_code == 400
    assert post_msgpack(arc, None, db, raw=b"\x1f\x8bnot-gzip").status_code == 400
    assert post_msgpack(arc, None, db, raw=b"\x28\xb5\x2f\xfdnot-zstd").status_code == 400
    ok = {"m": "ev", "columns": {"time": [T0], "v": [1]}}
    assert post_msgpack(arc, ok, "9bad").status_code == 400
    assert post_msgpack(arc, ok, "a" * 65).status_code == 400
    # a gzip bomb: 101 MiB of zeros inflate past the 100 MiB cap
    bomb = gzip.compress(b"\0" * (101 * 1024 * 1024), compresslevel=9)
    r = post_msgpack(arc, None, db, raw=bomb)
    assert r.status_code == 413 and "error" in r.json()
    # a type conflict with the column's first type refuses the whole request, storing nothing
    assert post_msgpack(arc, ok, db).status_code == 204
    conflict = [{"m": "ev", "columns": {"time": [T0 + 1], "v": [2]}},
                {"m": "ev", "columns": {"time": [T0 + 2], "v": ["not a number"]}}]
    assert post_msgpack(arc, conflict, db).status_code == 400
    assert rows(arc, "SELECT v FROM ev", db) == [[1]]
    assert query(arc, "SELECT 1", db="-bad").status_code == 400


REFUSED = [
    "", "   ", "SELECT 1; SELECT 2", "SELECT 1;DROP TABLE ev",
    "DROP TABLE ev", "CREATE TABLE x (a INT)", "ALTER TABLE ev ADD COLUMN z INT", "INSERT INTO ev VALUES (1)",
    "UPDATE ev SET v = 2", "DELETE FROM ev", "TRUNCATE ev", "ATTACH '/tmp/x.db' AS x", "DETACH x",
    "COPY ev TO '/tmp/out.csv'", "EXPORT DATABASE '/tmp/exp'", "PRAGMA version", "SET threads = 1",
    "RESET threads", "LOAD httpfs", "INSTALL httpfs", "CALL pragma_version()", "CHECKPOINT", "VACUUM",
    "BEGIN TRANSACTION", "EXPLAIN SELECT 1", "CREATE MACRO f(a) AS a", "USE memory",
    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')", "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_json('/etc/passwd')", "SELECT * FROM glob('/etc/*')", "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'data.csv'", "SELECT * FROM query('SELECT 1')", "SELECT * FROM sniff_csv('/etc/passwd')",
    "WITH a AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM a",
    "SELECT * FROM ev WHERE v IN (SELECT 1 FROM read_text('/etc/hostname'))",
    "SELECT * FROM other.ev", "SELECT * FROM ev JOIN other.ev2 USING (time)", "SELECT * FROM main.ev",
    "SELECT * FROM _arclite_stage.ev", "SELECT 1 " + "-" * 10_000,
]


@pytest.mark.parametrize("sql", REFUSED)
def test_dangerous_sql_refused_with_400(arc: ArcLite, sql: str) -> None:
    db = "refusals"
    assert post_msgpack(arc, {"m": "ev", "columns": {"time": [T0], "v": [1]}}, db).status_code == 204
    r = query(arc, sql, db)
    assert r.status_code == 400, (sql, r.text)
    body = r.json()
    assert body["success"] is False and body["error"]
    assert rows(arc, "SELECT count(*) > 0 FROM ev", db) == [[True]]


def test_qualified_name_refused_with_header_message(arc: ArcLite) -> None:
    r = query(arc, "SELECT * FROM otherdb.events", db="default")
    assert r.status_code == 400 and "db.table" in r.json()["error"]


def test_queries_allowed_and_errors(arc: ArcLite) -> None:
    db = dbname()
    assert post_msgpack(arc, {"m": "ev", "columns": {"time": [T0], "v": [1.5]}}, db).status_code == 204
    assert rows(arc, "WITH a AS (SELECT v FROM ev) SELECT v * 2 AS w FROM a", db) == [[3.0]]
    assert rows(arc, "FROM ev SELECT v", db) == [[1.5]]
    assert [r[:2] for r in rows(arc, "DESCRIBE ev", db)] == [["time", "TIMESTAMP"], ["v", "DOUBLE"]]
    assert rows(arc, "SELECT 'nan'::DOUBLE, 'inf'::DOUBLE, 1.25::DECIMAL(4,2), [1, 2]", db) == [
        [None, None, 1.25, [1, 2]]]
    assert rows(arc, "SELECT TIMESTAMPTZ '2026-01-01 01:00:00+01'", db) == [["2026-01-01T00:00:00.000000Z"]]
    r = query(arc, "SELECT nosuchcolumn FROM ev", db)
    assert r.status_code == 500 and r.json()["success"] is False
    empty = query(arc, "SELECT * FROM not_written_yet WHERE org_id = 'x'", db)
    assert empty.status_code == 200
    assert empty.json()["columns"] == [] and empty.json()["data"] == [] and empty.json()["row_count"] == 0
    never = query(arc, "SELECT * FROM events", "neverwritten")
    assert never.status_code == 200 and never.json()["data"] == []
    assert "neverwritten" not in [r[0] for r in rows(arc, "SHOW DATABASES", "default")]
    body = query(arc, "SELECT 1 AS one", db).json()
    assert set(body) >= {"success", "columns", "data", "row_count", "execution_time_ms", "timestamp"}
    assert body["timestamp"].endswith("Z") and isinstance(body["execution_time_ms"], int)


def test_query_timeout_gives_504_and_server_survives(arc: ArcLite) -> None:
    r = query(arc, "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000000) b", "default")
    assert r.status_code == 504, r.text
    assert rows(arc, "SELECT 42", "default") == [[42]]


@pytest.mark.parametrize(("first", "unit"), [(1_767_225_600, 1_000_000), (1_767_225_600_000, 1_000),
                                             (T0, 1), (T0 * 1000, 0.001)])
def test_time_unit_inferred_and_rfc3339_out(arc: ArcLite, first: int, unit: float) -> None:
    db = dbname()
    times = [first, first + 1]
    assert post_msgpack(arc, {"m": "ev", "columns": {"time": times, "i": [0, 1]}}, db).status_code == 204
    got = [r[0] for r in rows(arc, "SELECT time FROM ev ORDER BY i", db)]
    step_us = int(unit) if unit >= 1 else 0  # one ns is below TIMESTAMP's µs precision
    expected_second = f"2026-01-01T00:00:{step_us // 1_000_000:02d}.{step_us % 1_000_000:06d}Z"
    assert got == ["2026-01-01T00:00:00.000000Z", expected_second]


def test_time_filled_when_missing_and_float_seconds(arc: ArcLite) -> None:
    db = dbname()
    assert post_msgpack(arc, {"m": "ev", "columns": {"v": [1]}}, db).status_code == 204
    assert post_msgpack(arc, {"m": "f", "columns": {"time": [1_767_225_600.123456]}}, db).status_code == 204
    assert rows(arc, "SELECT count(*) FROM ev WHERE time > TIMESTAMP '2020-01-01'", db) == [[1]]
    assert rows(arc, "SELECT time FROM f", db) == [["2026-01-01T00:00:00.123456Z"]]


def test_columns_added_later_old_rows_null(arc: ArcLite) -> None:
    db = dbname()
    assert post_msgpack(arc, {"m": "ev", "columns": {"time": [T0], "a": ["x"]}}, db).status_code == 204
    assert post_msgpack(arc, {"m": "ev", "columns": {"time": [T0 + 1], "b": [2.5], "c": [None]}},
                        db).status_code == 204
    assert post_msgpack(arc, {"m": "ev", "columns": {"time": [T0 + 2], "a": ["z"], "c": [True]}},
                        db).status_code == 204
    r = query(arc, "SELECT * FROM ev ORDER BY time", db).json()
    assert r["columns"] == ["time", "a", "b", "c"]
    assert [row[1:] for row in r["data"]] == [["x", None, None], [None, 2.5, None], ["z", None, True]]


def test_stats_count_successful_writes(arc: ArcLite) -> None:
    db = dbname()
    before = http().get(f"{arc.url}/api/v1/arclite/stats").json()
    assert post_msgpack(arc, {"m": "a", "columns": {"time": [T0, T0 + 1]}}, db).status_code == 204
    assert post_msgpack(arc, [{"m": "a", "columns": {"time": [T0]}}, {"m": "b", "columns": {"time": [T0]}}],
                        db).status_code == 204
    assert post_msgpack(arc, {"m": "a", "columns": {"time": [T0], "x": [1, 2]}}, db).status_code == 400
    after = http().get(f"{arc.url}/api/v1/arclite/stats").json()
    assert after["by_database"][db] == {"write_requests": 2, "rows": {"a": 3, "b": 1}}
    assert after["write_requests"] - before["write_requests"] == 2
    assert after["rows_written"] - before["rows_written"] == 4


def _write_many(arc: ArcLite, db: str, start: int, requests: int, per: int) -> None:
    for i in range(requests):
        base = start + i * per
        cols = {"time": [T0 + base + j for j in range(per)], "seq": list(range(base, base + per)),
                "content": [f"row {base + j} " + "x" * 50 for j in range(per)], "importance": [0.5] * per}
        r = post_msgpack(arc, {"m": "events", "columns": cols}, db)
        assert r.status_code == 204, r.text


def test_acknowledged_writes_survive_kill9(tmp_path: Path) -> None:
    """Writers keep going while the process is SIGKILLed mid-stream: every 204'd row must be there after
    restart (rows of requests cut off in flight may or may not be)."""
    data = tmp_path / "data"
    arc = ArcLite(data)
    db = dbname()
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(start: int) -> None:
        base = start
        while not stop.is_set():
            try:
                _write_many(arc, db, base, 1, 20)
            except (httpx.HTTPError, AssertionError):
                return
            with lock:
                acked.extend(range(base, base + 20))
            base += 20

    threads = [threading.Thread(target=writer, args=(t * 1_000_000,)) for t in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 3000, "3000 rows acknowledged", 30, interval=0.01)
    arc.kill9()  # mid-stream; no shutdown hook, no checkpoint: only the WAL stands between us and loss
    stop.set()
    for t in threads:
        t.join()
    arc.stop()  # only closes the log file now
    assert len(acked) >= 3000
    arc2 = ArcLite(data)
    try:
        stored = {r[0] for r in rows(arc2, "SELECT seq FROM events", db)}
        missing = set(acked) - stored
        assert not missing, f"{len(missing)} acknowledged rows lost, e.g. {sorted(missing)[:5]}"
        assert rows(arc2, "SELECT count(*) = count(DISTINCT seq) FROM events", db) == [[True]]
    finally:
        assert arc2.stop() == 0


def test_sigterm_closes_cleanly_and_keeps_data(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d")
    db = dbname()
    _write_many(arc, db, 0, 3, 10)
    assert arc.stop() == 0
    assert "closed database" in arc.log_path.read_text()
    arc2 = ArcLite(tmp_path / "d")
    try:
        assert rows(arc2, "SELECT count(*) FROM events", db) == [[30]]
    finally:
        arc2.stop()


def test_buffer_age_hides_rows_until_flush_and_they_survive_kill9(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d", extra=["--buffer-age-ms", "600000"])
    db = dbname()
    _write_many(arc, db, 0, 2, 5)
    assert rows(arc, "SELECT count(*) FROM events", db) == []  # measurement not visible at all yet
    assert [r[1] for r in rows(arc, "SHOW TABLES", db)] == []
    flush(arc)
    assert rows(arc, "SELECT count(*) FROM events", db) == [[10]]
    _write_many(arc, db, 10, 1, 5)
    assert rows(arc, "SELECT count(*) FROM events", db) == [[10]]
    arc.kill9()
    arc.stop()
    arc2 = ArcLite(tmp_path / "d")  # no buffering now: leftover staged rows are moved in at start
    try:
        wait_until(lambda: rows(arc2, "SELECT count(*) FROM events", db) == [[15]],
                   "staged rows visible after the restart", 20)
        assert [r[1] for r in rows(arc2, "SHOW TABLES", db)] == ["events"]
    finally:
        arc2.stop()


def test_buffer_age_rows_appear_on_their_own(tmp_path: Path) -> None:
    arc = ArcLite(tmp_path / "d", extra=["--buffer-age-ms", "300"])
    db = dbname()
    try:
        _write_many(arc, db, 0, 1, 7)
        wait_until(lambda: rows(arc, "SELECT count(*) FROM events", db) == [[7]], "buffered rows visible", 20)
        _write_many(arc, db, 7, 1, 3)  # a new column type path through staging: schema already there
        wait_until(lambda: rows(arc, "SELECT count(*) FROM events", db) == [[10]], "buffered rows visible", 20)
    finally:
        arc.stop()
