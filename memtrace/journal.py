"""Durable local record of accepted memories until Arc has them, plus the dedup ledger.

Why a journal: a 201 must survive `kill -9` of every server process and an Arc outage, and reads must see
a memory before Arc makes it queryable. One SQLite file (WAL, synchronous=FULL) shared by every worker
process on the host holds:

- `journal`: each accepted memory as a compact msgpack row, pending until delivered to Arc, then kept for
  `retention_s` more (Arc's own buffer age) so reads can merge it; pruned after that.
- `dedup`: `(org_id, dedup_key) → time` for the whole dedup window, checked and written in the same
  transaction as the journal insert. `BEGIN IMMEDIATE` serialises that transaction across processes, so
  dedup is exact across concurrent requests and workers without asking Arc.
- `org_pending`: per-org count of undelivered rows, the bound for backpressure.
- `lease`: which process delivers to Arc (see `delivery.py`).

Group commit: requests queue their rows; one committer task writes everything queued in one transaction,
so concurrent requests share one fsync. Each process has two connections, each on its own thread: the
writer (synchronous=FULL, group commits only) and the reader (reads, delivery marks, pruning, leases), so
reads never queue behind a commit. Delivery marks use synchronous=NORMAL: a mark lost in a power cut only
means a row is delivered again, which readers already de-duplicate by id. Every write transaction first
takes an exclusive `flock` on `<journal>.lock`: SQLite's own busy handler sleeps in steps of up to 100 ms,
while a blocked flock wakes the moment the other process commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from memtrace.errors import Overloaded
from memtrace.memory.model import MemoryRow

T = TypeVar("T")

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    accepted_at REAL NOT NULL,
    row BLOB NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal(org_id, seq) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS journal_delivered ON journal(delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS journal_org_time ON journal(org_id, time_us);
DROP INDEX IF EXISTS journal_id;
CREATE TABLE IF NOT EXISTS dedup (
    org_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    PRIMARY KEY (org_id, dedup_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_time ON dedup(time_us);
CREATE TABLE IF NOT EXISTS org_pending (org_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
"""

_row_encoder = msgspec.msgpack.Encoder()
_row_decoder = msgspec.msgpack.Decoder(MemoryRow)


def encode_row(row: MemoryRow) -> bytes:
    return _row_encoder.encode(row)


def decode_row(blob: bytes) -> MemoryRow:
    return _row_decoder.decode(blob)


@dataclass(slots=True)
class AppendResult:
    """What one request's rows became: stored rows in request order, and how many were duplicates."""

    stored: list[MemoryRow]
    duplicate_indexes: list[int]


@dataclass(slots=True)
class _Pending:
    org_id: str
    rows: Sequence[MemoryRow]
    future: asyncio.Future[AppendResult]


@dataclass(slots=True)
class PendingBatch:
    """Undelivered rows of one org, oldest first, as the deliverer reads them."""

    org_id: str
    seqs: list[int]
    rows: list[MemoryRow]


@dataclass(slots=True)
class OrgBacklog:
    org_id: str
    pending: int
    oldest_accepted_at: float


@dataclass
class JournalConfig:
    path: Path
    dedup_window_s: int
    retention_s: float
    max_pending_per_org: int
    max_group_rows: int = 5000
    retry_after_s: int = 2


@dataclass
class _Stats:
    groups: int = 0
    rows: int = 0


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A connection tuned for a multi-process group-commit journal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _insert_many(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]],
                 tail: str = "") -> None:
    """Multi-row `VALUES (…),(…)` inserts, up to 500 rows per statement (7 × 500 bound parameters stay
    far below SQLite's limit). Measured on a 25-row group: 0.68 ms against 0.81 ms with `executemany`."""
    one = "(" + _marks(width) + ")"
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        params = [value for row in chunk for value in row]
        conn.execute(head + ",".join([one] * len(chunk)) + tail, params)


