"""`POST /api/v1/delete` and `GET /api/v1/delete/config`: Arc's delete API over DuckDB `DELETE ... WHERE`.

Request, response, status codes, error texts and the order of the checks follow Arc's handler
(internal/api/delete.go): disabled -> 403; bad body, missing or bad names, bad `where` -> 400; a `where`
naming no column (`1=1`) without `confirm` -> 400; neither `dry_run` nor `confirm` -> 400; more matching
rows than `max_rows_per_delete` -> 400; more than `confirmation_threshold` without `confirm` -> 400 (also on
a dry run, as in Arc). Where Arc rewrites Parquet files, arclite runs one DuckDB transaction on the
database's writer thread, so it is serialised with writes and buffer flushes. As in Arc, rows still in the
ingest buffer are neither counted nor deleted (they appear at the flush) unless `--delete-buffered`. The 200
is sent only after COMMIT, whose WAL append is fsynced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
from aiohttp import web

from memtrace.arclite import sqlguard
from memtrace.arclite.ingest import DATABASE_RE, MEASUREMENT_RE
from memtrace.arclite.registry import Registry, Stats
from memtrace.arclite.storage import QueryJob, TooManyRows

log = logging.getLogger("memtrace.arclite")
MAX_DELETE_BODY = 256 * 1024
DISABLED = "Delete operations are disabled. Set delete.enabled=true in arc.toml to enable."
# DuckDB errors a client's `where` can provoke (unknown column, bad cast, wrong types): 400, not 500.
_CLIENT_ERRORS = (duckdb.ProgrammingError, duckdb.DataError, duckdb.NotSupportedError, duckdb.PermissionException,
                  duckdb.OutOfMemoryException)


@dataclass(frozen=True)
class DeleteConfig:
    """Arc's `[delete]` section; arclite takes it from flags (`--delete-enabled`, ...)."""

    enabled: bool = False
    confirmation_threshold: int = 10_000
    max_rows_per_delete: int = 1_000_000
    buffered: bool = False
    """Also match rows still in the ingest buffer (`--delete-buffered`, lenient). Arc's delete reads only its
    Parquet files, so by default buffered rows are untouched and appear at the flush, as in Arc."""


