"""Durable local record of accepted memories until Arc has them, plus the dedup ledger.

Why a journal: a 201 must survive `kill -9` of every server process and an Arc outage, and reads must see
a memory before Arc makes it queryable. One SQLite file (WAL) shared by every worker process on the host
holds:

- `journal`: each accepted memory as a compact msgpack row (`rows.py`), pending until delivered to Arc,
  then kept for `retention_s` more (Arc's own buffer age) so reads can merge it; pruned after that.
- `dedup`: `(org_id, dedup_key) → time` for the whole dedup window, checked and written in the same
  transaction as the journal insert (`committer.py`).
- `org_pending`: per-org count of undelivered rows, the bound for backpressure.
- `lease`: which process delivers to Arc (`lease.py`).
- `dead_letter`: memories Arc refused on their own, set aside readable for an operator (`deadletter.py`).
- `deletions`: forgotten memories until Arc has surely deleted them too; reads hide them (`forget.py`).

Each process opens two connections, each on its own thread (`_sqlite.py`): the *commit* connection
(synchronous=FULL, group commits only) and the *bookkeeping* connection (reads, delivery marks, pruning,
leases; synchronous=NORMAL), so reads never queue behind a commit.

    committer.py   group commit, backpressure and dedup rules       → GroupCommitter
    outbox.py      pending batches, delivery marks, pruning          → Outbox
    reads.py       recent rows for read-your-writes                  → RecentRows
    lease.py       the delivery lease                                → Leases
    deadletter.py  memories Arc can never take, kept for an operator → DeadLetters
    forget.py      durable deletions, dropping rows and ledger keys  → Forgets
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from memtrace.config import Settings
from memtrace.journal import _sqlite, deadletter, forget
from memtrace.journal._sqlite import ThreadedConnection
from memtrace.journal.committer import AcceptRules, AppendResult, CommitObserver, CommitStats, GroupCommitter
from memtrace.journal.deadletter import DeadLetter, DeadLetters
from memtrace.journal.forget import Deletion, Forgets, Recorded
from memtrace.journal.lease import Leases, holder_alive, holder_id
from memtrace.journal.outbox import OrgBacklog, Outbox, PendingBatch
from memtrace.journal.reads import RecentQuery, RecentRows
from memtrace.rows import MemoryFilter, MemoryRow

__all__ = [
    "AppendResult",
    "DeadLetter",
    "Deletion",
    "Journal",
    "JournalConfig",
    "OrgBacklog",
    "PendingBatch",
    "RecentQuery",
    "Recorded",
    "holder_alive",
    "holder_id",
]


@dataclass
class JournalConfig:
    path: Path
    dedup_window_s: int
    retention_s: float
    max_pending_per_org: int
    max_group_rows: int = 5000
    retry_after_s: int = 2
    # Bound on the journal's size (0: none). Accepts stop (503) at 7/8 of it: the last eighth is kept for
    # delivery marks and dead letters, so a full journal can always drain.
    max_size_mb: float = 0

    @classmethod
    def from_settings(cls, settings: Settings, path: Path | None = None) -> JournalConfig:
        """The journal every process opens for `settings` (server, preflight, admin): one place, one config."""
        return cls(
            path=settings.journal_path if path is None else path,
            dedup_window_s=settings.dedup.window_s,
            retention_s=settings.journal.retention_s,
            max_pending_per_org=settings.arc.max_pending_per_org,
            max_group_rows=settings.journal.max_group_rows,
            max_size_mb=settings.journal.max_size_mb,
        )


class Journal:
    """The journal of one process: its two connections and the parts that use them.

    Create with `await Journal.open(config)`; every method is safe to call from the event loop.
    """

    def __init__(self, config: JournalConfig, commits: ThreadedConnection, bookkeeping: ThreadedConnection) -> None:
        self.config = config
        self._commits = commits
        self._bookkeeping = bookkeeping
        self.committer = GroupCommitter(commits, AcceptRules(
            config.dedup_window_s, config.max_pending_per_org, config.max_group_rows, config.retry_after_s))
        self.outbox = Outbox(bookkeeping, config.dedup_window_s, config.retention_s)
        self.recent = RecentRows(bookkeeping)
        # The org's rows that Arc may not show yet (pending, or delivered within the retention).
        self.recent_rows = self.recent.fetch
        self.leases = Leases(bookkeeping)
        self.dead_letters = DeadLetters(bookkeeping)
        self.forgets = Forgets(bookkeeping)

    @classmethod
    async def open(cls, config: JournalConfig) -> Journal:
        config.path.parent.mkdir(parents=True, exist_ok=True)
        max_bytes = int(config.max_size_mb * 1024 * 1024)
        commits = await ThreadedConnection.open(config.path, "FULL", "journal-commit", max_bytes - max_bytes // 8)
        for schema in (_sqlite.SCHEMA, deadletter.SCHEMA, forget.SCHEMA):
            await commits.run(commits.create_schema, schema)
        bookkeeping = await ThreadedConnection.open(config.path, "NORMAL", "journal-bookkeeping", max_bytes)
        journal = cls(config, commits, bookkeeping)
        journal.committer.start()
        return journal

    async def close(self) -> None:
        await self.committer.close()
        await self._commits.close()
        await self._bookkeeping.close()

    @property
    def stats(self) -> CommitStats:
        return self.committer.stats

    @property
    def full(self) -> bool:
        """True while new memories are refused for lack of space (disk full or `max_size_mb`)."""
        return self.committer.full

    @property
    def on_commit(self) -> list[CommitObserver]:
        return self.committer.observers

    async def append(self, org_id: str, rows: Sequence[MemoryRow]) -> AppendResult:
        """Durably store `rows` for `org_id`, skipping duplicates within the dedup window.

        Returns after the group's fsync. Raises Overloaded when the org's undelivered rows would pass
        its bound; then nothing of this request is stored.
        """
        return await self.committer.append(org_id, rows)

    async def backlog(self) -> list[OrgBacklog]:
        return await self.outbox.backlog()

    async def pending_batches(self, org_ids: Sequence[str], limit: int) -> list[PendingBatch]:
        return await self.outbox.pending_batches(org_ids, limit)

    async def take_pending(self, org_ids: Sequence[str], max_rows: int, max_bytes: int, after_seq: int = 0
                           ) -> tuple[list[PendingBatch], bool]:
        return await self.outbox.take(org_ids, max_rows, max_bytes, after_seq)

    async def dead_letter(self, org_id: str, seq: int, arc_status: int, arc_error: str, first_attempt_at: float,
                          attempts: int) -> bool:
        return await self.dead_letters.quarantine(org_id, seq, arc_status, arc_error, first_attempt_at, attempts)

    async def mark_delivered(self, batches: PendingBatch | Sequence[PendingBatch]) -> None:
        await self.outbox.mark_delivered(batches)

    async def prune(self) -> tuple[int, int]:
        return await self.outbox.prune()

    async def pending_total(self, org_id: str) -> int:
        return await self.outbox.pending_total(org_id)

    async def try_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        return await self.leases.try_take(name, holder, ttl_s)

    async def release_lease(self, name: str, holder: str) -> None:
        await self.leases.release(name, holder)

    async def claim_buckets(self, holder: str, buckets: int, ttl_s: float) -> frozenset[int] | None:
        """The delivery buckets `holder` may deliver now; None: not bucketed (this host's journal is its own, the
        `deliverer` lease decides). The shared PostgreSQL journal overrides this (`journal/pg.py`)."""
        return None

    async def release_buckets(self, holder: str) -> None:
        return None

    # --- forgetting (forget.py) ----------------------------------------------------------------------

    async def record_deletion(self, org_id: str, f: MemoryFilter, claim_s: float) -> Recorded:
        """Durably record a deletion; drops the matching journal rows and their ledger keys in the same
        transaction."""
        return await self.forgets.record(org_id, f, claim_s)

    async def forgotten(self, org_id: str) -> tuple[MemoryFilter, ...]:
        """The org's unfinished deletions, which every read hides."""
        return await self.forgets.active(org_id)

    async def recent_unless_forgetting(self, q: RecentQuery) -> tuple[tuple[MemoryFilter, ...], list[MemoryRow]]:
        """In one call on the reads' thread: the org's unfinished deletions and, only when there are none, its
        recent rows (`RecentRows.fetch`). A read that bets on no deletions saves a round trip this way."""

        def _q() -> tuple[tuple[MemoryFilter, ...], list[MemoryRow]]:
            deletions = self.forgets.active_now(q.org_id)
            return (deletions, []) if deletions else ((), self.recent.fetch_now(q))

        return await self._bookkeeping.run(_q)

    async def undelivered_matching(self, org_id: str, f: MemoryFilter) -> int:
        return await self.forgets.undelivered_matching(org_id, f)

    async def delivered_ids_matching(self, org_id: str, f: MemoryFilter) -> tuple[str, ...]:
        return await self.forgets.delivered_ids_matching(org_id, f)

    async def release_dedup_keys(self, org_id: str, keys: Sequence[tuple[str, int]]) -> None:
        await self.forgets.release_keys(org_id, keys)

    async def due_deletions(self, limit: int = 100) -> list[Deletion]:
        return await self.forgets.due(limit)

    async def deletion_applied(self, deletion_id: int, was: str, arc_deleted: int, settle_s: float) -> str:
        return await self.forgets.applied(deletion_id, was, arc_deleted, settle_s)

    async def deletion_failed(self, deletion_id: int, error: str, retry_in_s: float) -> None:
        await self.forgets.failed(deletion_id, error, retry_in_s)

    async def drop_org(self, org_id: str) -> int:
        return await self.forgets.drop_org(org_id)