class _Db:
    """One SQLite connection on its own thread, with write transactions serialised across processes."""

    def __init__(self, conn: sqlite3.Connection, lock_path: Path, name: str) -> None:
        self.conn = conn
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` … `COMMIT` under the cross-process flock; rolled back on any error."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.conn.close()
        os.close(self._lock_fd)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)


class Journal:
    """Group-committed journal shared by the worker processes of one host.

    Create with `await Journal.open(config)`; every method is safe to call from the event loop.
    """

    def __init__(self, config: JournalConfig, writer: _Db, reader: _Db) -> None:
        self.config = config
        self._writer = writer
        self._reader = reader
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = _Stats()
        # Told, after each group commit in this process, how many rows each org got.
        self.on_commit: list[Callable[[dict[str, int]], None]] = []

    @classmethod
    async def open(cls, config: JournalConfig) -> Journal:
        lock_path = config.path.with_name(config.path.name + ".lock")
        loop = asyncio.get_running_loop()
        config.path.parent.mkdir(parents=True, exist_ok=True)
        writer = _Db(await loop.run_in_executor(None, connect, config.path, "FULL"), lock_path, "journal-w")

        def _schema() -> None:
            with writer.write() as conn:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)

        await writer.run(_schema)
        reader = _Db(await loop.run_in_executor(None, connect, config.path, "NORMAL"), lock_path, "journal-r")
        journal = cls(config, writer, reader)
        journal._committer = asyncio.create_task(journal._commit_loop(), name="journal-committer")
        return journal

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._committer is not None:
            await self._committer
        for db in (self._writer, self._reader):
            await db.run(db.close)
            db.shutdown()

    # --- accept path -------------------------------------------------------------------------------

    async def append(self, org_id: str, rows: Sequence[MemoryRow]) -> AppendResult:
        """Durably store `rows` for `org_id`, skipping duplicates within the dedup window.

        Returns after the group's fsync. Raises Overloaded when the org's undelivered rows would pass
        its bound; then nothing of this request is stored.
        """
        if self._closed:
            raise Overloaded("server is shutting down", retry_after=self.config.retry_after_s)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(org_id, rows, future))
        self._wakeup.set()
        return await future

    async def _commit_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                group: list[_Pending] = []
                taken = 0
                while self._queue and (not group or taken + len(self._queue[0].rows) <= self.config.max_group_rows):
                    item = self._queue.pop(0)
                    group.append(item)
                    taken += len(item.rows)
                await self._commit_group(group)
            if self._closed:
                return

    async def _commit_group(self, group: list[_Pending]) -> None:
        now_us = time.time_ns() // 1000
        try:
            outcomes: list[AppendResult | BaseException] = await self._writer.run(self._write_group, group, now_us)
        except BaseException as exc:
            outcomes = [exc] * len(group)
        stored: dict[str, int] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not item.future.done():
                    item.future.set_exception(outcome)
                continue
            if not item.future.done():
                item.future.set_result(outcome)
            if outcome.stored:
                stored[item.org_id] = stored.get(item.org_id, 0) + len(outcome.stored)
        self.stats.groups += 1
        for callback in self.on_commit:
            callback(stored)

    def _write_group(self, group: list[_Pending], now_us: int) -> list[AppendResult | BaseException]:
        """One transaction for the whole group: batched dedup lookup, journal inserts, pending counters."""
        window_start = now_us - self.config.dedup_window_s * 1_000_000
        accepted_at = now_us / 1e6
        blobs = [[encode_row(row) for row in item.rows] for item in group]  # before taking the lock
        keys_by_org: dict[str, set[str]] = {}
        for item in group:
            keys_by_org.setdefault(item.org_id, set()).update(row.dedup_key for row in item.rows)
        outcomes: list[AppendResult | BaseException] = []
        with self._writer.write() as conn:
            seen = self._recent_keys(conn, keys_by_org, window_start)
            pending = self._pending_counts(conn, keys_by_org)
            dedup_rows: list[tuple[str, str, int]] = []
            journal_rows: list[tuple[str, str, str, str, int, float, bytes]] = []
            for item, item_blobs in zip(group, blobs, strict=True):
                org_seen = seen.setdefault(item.org_id, set())
                if pending.get(item.org_id, 0) + len(item.rows) > self.config.max_pending_per_org:
                    outcomes.append(Overloaded("too many memories waiting for this org's Arc; retry later",
                                               retry_after=self.config.retry_after_s))
                    continue
                result = AppendResult([], [])
                for index, (row, blob) in enumerate(zip(item.rows, item_blobs, strict=True)):
                    if row.dedup_key in org_seen:
                        result.duplicate_indexes.append(index)
                        continue
                    org_seen.add(row.dedup_key)
                    dedup_rows.append((item.org_id, row.dedup_key, row.time_us))
                    journal_rows.append((item.org_id, row.id, row.agent_id, row.session_id, row.time_us,
                                         accepted_at, blob))
                    result.stored.append(row)
                pending[item.org_id] = pending.get(item.org_id, 0) + len(result.stored)
                outcomes.append(result)
            _insert_many(conn, "INSERT OR REPLACE INTO dedup(org_id, dedup_key, time_us) VALUES ", 3, dedup_rows)
            _insert_many(
                conn,
                "INSERT INTO journal(org_id, id, agent_id, session_id, time_us, accepted_at, row) VALUES ",
                7,
                journal_rows,
            )
            _insert_many(conn, "INSERT INTO org_pending(org_id, n) VALUES ", 2, list(pending.items()),
                         " ON CONFLICT(org_id) DO UPDATE SET n = excluded.n")
        self.stats.rows += len(journal_rows)
        return outcomes

    @staticmethod
    def _recent_keys(conn: sqlite3.Connection, keys_by_org: dict[str, set[str]], window_start: int
                     ) -> dict[str, set[str]]:
        """The keys of this group already stored within the window, per org: one lookup per 500 keys."""
        seen: dict[str, set[str]] = {}
        for org_id, keys in keys_by_org.items():
            found = seen.setdefault(org_id, set())
            ordered = list(keys)
            for start in range(0, len(ordered), 500):
                chunk = ordered[start : start + 500]
                sql = "SELECT dedup_key FROM dedup WHERE org_id = ? AND time_us >= ? AND dedup_key IN "
                cur = conn.execute(f"{sql}({_marks(len(chunk))})", (org_id, window_start, *chunk))
                found.update(key for (key,) in cur)
        return seen

    @staticmethod
    def _pending_counts(conn: sqlite3.Connection, org_ids: Iterable[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for org_id in org_ids:
            found = conn.execute("SELECT n FROM org_pending WHERE org_id = ?", (org_id,)).fetchone()
            counts[org_id] = int(found[0]) if found else 0
        return counts

    # --- delivery side -----------------------------------------------------------------------------

    async def backlog(self) -> list[OrgBacklog]:
        """Orgs with undelivered rows, with their count and the age of their oldest row (index lookups only)."""

        def _q() -> list[OrgBacklog]:
            cur = self._reader.conn.execute(
                "SELECT p.org_id, p.n, (SELECT j.accepted_at FROM journal j WHERE j.org_id = p.org_id"
                " AND j.delivered_at IS NULL ORDER BY j.seq LIMIT 1) FROM org_pending p WHERE p.n > 0"
            )
            return [OrgBacklog(o, int(n), float(t)) for o, n, t in cur if t is not None]

        result: list[OrgBacklog] = await self._reader.run(_q)
        return result

    async def pending_batches(self, org_ids: Sequence[str], limit: int) -> list[PendingBatch]:
        """The oldest undelivered rows of these orgs, at most `limit` in all, one batch per org, each in
        acceptance order (order per org is what delivery keeps)."""

        def _q() -> list[PendingBatch]:
            batches: dict[str, PendingBatch] = {}
            remaining = limit
            for start in range(0, len(org_ids), 500):
                if remaining <= 0:
                    break
                chunk = org_ids[start : start + 500]
                sql = "SELECT seq, org_id, row FROM journal WHERE delivered_at IS NULL AND org_id IN "
                params = (*chunk, remaining)
                cur = self._reader.conn.execute(f"{sql}({_marks(len(chunk))}) ORDER BY seq LIMIT ?", params)
                for seq, org_id, blob in cur:
                    batch = batches.get(org_id)
                    if batch is None:
                        batch = batches[org_id] = PendingBatch(org_id, [], [])
                    batch.seqs.append(seq)
                    batch.rows.append(decode_row(blob))
                    remaining -= 1
            return list(batches.values())

        result: list[PendingBatch] = await self._reader.run(_q)
        return result

    async def mark_delivered(self, batches: PendingBatch | Sequence[PendingBatch]) -> None:
        """Mark rows delivered (one transaction for all the batches) and lower each org's pending count."""
        todo = [batches] if isinstance(batches, PendingBatch) else list(batches)

        def _w() -> None:
            now = time.time()
            with self._reader.write() as conn:
                for batch in todo:
                    changed = 0
                    for start in range(0, len(batch.seqs), 500):
                        chunk = batch.seqs[start : start + 500]
                        sql = "UPDATE journal SET delivered_at = ? WHERE delivered_at IS NULL AND seq IN "
                        changed += conn.execute(f"{sql}({_marks(len(chunk))})", (now, *chunk)).rowcount
                    conn.execute("UPDATE org_pending SET n = max(0, n - ?) WHERE org_id = ?", (changed, batch.org_id))

        await self._reader.run(_w)

    async def prune(self) -> tuple[int, int]:
        """Drop rows Arc surely shows now, and dedup keys older than the window."""

        def _w() -> tuple[int, int]:
            now = time.time()
            cutoff_us = int((now - self.config.dedup_window_s) * 1_000_000)
            with self._reader.write() as conn:
                rows = conn.execute(
                    "DELETE FROM journal WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                    (now - self.config.retention_s,),
                ).rowcount
                keys = conn.execute("DELETE FROM dedup WHERE time_us < ?", (cutoff_us,)).rowcount
                conn.execute("DELETE FROM org_pending WHERE n = 0")
            return rows, keys

        result: tuple[int, int] = await self._reader.run(_w)
        return result

    # --- read side ---------------------------------------------------------------------------------

    async def recent_rows(
        self,
        org_id: str,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        since_us: int | None = None,
        ids: Sequence[str] = (),
    ) -> list[MemoryRow]:
        """The org's rows that Arc may not show yet (pending, or delivered within the retention)."""
        clauses = ["org_id = ?"]
        params: list[Any] = [org_id]
        if agent_id is not None:
            clauses.append("agent_id = ?")
            params.append(agent_id)
        if session_id is not None:
            clauses.append("session_id = ?")
            params.append(session_id)
        if since_us is not None:
            clauses.append("time_us >= ?")
            params.append(since_us)
        if ids:
            clauses.append(f"id IN ({_marks(len(ids))})")
            params.extend(ids)
        sql = "SELECT row FROM journal WHERE " + " AND ".join(clauses)  # noqa: S608 - fixed clauses, placeholders

        def _q() -> list[MemoryRow]:
            return [decode_row(blob) for (blob,) in self._reader.conn.execute(sql, params)]

        rows: list[MemoryRow] = await self._reader.run(_q)
        return rows

    async def pending_total(self, org_id: str) -> int:
        def _q() -> int:
            found = self._reader.conn.execute("SELECT n FROM org_pending WHERE org_id = ?", (org_id,)).fetchone()
            return int(found[0]) if found else 0

        n: int = await self._reader.run(_q)
        return n

    # --- delivery lease ----------------------------------------------------------------------------

    async def try_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the named lease; a holder whose process is gone from this host loses it at once."""

        def _w() -> bool:
            now = time.time()
            with self._reader.write() as conn:
                found = conn.execute("SELECT holder, expires_at FROM lease WHERE name = ?", (name,)).fetchone()
                if found is None or found[0] == holder or found[1] < now or not holder_alive(found[0]):
                    conn.execute(
                        "INSERT OR REPLACE INTO lease(name, holder, expires_at) VALUES (?, ?, ?)",
                        (name, holder, now + ttl_s),
                    )
                    return True
                return False

        taken: bool = await self._reader.run(_w)
        return taken

    async def release_lease(self, name: str, holder: str) -> None:
        def _w() -> None:
            with self._reader.write() as conn:
                conn.execute("DELETE FROM lease WHERE name = ? AND holder = ?", (name, holder))

        await self._reader.run(_w)


def holder_id() -> str:
    """`host:pid:start` names this process as a lease holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def holder_alive(holder: str) -> bool:
    """False only when the holder is a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