class _Refusal(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Request:
    database: str
    measurement: str
    where: str
    dry_run: bool
    confirm: bool


def _response(*, success: bool, error: str = "", deleted: int = 0, affected: list[str] | None = None,
              rewritten: int = 0, ms: int = 0, dry_run: bool = False, status: int = 200) -> web.Response:
    """Arc's DeleteResponse, field for field (`files_processed` is null on errors, `error` omitted if empty)."""
    body: dict[str, Any] = {
        "success": success, "deleted_count": deleted, "affected_files": len(affected or []),
        "rewritten_files": rewritten, "execution_time_ms": ms, "dry_run": dry_run, "files_processed": affected,
    }
    if error:
        body["error"] = error
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def _read_request(request: web.Request) -> _Request:
    if request.content_length is not None and request.content_length > MAX_DELETE_BODY:
        raise _Refusal(f"Invalid request body: larger than {MAX_DELETE_BODY} bytes", 413)
    raw = await request.content.read(MAX_DELETE_BODY + 1)
    while len(raw) <= MAX_DELETE_BODY and not request.content.at_eof():
        more = await request.content.read(MAX_DELETE_BODY + 1 - len(raw))
        if not more:
            break
        raw += more
    if len(raw) > MAX_DELETE_BODY:
        raise _Refusal(f"Invalid request body: larger than {MAX_DELETE_BODY} bytes", 413)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Refusal(f"Invalid request body: {exc}") from exc
    if not isinstance(doc, dict):
        raise _Refusal("Invalid request body: expected a JSON object")
    fields: dict[str, Any] = {}
    for name, kind, default in (("database", str, ""), ("measurement", str, ""), ("where", str, ""),
                                ("dry_run", bool, False), ("confirm", bool, False)):
        value = doc.get(name, default)
        if value is None:
            value = default
        if not isinstance(value, kind):
            raise _Refusal(f"Invalid request body: {name} must be a {'string' if kind is str else 'boolean'}")
        fields[name] = value
    return _Request(**fields)


def _validate(req: _Request) -> bool:
    """Arc's checks in Arc's order; returns whether the `where` is a full-table delete."""
    if not req.database:
        raise _Refusal("database is required")
    if not req.measurement:
        raise _Refusal("measurement is required")
    if not DATABASE_RE.match(req.database):
        raise _Refusal("database name contains invalid characters")
    if not MEASUREMENT_RE.match(req.measurement):
        raise _Refusal("measurement name contains invalid characters")
    try:
        full_table = sqlguard.check_where(req.measurement, req.where)
    except sqlguard.Refused as exc:
        raise _Refusal(str(exc)) from exc
    if full_table and not req.confirm:
        raise _Refusal("Full table delete detected (WHERE 1=1). Set confirm=true to proceed.")
    if not req.dry_run and not req.confirm:
        raise _Refusal("Confirmation required for delete operation. Set confirm=true or use dry_run=true to preview.")
    return full_table


class DeleteHandler:
    """Holds the `[delete]` settings and the open databases; one instance serves both routes."""

    def __init__(self, config: DeleteConfig, registry: Registry, stats: Stats, timeout_s: float) -> None:
        self.config = config
        self.registry = registry
        self.stats = stats
        self.timeout_s = timeout_s

    def register(self, app: web.Application) -> None:
        for path in ("/api/v1/delete", "/api/v1/delete/"):
            app.router.add_post(path, self.handle_delete)
        app.router.add_get("/api/v1/delete/config", self.handle_config)

    async def handle_config(self, request: web.Request) -> web.Response:
        body = {
            "enabled": self.config.enabled,
            "confirmation_threshold": self.config.confirmation_threshold,
            "max_rows_per_delete": self.config.max_rows_per_delete,
            "implementation": "duckdb-delete",
            "performance_impact": {"writes": "zero overhead", "queries": "zero overhead",
                                   "deletes": "one DuckDB transaction on the database's writer thread"},
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def handle_delete(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        if not self.config.enabled:
            return _response(success=False, error=DISABLED, status=403)
        try:
            req = await _read_request(request)
            await asyncio.to_thread(_validate, req)  # parsing a long `where` takes a while: off the loop
            return await self._run(req, t0)
        except _Refusal as exc:
            return _response(success=False, error=str(exc), status=exc.status)

    async def _run(self, req: _Request, t0: float) -> web.Response:
        def ms() -> int:
            return int((time.perf_counter() - t0) * 1000)

        db = await self.registry.existing(req.database)
        if db is None:  # Arc: no files for the measurement -> nothing matched
            return _response(success=True, affected=[], ms=ms(), dry_run=req.dry_run)
        files = [db.path.name] if db.path else []
        log.info("delete request database=%s measurement=%s dry_run=%s", req.database, req.measurement,
                 req.dry_run)
        cfg = self.config
        if req.dry_run:
            count = await self._on_writer(req.database, db.count_matching, req.measurement, req.where,
                                          cfg.buffered)
        else:
            try:
                count = await self._on_writer(req.database, db.delete_matching, req.measurement, req.where,
                                              cfg.max_rows_per_delete, cfg.buffered)
            except TooManyRows as exc:
                count = exc.rows
            else:
                log.info("deleted %d rows from %s.%s in %d ms", count, req.database, req.measurement, ms())
                self.stats.record_delete(req.database, req.measurement, count)
                return _response(success=True, deleted=count, affected=files if count else [],
                                 rewritten=1 if count else 0, ms=ms())
        if count == 0:
            return _response(success=True, affected=[], ms=ms(), dry_run=req.dry_run)
        if count > cfg.max_rows_per_delete:
            raise _Refusal(f"Delete would affect {count} rows, exceeding maximum of {cfg.max_rows_per_delete}. "
                           "Adjust delete.max_rows_per_delete in arc.toml or refine WHERE clause.")
        if count > cfg.confirmation_threshold and not req.confirm:
            raise _Refusal(f"Delete would affect {count} rows (threshold: {cfg.confirmation_threshold}). "
                           "Set confirm=true to proceed.")
        return _response(success=True, deleted=count, affected=files, ms=ms(), dry_run=True)

    async def _on_writer(self, database: str, fn: Any, *args: Any) -> int:
        """Run on the database's writer thread; on timeout interrupt it, but answer what really happened."""
        job = QueryJob()
        fut = asyncio.ensure_future(self.registry.on_writer(database, fn, *args, job))
        try:
            try:
                result: int = await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
            except TimeoutError:
                job.cancel()
                result = await fut
        except duckdb.InterruptException as exc:
            raise _Refusal("Delete timed out; nothing was deleted", 504) from exc
        except _CLIENT_ERRORS as exc:
            raise _Refusal(sqlguard.first_line(exc)) from exc
        except duckdb.Error as exc:
            log.error("delete in %s failed: %s", database, exc)
            raise _Refusal(f"Delete failed: {sqlguard.first_line(exc)}", 500) from exc
        return result
