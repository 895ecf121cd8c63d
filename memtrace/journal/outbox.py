"""The delivery side of the journal: what waits for Arc, marking it delivered, and pruning.

Delivered rows stay `retention_s` longer so reads can merge them while Arc's buffer hides them; then
they are pruned, together with dedup keys older than the window. Delivery marks run at
synchronous=NORMAL: a mark lost in a power cut only means a row is delivered again, which readers
already de-duplicate by id.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from memtrace.journal._sqlite import ThreadedConnection, chunks, marks, out_of_space
from memtrace.journal.rows import decode_rows
from memtrace.rows import MemoryRow


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


class Outbox:
    def __init__(self, db: ThreadedConnection, dedup_window_s: int, retention_s: float) -> None:
        self._db = db
        self._dedup_window_s = dedup_window_s
        self._retention_s = retention_s

    async def backlog(self) -> list[OrgBacklog]:
        """Orgs with undelivered rows, with their count and the age of their oldest row (index lookups only)."""

        def _q() -> list[OrgBacklog]:
            cur = self._db.conn.execute(
                "SELECT p.org_id, p.n, (SELECT j.accepted_at FROM journal j WHERE j.org_id = p.org_id"
                " AND j.delivered_at IS NULL ORDER BY j.seq LIMIT 1) FROM org_pending p WHERE p.n > 0"
            )
            return [OrgBacklog(o, int(n), float(t)) for o, n, t in cur if t is not None]

        return await self._db.run(_q)

    async def pending_batches(self, org_ids: Sequence[str], limit: int) -> list[PendingBatch]:
        """The oldest undelivered rows of these orgs, at most `limit` in all, one batch per org, each in
        acceptance order (order per org is what delivery keeps)."""
        return (await self.take(org_ids, limit, None))[0]

    async def take(self, org_ids: Sequence[str], max_rows: int, max_bytes: int | None, after_seq: int = 0
                   ) -> tuple[list[PendingBatch], bool]:
        """Like `pending_batches`, also bounded by the rows' stored bytes (always at least one row), so one
        request never grows past what Arc takes however large the memories are. The flag says a bound was
        reached, i.e. more may be waiting.

        Only rows after `after_seq` are taken: a deliverer with requests in flight passes the last seq it took,
        so no row is taken twice while its first request is unanswered. The rows taken are the oldest `max_rows`
        of all these orgs together (one query per 500 orgs, merged by seq), so every pending row up to the last
        seq taken was taken and the caller's cursor skips nothing. (On the shared PostgreSQL journal a row of
        another org may commit after a higher seq was taken; that flush's cursor passes it, the next flush,
        which starts again from 0, takes it.)"""

        def _q() -> tuple[list[PendingBatch], bool]:
            sql = "SELECT seq, org_id, row FROM journal WHERE delivered_at IS NULL AND seq > ? AND org_id IN "
            cursors = [self._db.conn.execute(f"{sql}({marks(len(chunk))}) ORDER BY seq LIMIT ?",
                                             (after_seq, *chunk, max_rows)) for chunk in chunks(org_ids)]
            if not cursors:
                return [], False
            found: dict[str, tuple[list[int], list[bytes]]] = {}
            limit = max_bytes if max_bytes is not None else math.inf
            taken = size = 0
            more = False
            try:
                for seq, org_id, blob in heapq.merge(*cursors) if len(cursors) > 1 else cursors[0]:
                    if taken >= max_rows or (size and size + len(blob) > limit):
                        more = True
                        break
                    entry = found.get(org_id)
                    if entry is None:
                        entry = found[org_id] = ([], [])
                    entry[0].append(seq)
                    entry[1].append(blob)
                    size += len(blob)
                    taken += 1
                else:
                    more = taken >= max_rows
            finally:
                for cur in cursors:
                    cur.close()  # end the reads now, not when the cursors are collected
            # Decoded after the reads, one comprehension per org: no call per row through a helper.
            return [PendingBatch(org_id, seqs, decode_rows(blobs)) for org_id, (seqs, blobs) in found.items()], more

        return await self._db.run(_q)

    async def mark_delivered(self, batches: PendingBatch | Sequence[PendingBatch]) -> None:
        """Mark rows delivered (one transaction for all the batches) and lower each org's pending count."""
        todo = [batches] if isinstance(batches, PendingBatch) else list(batches)

        def _w(delete: bool) -> None:
            now = time.time()
            with self._db.write() as conn:
                for batch in todo:
                    changed = 0
                    for chunk in chunks(batch.seqs):
                        where = f"WHERE delivered_at IS NULL AND seq IN ({marks(len(chunk))})"
                        if delete:
                            changed += conn.execute(f"DELETE FROM journal {where}", chunk).rowcount  # noqa: S608
                        else:
                            sql = f"UPDATE journal SET delivered_at = ? {where}"  # noqa: S608
                            changed += conn.execute(sql, (now, *chunk)).rowcount
                    conn.execute("UPDATE org_pending SET n = max(0, n - ?) WHERE org_id = ?", (changed, batch.org_id))

        try:
            await self._db.run(_w, False)
        except sqlite3.Error as exc:
            if not out_of_space(exc):
                raise
            # No room even to mark them (a full disk): drop the delivered rows now, without the read retention,
            # rather than send them again and again; deleting is what frees the room.
            await self._db.run(_w, True)

    async def prune(self) -> tuple[int, int]:
        """Drop rows Arc surely shows now, and dedup keys older than the window."""

        def _w() -> tuple[int, int]:
            now = time.time()
            cutoff_us = int((now - self._dedup_window_s) * 1_000_000)
            with self._db.write() as conn:
                rows = conn.execute(
                    "DELETE FROM journal WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                    (now - self._retention_s,),
                ).rowcount
                keys = conn.execute("DELETE FROM dedup WHERE time_us < ?", (cutoff_us,)).rowcount
                conn.execute("DELETE FROM org_pending WHERE n = 0")
            return rows, keys

        return await self._db.run(_w)

    async def pending_total(self, org_id: str) -> int:
        def _q() -> int:
            found = self._db.conn.execute("SELECT n FROM org_pending WHERE org_id = ?", (org_id,)).fetchone()
            return int(found[0]) if found else 0

        return await self._db.run(_q)
