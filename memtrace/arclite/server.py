"""The HTTP surface: Arc's routes, status codes and JSON bodies over aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
from aiohttp import web

from memtrace.arclite import sqlguard
from memtrace.arclite.delete import DeleteConfig, DeleteHandler
from memtrace.arclite.ingest import DATABASE_RE, MAX_BODY, PayloadError, decode, decompress
from memtrace.arclite.registry import Registry, Stats
from memtrace.arclite.storage import Database, QueryJob

log = logging.getLogger("memtrace.arclite")
PUBLIC = frozenset({"/health", "/ready"})
VERSION = "arclite-0.1"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    token: str | None = None
    buffer_age_ms: int = 5000
    """Arc's default `max_buffer_age_ms`: rows become queryable this long after their 204 (0: at once)."""
    shuffle: bool = True
    """Rows of a query without a top-level ORDER BY come back shuffled: Arc promises no order (`--keep-order`)."""
    query_timeout_s: float = 30.0
    delete: DeleteConfig = field(default_factory=DeleteConfig)
    max_body: int = MAX_BODY


REGISTRY = web.AppKey("registry", Registry)
STATS = web.AppKey("stats", Stats)
SETTINGS = web.AppKey("settings", Settings)
STARTED = web.AppKey("started", float)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _query_error(msg: str, status: int, t0: float | None = None) -> web.Response:
    ms = int((time.perf_counter() - t0) * 1000) if t0 else 0
    return _json({"success": False, "error": msg, "execution_time_ms": ms, "timestamp": _now()}, status)


def _authorized(request: web.Request, token: str) -> bool:
    """Arc accepts the token as Bearer, as Token, raw in Authorization, or in x-api-key."""
    want = token.encode()
    offered: list[str] = []
    auth = request.headers.get("Authorization", "").strip()
    if auth:
        scheme, _, rest = auth.partition(" ")
        offered.append(rest.strip() if scheme.lower() in ("bearer", "token") and rest else auth)
    if key := request.headers.get("x-api-key"):
        offered.append(key.strip())
    ok = False
    for cand in offered:
        ok |= hmac.compare_digest(cand.encode(), want)
    return ok


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    token = request.app[SETTINGS].token
    if token and request.path not in PUBLIC and not _authorized(request, token):
        return _json({"success": False, "error": "Invalid or expired token"}, 401)
    resp: web.StreamResponse = await handler(request)
    return resp


async def health(request: web.Request) -> web.Response:
    up = time.monotonic() - request.app[STARTED]
    return _json({"status": "ok", "service": "arclite", "version": VERSION, "uptime": f"{up:.0f}s"})


async def ready(request: web.Request) -> web.Response:
    return _json({"ready": True, "status": "ready"})


async def _body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        cap = request.app[SETTINGS].max_body
        request.app[STATS].refused_requests += 1
        raise PayloadError(f"Payload too large (max {cap / (1024 * 1024):g} MiB)", 413) from exc


async def write_msgpack(request: web.Request) -> web.Response:
    db = request.headers.get("x-arc-database") or "default"
    if not DATABASE_RE.match(db):
        return _json({"error": "invalid database name: must start with a letter and contain only "
                      "alphanumeric characters, underscores, or hyphens (max 64 characters)"}, 400)
    max_body = request.app[SETTINGS].max_body
    try:
        body = await _body(request)
        if not body:
            raise PayloadError("Empty payload")
        if len(body) > 256 * 1024:  # keep big decodes off the event loop
            batches = await asyncio.to_thread(lambda: decode(decompress(body, max_body)))
        else:
            batches = decode(decompress(body, max_body))
        await request.app[REGISTRY].write(db, batches, staged=request.app[SETTINGS].buffer_age_ms > 0)
    except PayloadError as exc:
        return _json({"error": str(exc)}, exc.status)
    except duckdb.Error as exc:
        log.error("write to %s failed: %s", db, exc)
        return _json({"error": f"Failed to write records: {exc}"}, 500)
    request.app[STATS].record(db, batches, len(body))
    return web.Response(status=204)


async def flush(request: web.Request) -> web.Response:
    moved = await request.app[REGISTRY].flush(None)
    return _json({"success": True, "message": "Buffers flushed", "rows_flushed": moved})


async def query(request: web.Request) -> web.Response:
    t0 = time.perf_counter()
    try:
        req = orjson.loads(await _body(request))
    except (orjson.JSONDecodeError, PayloadError) as exc:
        return _query_error(f"Invalid request body: {exc}", getattr(exc, "status", 400))
    sql = req.get("sql") if isinstance(req, dict) else None
    if not isinstance(sql, str):
        return _query_error("SQL query is required", 400)
    header = request.headers.get("x-arc-database")
    db_name = header or "default"
    if not DATABASE_RE.match(db_name):
        return _query_error("invalid database name", 400)
    reg = request.app[REGISTRY]
    if sqlguard.SHOW_DATABASES_RE.match(sql):
        return _ok(["database"], [(n,) for n in reg.names()], t0)
    if m := sqlguard.SHOW_TABLES_RE.match(sql):
        return await _show_tables(reg, m.group(1) or db_name, t0)
    try:
        ordered = sqlguard.check(sql, header_db=bool(header))
    except sqlguard.Refused as exc:
        return _query_error(str(exc), 400, t0)
    db = await reg.get(db_name, create=False)
    job = QueryJob()
    settings = request.app[SETTINGS]
    try:
        body = await asyncio.wait_for(
            asyncio.to_thread(_run_query, db, sql, job, t0, settings.shuffle and not ordered),
            settings.query_timeout_s,
        )
    except TimeoutError:
        job.cancel()
        return _query_error("Query timed out", 504, t0)
    except duckdb.InterruptException:
        return _query_error("Query timed out", 504, t0)
    except duckdb.CatalogException as exc:
        if "Table with name" in str(exc) and "does not exist" in str(exc):
            return _ok([], [], t0)  # Arc answers a measurement with no data yet with an empty result
        return _query_error(sqlguard.first_line(exc), 500, t0)
    except duckdb.PermissionException as exc:
        return _query_error(sqlguard.first_line(exc), 400, t0)
    except duckdb.Error as exc:
        return _query_error(sqlguard.first_line(exc), 500, t0)
    return web.Response(body=body, content_type="application/json")


