"""The set of open databases, their writer threads, and the write counters behind the stats endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from memtrace.arclite.ingest import DATABASE_RE, Batch
from memtrace.arclite.storage import Database

log = logging.getLogger("memtrace.arclite")
SUFFIX = ".duckdb"
T = TypeVar("T")


@dataclass
class Stats:
    """Successful writes since process start, so load tests can check nothing was lost or doubled."""

    write_requests: int = 0
    rows_written: int = 0
    by_database: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, db: str, batches: list[Batch]) -> None:
        self.write_requests += 1
        entry = self.by_database.setdefault(db, {"write_requests": 0, "rows": {}})
        entry["write_requests"] += 1
        for b in batches:
            self.rows_written += b.rows
            entry["rows"][b.measurement] = entry["rows"].get(b.measurement, 0) + b.rows

    def as_json(self) -> dict[str, Any]:
        return {"write_requests": self.write_requests, "rows_written": self.rows_written,
                "by_database": self.by_database}


class Registry:
    """Opens each database once; a database's writes all go through its own single-thread executor."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._dbs: dict[str, Database] = {}
        self._writers: dict[str, ThreadPoolExecutor] = {}
        self._open_lock = asyncio.Lock()
        self._empty: Database | None = None

    def path(self, name: str) -> Path:
        return self.data_dir / f"{name}{SUFFIX}"

    def names(self) -> list[str]:
        """Databases that exist on disk (Arc lists its storage directories the same way)."""
        found = {p.name[: -len(SUFFIX)] for p in self.data_dir.glob(f"*{SUFFIX}")}
        return sorted(n for n in found | set(self._dbs) if DATABASE_RE.match(n))

    async def open_existing(self) -> None:
        """Open every database at start so WALs are replayed and leftover staged rows get flushed."""
        for name in self.names():
            await self.get(name, create=True)

    async def get(self, name: str, create: bool) -> Database:
        db = self._dbs.get(name)
        if db is not None:
            return db
        async with self._open_lock:
            if name in self._dbs:
                return self._dbs[name]
            if not create and not self.path(name).exists():
                if self._empty is None:
                    self._empty = await asyncio.to_thread(Database, "", None)
                return self._empty
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"arclite-w-{name}")
            db = await asyncio.get_running_loop().run_in_executor(writer, Database, name, self.path(name))
            self._writers[name] = writer
            self._dbs[name] = db
            log.info("opened database %s (%s)", name, db.path)
            return db

    async def existing(self, name: str) -> Database | None:
        """The database if it exists (open or on disk); never creates one."""
        if name not in self._dbs and not self.path(name).exists():
            return None
        return await self.get(name, create=True)

    async def on_writer(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writers[name], fn, *args)

    async def write(self, name: str, batches: list[Batch], staged: bool) -> None:
        db = await self.get(name, create=True)
        await self.on_writer(name, db.write, batches, staged)

    async def flush(self, cutoff: int | None) -> int:
        """Move staged rows older than `cutoff` (µs; None = all) into their measurements."""
        moved = 0
        for name, db in list(self._dbs.items()):
            if db.pending_since is not None and (cutoff is None or db.pending_since <= cutoff):
                moved += await self.on_writer(name, db.flush_staged, cutoff)
        return moved

    async def run_flusher(self, age_ms: int) -> None:
        """Emulate Arc's buffer: staged rows become queryable once they are `age_ms` old."""
        tick = max(0.01, min(0.25, age_ms / 4000))
        while True:
            await asyncio.sleep(tick)
            try:
                await self.flush(time.time_ns() // 1000 - age_ms * 1000)
            except Exception:
                log.exception("background flush failed; will retry")

    def databases(self) -> dict[str, Database]:
        return dict(self._dbs)

    async def close(self) -> None:
        for name, db in list(self._dbs.items()):
            writer = self._writers.pop(name)
            await asyncio.get_running_loop().run_in_executor(writer, db.close)
            writer.shutdown(wait=True)
            log.info("closed database %s", name)
        self._dbs.clear()
        if self._empty is not None:
            self._empty.close()
