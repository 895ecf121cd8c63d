"""What `/ready` and `/metrics` report about this worker's storage, so handlers never touch storage directly.

A service over the metadata store, the journal and the Arc registry: whether metadata answers, whether the
journal refuses writes for lack of room, each org's Arc health (hosts and circuit states, never tokens)
and the delivery backlog.
"""

from __future__ import annotations

from typing import Any

from memtrace.arc.registry import ArcRegistry
from memtrace.journal import Journal, OrgBacklog
from memtrace.metadata.db import MetadataDB

__all__ = ["StatusService"]


class StatusService:
    def __init__(self, metadata: MetadataDB, journal: Journal, registry: ArcRegistry) -> None:
        self._metadata = metadata
        self._journal = journal
        self._registry = registry

    async def metadata_ok(self) -> bool:
        """True when the metadata DB answers a trivial read; any failure means unavailable (never raises)."""
        try:
            await self._metadata.change_version()
        except Exception:
            return False
        return True

    @property
    def journal_full(self) -> bool:
        """True while new memories are refused for lack of journal space."""
        return self._journal.full

    def arc_health(self) -> dict[str, dict[str, Any]]:
        """Per-org Arc health keyed by org id (an operator's detail: /ready shows it to admin keys only)."""
        return self._registry.health_snapshot()

    async def dead_letters(self) -> int:
        """Memories Arc refused on their own, set aside (still readable) for an operator."""
        return await self._journal.dead_letters.count()

    async def backlog(self) -> list[OrgBacklog]:
        """Per org: rows accepted but not yet delivered, and when the oldest was accepted."""
        return await self._journal.backlog()

    async def pending_rows(self) -> int:
        """Rows accepted but not yet delivered to Arc, over every org (the journal is the one source)."""
        return sum(org.pending for org in await self.backlog())