def _run_query(db: Database, sql: str, job: QueryJob, t0: float, shuffle: bool = False) -> bytes:
    """Runs on a worker thread: execution *and* JSON encoding stay off the event loop. `shuffle`: the query
    has no ORDER BY, so its rows come back in a random order, as Arc may return them (a client relying on
    insertion order fails here, not in production)."""
    names, types, rows = db.query(sql, job)
    if shuffle and len(rows) > 1:
        random.shuffle(rows)
    ts_cols = [i for i, t in enumerate(types) if t.startswith("TIMESTAMP")]
    data: list[Any] = rows
    if ts_cols and rows:
        data = []
        for r in rows:
            row = list(r)
            for i in ts_cols:
                if row[i] is not None:
                    row[i] = _rfc3339(row[i])
            data.append(row)
    return _encode(_result(names, data, t0))


def _rfc3339(v: Any) -> Any:
    if not isinstance(v, dt.datetime):
        return v
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v.isoformat(timespec="microseconds") + "Z"


def _result(names: list[str], data: list[Any], t0: float) -> dict[str, Any]:
    return {"success": True, "columns": names, "data": data, "row_count": len(data),
            "execution_time_ms": int((time.perf_counter() - t0) * 1000), "timestamp": _now()}


def _ok(names: list[str], data: list[Any], t0: float) -> web.Response:
    return web.Response(body=_encode(_result(names, data, t0)), content_type="application/json")


def _default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _encode(doc: dict[str, Any]) -> bytes:
    """NaN/Inf become null (orjson does that); nested timestamps get the same UTC `Z` form."""
    opts = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
    try:
        return orjson.dumps(doc, default=_default, option=opts)
    except orjson.JSONEncodeError:  # e.g. HUGEINT beyond 64 bits: slow path, big ints as strings
        doc = {**doc, "data": [[str(x) if isinstance(x, int) and abs(x) >= 2**63 else x for x in r]
                               for r in doc["data"]]}
        return orjson.dumps(doc, default=_default, option=opts)


async def _show_tables(reg: Registry, name: str, t0: float) -> web.Response:
    cols = ["database", "table_name", "storage_path", "file_count", "total_size_mb"]
    if not DATABASE_RE.match(name) or name not in reg.names():
        return _ok(cols, [], t0)
    db = await reg.get(name, create=False)
    size = db.path.stat().st_size / (1024 * 1024) if db.path and db.path.exists() else 0.0
    tables = await asyncio.to_thread(db.tables)
    return _ok(cols, [(name, t, str(db.path), 1, size) for t in tables], t0)


async def measurements(request: web.Request) -> web.Response:
    t0 = time.perf_counter()
    reg = request.app[REGISTRY]
    only = request.query.get("database")
    out: list[dict[str, Any]] = []
    for name in reg.names():
        if only and name != only:
            continue
        db = await reg.get(name, create=False)
        size = db.path.stat().st_size / (1024 * 1024) if db.path and db.path.exists() else 0.0
        for t in await asyncio.to_thread(db.tables):
            out.append({"database": name, "measurement": t, "file_count": 1, "total_size_mb": size,
                        "storage_path": str(db.path)})
    return _json({"success": True, "measurements": out, "count": len(out),
                  "execution_time_ms": int((time.perf_counter() - t0) * 1000)})


async def stats(request: web.Request) -> web.Response:
    return _json(request.app[STATS].as_json())



def make_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[auth_middleware], client_max_size=settings.max_body)
    app[SETTINGS] = settings
    app[REGISTRY] = Registry(settings.data_dir)
    app[STATS] = Stats()
    app[STARTED] = time.monotonic()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_post("/api/v1/write/msgpack", write_msgpack)
    app.router.add_post("/api/v1/write/line-protocol/flush", flush)
    app.router.add_post("/api/v1/query", query)
    app.router.add_get("/api/v1/measurements", measurements)
    app.router.add_get("/api/v1/arclite/stats", stats)
    DeleteHandler(settings.delete, app[REGISTRY], app[STATS], settings.query_timeout_s).register(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> Any:
    reg = app[REGISTRY]
    await reg.open_existing()
    flusher = asyncio.create_task(reg.run_flusher(app[SETTINGS].buffer_age_ms))
    yield
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    await reg.close()


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting, finish in-flight requests and close DuckDB."""
    import signal

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = make_app(settings)
    # auto_decompress=False: Content-Encoding must not bypass our own size-capped decompression.
    runner = web.AppRunner(app, access_log=None, auto_decompress=False, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("arclite listening on http://%s:%d data_dir=%s auth=%s buffer_age_ms=%d delete=%s shuffle=%s", host,
             port, settings.data_dir, "on" if settings.token else "off", settings.buffer_age_ms,
             "on" if settings.delete.enabled else "off", "on" if settings.shuffle else "off")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    log.info("stopped")
