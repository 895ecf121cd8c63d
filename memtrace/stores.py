"""The backend seam: SQLite files (one host, the default) or one shared PostgreSQL (`metadata.url`).

Both backends satisfy the same interfaces, `MetadataDB` and `Journal`; everything above them is unchanged.
The PostgreSQL modules import the optional driver (`memtrace[postgres]`), so they load only when chosen.
"""

from __future__ import annotations

from memtrace.config import Settings
from memtrace.journal import Journal, JournalConfig
from memtrace.metadata.db import MetadataDB, open_metadata


class BackendError(Exception):
    """`metadata.url` names something other than PostgreSQL, or the driver is missing."""


def _check(settings: Settings) -> None:
    if settings.metadata.url and not settings.metadata.shared:
        raise BackendError(f"metadata.url must start with postgresql:// (got {settings.metadata.url.split(':')[0]}:…)")


async def open_metadata_store(settings: Settings) -> MetadataDB:
    _check(settings)
    if settings.metadata.shared:
        try:
            from memtrace.metadata.pg import open_pg_metadata
        except ImportError as exc:
            raise BackendError("metadata.url needs the PostgreSQL driver: pip install 'memtrace[postgres]'") from exc
        import psycopg

        from memtrace.pgsql import describe

        try:
            return await open_pg_metadata(settings.metadata.url)
        except psycopg.OperationalError as exc:
            raise BackendError(f"cannot reach the shared database {describe(settings.metadata.url)}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return await open_metadata(settings.metadata_path)


async def open_journal_store(settings: Settings, config: JournalConfig | None = None) -> Journal:
    _check(settings)
    config = config or JournalConfig.from_settings(settings)
    if settings.metadata.shared:
        from memtrace.journal.pg import PgJournal

        return await PgJournal.open_url(config, settings.metadata.url)
    return await Journal.open(config)
