"""Composition root: build the BlackSheep app from Settings, its routes at build time, its Runtime at start.

Each Granian worker process runs one app: its own metadata connection, journal connection, pooled Arc
sessions and background loops (`runtime.py`). What must be shared between workers (dedup, journal,
delivery lease, revocations) is shared through SQLite on disk, never through process memory.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import msgspec
from blacksheep import Application, Request, Response, Router

from memtrace import logs
from memtrace.api import (
    agents,
    console,
    docs,
    errors,
    forget,
    health,
    memories,
    metrics,
    openapi,
    sessions,
    timelines,
)
from memtrace.api.deps import Deps, Services
from memtrace.api.guard import TargetGuard
from memtrace.api.http import error_response
from memtrace.api.observe import Observed
from memtrace.api.querycheck import QueryCheckedRouter
from memtrace.config import Settings, load_settings
from memtrace.memory.ranked import RankedReads
from memtrace.runtime import Runtime
from memtrace.server.bodytimeout import with_body_timeout

__all__ = ["SETTINGS_ENV", "allowed_methods", "app_from_env", "create_app"]

SETTINGS_ENV = "MEMTRACE_SETTINGS_JSON"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def allowed_methods(router: Router, path: bytes) -> list[str]:
    """The methods some route serves at `path`, for a 405's `Allow` header."""
    return [m for m in METHODS if any(route.match_by_path(path) for route in router.routes.get(m.encode(), ()))]


def _fallback(router: Router) -> Callable[[Request], Awaitable[Response]]:
    async def not_matched(request: Request) -> Response:
        allowed = allowed_methods(router, request.path.encode())
        if allowed:
            return error_response(405, "method not allowed", [(b"Allow", ", ".join(allowed).encode())])
        return error_response(404, "not found")

    return not_matched


def services(runtime: Runtime) -> Services:
    """What handlers may use of a runtime: services only."""
    return Services(auth=runtime.auth, memories=runtime.memories, ranked=RankedReads(runtime.memories),
                    agents=runtime.metadata.agents,
                    sessions=runtime.metadata.sessions, audit=runtime.metadata.audit, status=runtime.status)


def create_app(settings: Settings) -> Application:
    """The app with every route; its Runtime opens on start (BlackSheep's on_start runs in the worker's loop,
    before the first request) and closes on stop."""
    router = QueryCheckedRouter(openapi.accepted_queries())
    app = Application(router=router)
    router.fallback = _fallback(router)
    errors.install(app)
    deps = Deps(settings)
    for resource in (health, memories, agents, sessions, forget, metrics, timelines):
        resource.register(router, deps)
    docs.register(router, openapi.document_bytes(settings.limits))  # built once: a broken table fails here
    console.register(router)
    running: list[Runtime] = []

    async def on_start(application: Application) -> None:
        runtime = await Runtime.open(settings)
        deps.bind(services(runtime))
        running.append(runtime)
        await runtime.start()

    async def on_stop(application: Application) -> None:
        while running:
            await running.pop().close()

    app.on_start += on_start
    app.on_stop += on_stop
    return app


def app_from_env() -> Observed:
    """Granian's factory target: settings come serialised from `memtrace serve` (or are loaded afresh)."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = msgspec.json.decode(raw, type=Settings) if raw else load_settings()
    logs.configure(settings.server.log_format, settings.server.log_level)
    return Observed(TargetGuard(with_body_timeout(create_app(settings), settings.server.body_read_timeout_s)))
