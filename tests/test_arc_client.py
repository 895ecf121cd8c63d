"""The Arc client layer against real HTTP: the embedded Arc store (`memtrace.arclite`) in a subprocess.

Nothing here is mocked: writes are encoded with `encode_rows`, sent by `ArcPool` over a real socket,
and read back with SQL. Breaker timing uses an injected clock, so no test asserts on wall time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web

from memtrace.arc.binding import ArcBinding
from memtrace.arc.client import ArcPool, ArcResult
from memtrace.arc.encode import encode_rows
from memtrace.arc.registry import ArcRegistry, BindingLoader
from memtrace.config import ArcSettings
from memtrace.errors import ArcDeleteRefused, ArcRejected, ArcUnavailable, NoArcInstance
from memtrace.rows import MemoryRow
from tests.procs import ArcLite, free_port

BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z: Arc infers the time unit from the magnitude
DB = "memtrace"
TOKEN = "arc-secret-token-7f3a9c"
WRONG_KEY = "not-the-token-5e1d0b"


def make_settings(**overrides: float) -> ArcSettings:
    values: dict[str, float] = {
        "connect_timeout_s": 1.0,
        "request_timeout_s": 10.0,
        "breaker_failures": 3,
        "breaker_probe_interval_s": 2.0,
    }
    values.update(overrides)
    return msgspec.convert(values, ArcSettings)


def make_rows(org_id: str, n: int, start: int = 0) -> list[MemoryRow]:
    return [
        MemoryRow(
            id=f"mem_{org_id}_{i:04d}",
            time_us=BASE_US + i * 1000,
            org_id=org_id,
            agent_id="agent_1",
            session_id="sess_1" if i % 2 else "",
            memory_type="episodic",
            event_type="note",
            content=f"{org_id} memory {i}",
            metadata_json=f'{{"i":{i}}}',
            tags_csv="a,b",
            dedup_key="",
            importance=1 if i == start else i / 10,  # an int first value must still arrive as a float
            parent_id="",
        )
        for i in range(start, start + n)
    ]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def flush(arc: ArcLite) -> None:
    """Make buffered writes queryable now rather than after Arc's buffer age."""
    headers = {"Authorization": f"Bearer {arc.token}"} if arc.token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{arc.url}/api/v1/write/line-protocol/flush", headers=headers) as resp,
    ):
        await resp.read()
        assert resp.status in (200, 204), resp.status


async def write_requests_seen(arc: ArcLite) -> int:
    """How many write requests reached the store: proof of whether a call touched the network."""
    async with aiohttp.ClientSession() as session, session.get(f"{arc.url}/api/v1/arclite/stats") as resp:
        stats = await resp.json()
        return int(stats["write_requests"])


def select_sql(org_id: str, measurement: str = "events") -> str:
    columns = "id, importance, content, session_id"
    return f"SELECT {columns} FROM {measurement} WHERE org_id = '{org_id}' ORDER BY time"


