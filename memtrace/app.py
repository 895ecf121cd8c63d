"""Composition root: build the BlackSheep app from Settings; start and stop everything in its lifespan.

Each Granian worker process runs one app: its own metadata connection, journal connection, pooled Arc
sessions and background loops. What must be shared between workers (dedup, journal, delivery lease,
revocations) is shared through SQLite on disk, never through process memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import msgspec
from blacksheep import Application, Request, Response, Router

from memtrace import logs, supervise
from memtrace.activity import ActivityTracker
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
from memtrace.api.deps import Deps
from memtrace.api.guard import TargetGuard
from memtrace.api.http import error_response
from memtrace.arc.binding import ArcBinding
from memtrace.arc.client import ArcPool
from memtrace.arc.delivery import Deliverer
from memtrace.arc.registry import ArcRegistry
from memtrace.auth import Authenticator
from memtrace.bodytimeout import with_body_timeout
from memtrace.config import Settings, load_settings
from memtrace.crypto import load_master_key
from memtrace.memory.retention import apply_policies
from memtrace.memory.service import MemoryService
from memtrace.metadata.agents import Agents
from memtrace.metadata.api_keys import ApiKeys
from memtrace.metadata.arc_instances import ArcInstances, decrypt_bindings
from memtrace.metadata.db import MetadataDB
from memtrace.metadata.forgetting import Audit, Retention
from memtrace.metadata.sessions import Sessions
from memtrace.observe import Observed, RouteLabelRouter
from memtrace.stores import open_journal_store, open_metadata_store

log = logging.getLogger("memtrace")

SETTINGS_ENV = "MEMTRACE_SETTINGS_JSON"
ACTIVITY_FLUSH_S = 1.0
HEALTH_CHECK_S = 2.0
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def binding_loader(metadata: MetadataDB) -> Callable[[], Awaitable[list[ArcBinding]]]:
    """Load and decrypt every org's Arc binding; the master key is needed only if some key is stored."""
    instances = ArcInstances(metadata)

    async def load() -> list[ArcBinding]:
        rows = await instances.list_all()
        master = load_master_key() if any(r.api_key_cipher for r in rows) else None
        return decrypt_bindings(rows, master)

    return load


async def _every(interval: float, step: Callable[[], Awaitable[None]], name: str, stopping: asyncio.Event) -> None:
    """Run `step` every `interval` until `stopping` is set; a step in progress is never cancelled midway.
    A failing step is logged and the next one waits longer (backoff up to 30 s), so a persistent fault
    neither stops the loop nor floods the log."""
    failures = 0
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=supervise.backoff_s(failures, interval) if failures
                                   else interval)
        if stopping.is_set():
            return
        try:
            await step()
            failures = 0
        except Exception:
            failures += 1
            log.exception("%s failed (%d in a row)", name, failures)


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


def create_app(settings: Settings) -> Application:
    router = RouteLabelRouter()
    app = Application(router=router)
    router.fallback = _fallback(router)
    errors.install(app)
    document = openapi.document_bytes(settings.limits)  # built once; a broken table fails here, at start-up
    tasks: list[asyncio.Task[None]] = []
    stopping = asyncio.Event()
    health_task: list[asyncio.Task[None]] = []
    running: list[tuple[Deps, Deliverer]] = []

    async def on_start(application: Application) -> None:
        metadata = await open_metadata_store(settings)
        journal = await open_journal_store(settings)
        registry = ArcRegistry(binding_loader(metadata), ArcPool(settings.arc), settings.arc)
        await registry.refresh()
        agent_repo, session_repo = Agents(metadata), Sessions(metadata)
        activity = ActivityTracker(agent_repo.touch_many, session_repo.touch_many)
        auth = Authenticator.from_settings(ApiKeys(metadata).get_by_lookup, settings.auth)
        deps = Deps(
            settings=settings, metadata=metadata, journal=journal, registry=registry, auth=auth,
            memories=MemoryService(journal, registry, settings.limits, activity),
            agents=agent_repo, sessions=session_repo,
        )
        for resource in (health, memories, agents, sessions, forget, metrics, timelines):
            resource.register(router, deps)
        docs.register(router, document)
        console.register(router)
        router.apply_routes()  # routes need the started components, so they are added here, not at import
        router.sort_routes()  # type: ignore[no-untyped-call]
        deliverer = Deliverer(journal, registry, settings.arc, settings.delivery.buckets)
        deliverer.start()
        running.append((deps, deliverer))
        tasks.append(asyncio.create_task(deps.memories.forgetter.run(lambda: deliverer.is_leader, stopping)))

        async def retention_round() -> None:
            if deliverer.is_leader:
                await apply_policies(deps.memories.forgetter, Audit(metadata), await Retention(metadata).list())

        tasks.append(asyncio.create_task(_every(settings.retention.interval_s, retention_round, "retention",
                                                stopping)))

        last_version = await metadata.change_version()

        async def refresh_if_changed() -> None:
            nonlocal last_version
            version = await metadata.change_version()
            if version != last_version:
                last_version = version
                auth.clear()
                await registry.refresh()

        tasks.extend([
            supervise.start("metadata refresh", lambda: _every(settings.auth.refresh_interval_s, refresh_if_changed,
                                                                "metadata refresh", stopping)),
            supervise.start("activity flush", lambda: _every(ACTIVITY_FLUSH_S, activity.flush, "activity flush",
                                                              stopping)),
        ])
        health_task.append(supervise.start("arc health checks", lambda: registry.run_health_checks(HEALTH_CHECK_S)))
        if settings.metadata.shared and settings.metadata.listen:
            from memtrace.metadata.listen import listen_for_changes

            async def changed() -> None:
                auth.clear()
                await registry.refresh()

            health_task.append(supervise.start("metadata listen",
                                               lambda: listen_for_changes(settings.metadata.url, changed)))

    async def on_stop(application: Application) -> None:
        stopping.set()
        for task in health_task:
            task.cancel()
        await asyncio.gather(*tasks, *health_task, return_exceptions=True)
        for deps, deliverer in running:
            await deliverer.stop(settings.arc.shutdown_deadline_s)
            await deps.memories.activity.flush()
            await deps.journal.close()
            await deps.registry.pool.close()
            await deps.metadata.close()

    app.on_start += on_start
    app.on_stop += on_stop
    return app


def app_from_env() -> Observed:
    """Granian's factory target: settings come serialised from `memtrace serve` (or are loaded afresh)."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = msgspec.json.decode(raw, type=Settings) if raw else load_settings()
    logs.configure(settings.server.log_format, settings.server.log_level)
    return Observed(TargetGuard(with_body_timeout(create_app(settings), settings.server.body_read_timeout_s)))
