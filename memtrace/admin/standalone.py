"""Forgetting outside the server, for the admin CLI: the same journal, Arc registry and Forgetter the server
uses, talking to each org's Arc directly with its decrypted binding (the master key is needed when a binding
holds an Arc token). With a shared PostgreSQL the journal is the shared one, like the servers'."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from memtrace.arc.client import ArcPool
from memtrace.arc.registry import ArcRegistry
from memtrace.config import Settings
from memtrace.journal import Journal, JournalConfig
from memtrace.memory.forget import Forgetter
from memtrace.memory.service import CLAIM_S
from memtrace.metadata.db import MetadataDB
from memtrace.runtime import binding_loader


@contextlib.asynccontextmanager
async def standalone_forgetter(settings: Settings, metadata: MetadataDB, journal_path: Path
                               ) -> AsyncIterator[Forgetter]:
    config = JournalConfig.from_settings(settings, journal_path)
    url = getattr(metadata, "url", "")  # a shared PostgreSQL holds the journal too (metadata.url or --db)
    if url:
        from memtrace.journal.pg import PgJournal

        journal: Journal = await PgJournal.open_url(config, url)
    else:
        journal = await Journal.open(config)
    pool = ArcPool(settings.arc)
    try:
        registry = ArcRegistry(binding_loader(metadata), pool, settings.arc)
        await registry.refresh()
        yield Forgetter(journal, registry, settle_s=settings.journal.retention_s,
                        dedup_window_s=settings.dedup.window_s, claim_s=CLAIM_S)
    finally:
        await pool.close()
        await journal.close()