def closed_url() -> str:
    """A loopback port nobody listens on: connection refused, at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def arc(tmp_path: Path) -> Iterator[ArcLite]:
    proc = ArcLite(tmp_path / "arc")
    yield proc
    proc.stop()


@pytest.fixture
def arc_with_token(tmp_path: Path) -> Iterator[ArcLite]:
    proc = ArcLite(tmp_path / "arc-auth", token=TOKEN)
    yield proc
    proc.stop()


@pytest.fixture
async def pool() -> AsyncIterator[ArcPool]:
    p = ArcPool(make_settings())
    yield p
    await p.close()


def static_loader(bindings: list[ArcBinding]) -> BindingLoader:
    async def load() -> list[ArcBinding]:
        return list(bindings)

    return load


def test_binding_never_shows_its_key() -> None:
    binding = ArcBinding("org_a", "http://arc.example:8000/", DB, "events", TOKEN)
    assert binding.url == "http://arc.example:8000"
    assert binding.host == "arc.example:8000"
    for text in (repr(binding), str(binding), f"{binding}", repr([binding]), repr(binding.__rich_repr__())):
        assert TOKEN not in text
        assert "org_a" in text


def test_query_answer_tolerates_extra_fields_and_empty_results() -> None:
    full = b'{"success":true,"columns":["a"],"data":[[1]],"row_count":1,"execution_time_ms":3,"extra":{}}'
    assert msgspec.json.decode(full, type=ArcResult) == ArcResult(columns=["a"], data=[[1]])
    assert msgspec.json.decode(b'{"success":true}', type=ArcResult) == ArcResult(columns=[], data=[])


async def test_write_then_query_back(arc: ArcLite, pool: ArcPool) -> None:
    binding = ArcBinding("org_a", arc.url, DB, "events")
    rows = make_rows("org_a", 25)
    await pool.write_msgpack(binding, encode_rows(binding.measurement, rows))
    await flush(arc)

    result = await pool.query(binding, select_sql("org_a"))

    assert result.columns == ["id", "importance", "content", "session_id"]
    assert [r[0] for r in result.data] == [row.id for row in rows]
    assert all(isinstance(r[1], float) for r in result.data)
    assert result.data[3] == [rows[3].id, rows[3].importance, rows[3].content, rows[3].session_id]
    assert await pool.health(arc.url)


async def test_unknown_measurement_is_an_empty_result(arc: ArcLite, pool: ArcPool) -> None:
    binding = ArcBinding("org_a", arc.url, DB, "never_written")
    result = await pool.query(binding, select_sql("org_a", "never_written"))
    assert result.data == []


async def test_non_select_sql_is_rejected_with_arcs_message(arc: ArcLite, pool: ArcPool) -> None:
    binding = ArcBinding("org_a", arc.url, DB, "events")
    with pytest.raises(ArcRejected) as info:
        await pool.query(binding, "DROP TABLE events")
    assert info.value.arc_status == 400
    assert "org_a" in info.value.message and arc.url.removeprefix("http://") in info.value.message


async def test_wrong_token_is_rejected_and_the_key_never_shows(
    arc_with_token: ArcLite, pool: ArcPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = ArcBinding("org_a", arc_with_token.url, DB, "events", TOKEN)
    bad = ArcBinding("org_a", arc_with_token.url, DB, "events", WRONG_KEY)
    body = encode_rows("events", make_rows("org_a", 3))

    await pool.write_msgpack(good, body)  # the token itself works
    with pytest.raises(ArcRejected) as write_err:
        await pool.write_msgpack(bad, body)
    with pytest.raises(ArcRejected) as query_err:
        await pool.query(bad, select_sql("org_a"))

    for err in (write_err.value, query_err.value):
        assert err.arc_status == 401
        assert WRONG_KEY not in str(err) and TOKEN not in str(err)
        assert "org_a" in err.message
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert WRONG_KEY not in logged and TOKEN not in logged


async def test_unreachable_arc_is_unavailable_without_leaking_the_key(
    pool: ArcPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = closed_url()
    binding = ArcBinding("org_a", url, DB, "events", TOKEN)
    with pytest.raises(ArcUnavailable) as write_err:
        await pool.write_msgpack(binding, encode_rows("events", make_rows("org_a", 1)))
    with pytest.raises(ArcUnavailable) as query_err:
        await pool.query(binding, select_sql("org_a"))
    for err in (write_err.value, query_err.value):
        assert binding.host in err.message and "org_a" in err.message
        assert TOKEN not in str(err)
        assert err.retry_after >= 1
        assert not isinstance(err.__cause__, aiohttp.ClientError)  # nothing from aiohttp escapes
    assert TOKEN not in caplog.text
    assert await pool.health(url) is False


async def test_overload_and_server_errors_are_unavailable_other_4xx_rejected(pool: ArcPool) -> None:
    """Statuses the embedded store never sends on demand (429, 503, 500), from a real HTTP server."""
    statuses = {"/s429": (429, "3"), "/s503": (503, "7"), "/s500": (500, None), "/s413": (413, None)}

    async def handler(request: web.Request) -> web.Response:
        status, retry = statuses[request.path.split("/api")[0]]
        headers = {"Retry-After": retry} if retry else {}
        return web.json_response({"error": f"status {status} from arc"}, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        base = f"http://127.0.0.1:{port}"
        body = encode_rows("events", make_rows("org_a", 1))
        for prefix, (status, retry) in statuses.items():
            binding = ArcBinding("org_a", base + prefix, DB, "events", TOKEN)
            expected: type[Exception] = ArcRejected if status == 413 else ArcUnavailable
            with pytest.raises(expected) as info:
                await pool.write_msgpack(binding, body)
            assert f"status {status} from arc" in str(info.value)
            if isinstance(info.value, ArcUnavailable) and retry:
                assert info.value.retry_after == int(retry)
            if isinstance(info.value, ArcRejected):
                assert info.value.arc_status == 413
    finally:
        await runner.cleanup()


async def test_breaker_opens_fails_fast_then_a_probe_closes_it(tmp_path: Path, pool: ArcPool) -> None:
    clock = ManualClock()
    port = free_port()
    binding = ArcBinding("org_a", f"http://127.0.0.1:{port}", DB, "events")
    registry = ArcRegistry(static_loader([binding]), pool, make_settings(), clock=clock)
    await registry.refresh()
    body = encode_rows("events", make_rows("org_a", 5))

    for _ in range(3):
        with pytest.raises(ArcUnavailable):
            await registry.write("org_a", body)
    breaker = registry.breaker("org_a")
    assert breaker.state == "open"
    assert registry.health_snapshot()["org_a"]["status"] == "down"

    arc = ArcLite(tmp_path / "arc", port=port)  # Arc comes back on the same address
    try:
        # Within the probe interval the call fails without touching the (now healthy) Arc.
        with pytest.raises(ArcUnavailable) as fast:
            await registry.write("org_a", body)
        assert "circuit open" in fast.value.message and fast.value.retry_after == 2
        with pytest.raises(ArcUnavailable):
            await registry.query("org_a", select_sql("org_a"))
        assert await write_requests_seen(arc) == 0

        clock.now += 2.0
        await registry.write("org_a", body)  # the one probe; it succeeds and closes the circuit
        assert await write_requests_seen(arc) == 1
        assert registry.breaker("org_a").state == "closed"
        snap = registry.health_snapshot()["org_a"]
        assert snap["status"] == "ok" and snap["consecutive_failures"] == 0 and snap["last_ok_at"]
        await flush(arc)
        assert len((await registry.query("org_a", select_sql("org_a"))).data) == 5
    finally:
        arc.stop()


async def test_failed_probe_waits_another_interval(pool: ArcPool) -> None:
    clock = ManualClock()
    registry = ArcRegistry(
        static_loader([ArcBinding("org_a", closed_url(), DB, "events")]), pool, make_settings(), clock=clock
    )
    await registry.refresh()
    for _ in range(3):
        with pytest.raises(ArcUnavailable):
            await registry.query("org_a", "SELECT 1")
    clock.now += 2.0
    with pytest.raises(ArcUnavailable) as probe:
        await registry.query("org_a", "SELECT 1")
    assert "circuit open" not in probe.value.message  # the probe really went out
    with pytest.raises(ArcUnavailable) as fast:
        await registry.query("org_a", "SELECT 1")
    assert "circuit open" in fast.value.message
    assert registry.breaker("org_a").consecutive_failures == 4


async def test_health_checks_track_arc_without_traffic(arc: ArcLite, pool: ArcPool) -> None:
    bindings = [
        ArcBinding("org_a", arc.url, DB, "events", TOKEN),
        ArcBinding("org_b", arc.url, "other_db", "events"),
    ]
    registry = ArcRegistry(static_loader(bindings), pool, make_settings())
    await registry.refresh()
    assert {s["status"] for s in registry.health_snapshot().values()} == {"unknown"}

    await registry.check_health()
    snap = registry.health_snapshot()
    assert snap["org_a"]["status"] == snap["org_b"]["status"] == "ok"

    arc.stop()
    for _ in range(3):
        await registry.check_health()
    snap = registry.health_snapshot()
    assert snap["org_a"]["status"] == snap["org_b"]["status"] == "down"
    assert snap["org_a"]["consecutive_failures"] == 3
    assert TOKEN not in repr(snap)


async def test_two_orgs_on_two_arcs_share_nothing(tmp_path: Path, pool: ArcPool) -> None:
    arc_a = ArcLite(tmp_path / "a")
    arc_b = ArcLite(tmp_path / "b")
    try:
        bindings = [
            ArcBinding("org_a", arc_a.url, DB, "events"),
            ArcBinding("org_b", arc_b.url, DB, "events"),
        ]
        registry = ArcRegistry(static_loader(bindings), pool, make_settings())
        await registry.refresh()
        await registry.write("org_a", encode_rows("events", make_rows("org_a", 4)))
        await registry.write("org_b", encode_rows("events", make_rows("org_b", 6)))
        assert sorted(pool.urls) == sorted([arc_a.url, arc_b.url])  # one session per Arc

        arc_a.kill9()
        for _ in range(3):
            with pytest.raises(ArcUnavailable):
                await registry.write("org_a", encode_rows("events", make_rows("org_a", 1, start=10)))
        assert registry.breaker("org_a").state == "open"

        # org B neither notices org A's dead Arc nor holds any of org A's rows.
        await registry.write("org_b", encode_rows("events", make_rows("org_b", 2, start=6)))
        await flush(arc_b)
        assert len((await registry.query("org_b", select_sql("org_b"))).data) == 8
        assert (await registry.query("org_b", select_sql("org_a"))).data == []
        assert registry.breaker("org_b").state == "closed"
        await registry.check_health()
        snap = registry.health_snapshot()
        assert snap["org_a"]["status"] == "down" and snap["org_b"]["status"] == "ok"
    finally:
        arc_a.stop()
        arc_b.stop()


async def test_registry_unknown_org_is_no_arc_instance(pool: ArcPool) -> None:
    registry = ArcRegistry(static_loader([]), pool, make_settings())
    await registry.refresh()
    for call in (lambda: registry.get("org_x"), lambda: registry.breaker("org_x")):
        with pytest.raises(NoArcInstance, match="no arc instance configured for this org"):
            call()
    with pytest.raises(NoArcInstance):
        await registry.write("org_x", b"")
    with pytest.raises(NoArcInstance):
        await registry.query("org_x", "SELECT 1")
    assert registry.health_snapshot() == {}


async def test_registry_refresh_picks_up_new_and_moved_bindings(arc: ArcLite, pool: ArcPool) -> None:
    current: list[ArcBinding] = [ArcBinding("org_a", closed_url(), DB, "events")]

    async def loader() -> list[ArcBinding]:
        return list(current)

    registry = ArcRegistry(loader, pool, make_settings())
    await registry.refresh()
    with pytest.raises(NoArcInstance):
        registry.get("org_b")
    with pytest.raises(ArcUnavailable):
        await registry.write("org_a", encode_rows("events", make_rows("org_a", 1)))
    old_breaker = registry.breaker("org_a")

    current.append(ArcBinding("org_b", arc.url, DB, "events"))
    await registry.refresh()
    assert registry.get("org_b").url == arc.url
    assert registry.breaker("org_a") is old_breaker  # same URL: its failure history stays

    current[0] = ArcBinding("org_a", arc.url, DB, "events")  # org_a moved to a working Arc
    await registry.refresh()
    assert registry.breaker("org_a").consecutive_failures == 0
    await registry.write("org_a", encode_rows("events", make_rows("org_a", 2)))

    current.pop()
    await registry.refresh()
    with pytest.raises(NoArcInstance):
        await registry.write("org_b", b"")


async def test_pool_close_closes_sessions_and_refuses_new_calls(arc: ArcLite) -> None:
    pool = ArcPool(make_settings())
    binding = ArcBinding("org_a", arc.url, DB, "events")
    await pool.write_msgpack(binding, encode_rows("events", make_rows("org_a", 1)))
    sessions = list(pool._sessions.values())
    assert sessions and not any(s.closed for s in sessions)

    await pool.close()
    assert all(s.closed for s in sessions) and pool.urls == []
    with pytest.raises(ArcUnavailable):
        await pool.query(binding, select_sql("org_a"))
    assert await pool.health(arc.url) is False
    await pool.close()  # idempotent


async def test_query_errors_arc_answers_never_open_the_breaker(arc: ArcLite, pool: ArcPool) -> None:
    """Issue 11: an error our own SQL caused (Arc answered it, so Arc is up) is not an Arc failure."""
    binding = ArcBinding("org_a", arc.url, DB, "events")
    registry = ArcRegistry(static_loader([binding]), pool, make_settings(), clock=ManualClock())
    await registry.refresh()
    await registry.write("org_a", encode_rows("events", make_rows("org_a", 5)))
    await flush(arc)
    failing = "SELECT CAST(content AS INTEGER) FROM events WHERE org_id = 'org_a'"  # fails while running
    for _ in range(10):
        with pytest.raises(ArcRejected) as info:
            await registry.query("org_a", failing)
        assert info.value.arc_status == 500 and "Conversion Error" in info.value.message
    assert registry.breaker("org_a").state == "closed"
    assert len((await registry.query("org_a", select_sql("org_a"))).data) == 5


async def test_delete_through_the_pool(tmp_path: Path, pool: ArcPool, caplog: pytest.LogCaptureFixture) -> None:
    """Arc's delete API: counts on a dry run, deletes with confirm, and a refusing Arc is named clearly:
    disabled → the setting to change; a token Arc refuses → an admin token is needed. Keys never show."""
    caplog.set_level(logging.DEBUG)
    enabled = ArcLite(tmp_path / "on", token=TOKEN, extra=["--delete-enabled"])
    disabled = ArcLite(tmp_path / "off")
    try:
        good = ArcBinding("org_a", enabled.url, DB, "events", TOKEN)
        await pool.write_msgpack(good, encode_rows("events", make_rows("org_a", 4) + make_rows("org_b", 2)))
        dry = await pool.delete(good, "org_id = 'org_a'", dry_run=True, confirm=True)
        assert (dry.deleted_count, dry.dry_run) == (4, True)
        done = await pool.delete(good, "org_id = 'org_a' AND session_id = 'sess_1'", dry_run=False, confirm=True)
        assert done.deleted_count == 2
        left = await pool.query(good, "SELECT org_id, count(*) FROM events GROUP BY org_id ORDER BY org_id")
        assert left.data == [["org_a", 2], ["org_b", 2]]

        with pytest.raises(ArcDeleteRefused) as off:
            await pool.delete(ArcBinding("org_a", disabled.url, DB), "org_id = 'org_a'", dry_run=True, confirm=True)
        assert off.value.status == 409 and "delete.enabled=true in arc.toml" in off.value.message
        with pytest.raises(ArcDeleteRefused) as no_admin:
            await pool.delete(ArcBinding("org_a", enabled.url, DB, "events", WRONG_KEY), "org_id = 'org_a'",
                              dry_run=True, confirm=True)
        assert "admin token" in no_admin.value.message and WRONG_KEY not in no_admin.value.message
        assert (await pool.delete_config(good)).max_rows_per_delete == 1_000_000
    finally:
        enabled.stop()
        disabled.stop()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert WRONG_KEY not in logged and TOKEN not in logged
