"""The composition root's objects: every resource of one worker, built once, started once, closed once.

`Runtime.open` opens the metadata store and the journal, builds the Arc registry (with its connection pool)
and the services over them; `start` launches the background work (delivery, forgetting, retention, metadata
refresh, activity flush, Arc health checks); `close` stops it and closes every resource even when one close
fails (the first error is raised once all are closed, like Litestream's `Close`). If `open` fails half-way,
what it had opened is closed before the error propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from memtrace import supervise
from memtrace.activity import ActivityTracker
from memtrace.arc.binding import ArcBinding, decrypt_bindings
from memtrace.arc.client import ArcPool
from memtrace.arc.registry import ArcRegistry
from memtrace.auth import Authenticator
from memtrace.config import Settings
from memtrace.crypto import load_master_key
from memtrace.delivery import Deliverer
from memtrace.journal import Journal
from memtrace.memory.retention import apply_policies
from memtrace.memory.service import MemoryService
from memtrace.metadata.db import MetadataDB
from memtrace.names import Names
from memtrace.readiness import StatusService
from memtrace.stores import open_journal_store, open_metadata_store

__all__ = ["ACTIVITY_FLUSH_S", "HEALTH_CHECK_S", "Runtime", "binding_loader", "close_all"]

log = logging.getLogger("memtrace")

ACTIVITY_FLUSH_S = 1.0
HEALTH_CHECK_S = 2.0

Closer = Callable[[], Awaitable[None]]


def binding_loader(metadata: MetadataDB) -> Callable[[], Awaitable[list[ArcBinding]]]:
    """Load and decrypt every org's Arc binding; the master key is needed only if some key is stored."""

    async def load() -> list[ArcBinding]:
        rows = await metadata.arc_instances.list_all()
        master = load_master_key() if any(r.api_key_cipher for r in rows) else None
        return decrypt_bindings(rows, master)

    return load


async def close_all(closers: list[tuple[str, Closer]]) -> None:
    """Run every closer in order even when some fail; log each failure and raise the first once all ran."""
    first: BaseException | None = None
    for name, close in closers:
        try:
            await close()
        except Exception as exc:
            log.exception("closing %s failed", name)
            first = first or exc
    if first is not None:
        raise first


@dataclass(slots=True, kw_only=True)
class Runtime:
    settings: Settings
    metadata: MetadataDB
    journal: Journal
    registry: ArcRegistry
    activity: ActivityTracker
    auth: Authenticator
    memories: MemoryService
    status: StatusService
    deliverer: Deliverer
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    cancelled: list[asyncio.Task[None]] = field(default_factory=list)  # loops that end only by cancellation

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Open every resource and build the services; nothing runs in the background until `start`."""
        opened: list[tuple[str, Closer]] = []
        try:
            metadata = await open_metadata_store(settings)  # SQLite, or the shared PostgreSQL (metadata.url)
            opened.append(("metadata", metadata.close))
            journal = await open_journal_store(settings)
            opened.append(("journal", journal.close))
            registry = ArcRegistry(binding_loader(metadata), ArcPool(settings.arc), settings.arc)
            opened.append(("arc pool", registry.pool.close))
            await registry.refresh()
        except BaseException:
            await close_all(opened[::-1])
            raise
        names = Names(metadata.agents, metadata.sessions, journal.forgotten)
        activity = ActivityTracker(metadata.agents.touch_many, metadata.sessions.touch_many, names.settle)
        return cls(
            settings=settings, metadata=metadata, journal=journal, registry=registry, activity=activity,
            auth=Authenticator.from_settings(metadata.api_keys.get_by_lookup, settings.auth),
            memories=MemoryService(journal, registry, settings.limits, activity, names),
            status=StatusService(metadata, journal, registry),
            deliverer=Deliverer(journal, registry, settings.arc, settings.delivery.buckets),
        )

    async def start(self) -> None:
        """Launch the background work; each loop runs until `close`."""
        s = self.settings
        self.deliverer.start()
        self.tasks.append(asyncio.create_task(
            self.memories.forgetter.run(lambda: self.deliverer.is_leader, self.stopping)))
        self.tasks.append(asyncio.create_task(supervise.every(s.retention.interval_s, self._retention_round,
                                                              "retention", self.stopping)))
        refresh = await self._refresher()
        self.tasks.extend([
            supervise.start("metadata refresh", lambda: supervise.every(s.auth.refresh_interval_s, refresh,
                                                                        "metadata refresh", self.stopping)),
            supervise.start("activity flush", lambda: supervise.every(ACTIVITY_FLUSH_S, self.activity.flush,
                                                                      "activity flush", self.stopping)),
        ])
        self.cancelled.append(supervise.start("arc health checks",
                                              lambda: self.registry.run_health_checks(HEALTH_CHECK_S)))
        if s.metadata.shared and s.metadata.listen:
            from memtrace.metadata.listen import listen_for_changes

            self.cancelled.append(supervise.start("metadata listen",
                                                  lambda: listen_for_changes(s.metadata.url, self._changed)))

    async def _changed(self) -> None:
        """Keys or bindings changed (another host's or the CLI's write, or a reconnect): drop and reload."""
        self.auth.clear()
        await self.registry.refresh()

    async def _retention_round(self) -> None:
        """Only the delivery lease holder applies retention, so one process of the host does it."""
        if self.deliverer.is_leader:
            await apply_policies(self.memories.forgetter, self.metadata.audit, await self.metadata.retention.list())

    async def _refresher(self) -> Closer:
        """A step that drops cached keys and reloads Arc bindings when the metadata changed (admin edits)."""
        last_version = await self.metadata.change_version()

        async def refresh_if_changed() -> None:
            nonlocal last_version
            version = await self.metadata.change_version()
            if version != last_version:
                last_version = version
                await self._changed()

        return refresh_if_changed

    async def close(self) -> None:
        """Stop the background work, flush what the deadline allows, then close every resource."""
        self.stopping.set()
        for task in self.cancelled:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.cancelled, return_exceptions=True)
        await close_all([
            ("deliverer", lambda: self.deliverer.stop(self.settings.arc.shutdown_deadline_s)),
            ("activity", self.activity.flush),
            ("journal", self.journal.close),
            ("arc pool", self.registry.pool.close),
            ("metadata", self.metadata.close),
        ])
