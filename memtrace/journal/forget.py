"""Durable deletions: what was forgotten, until Arc has surely deleted it too.

A deletion is recorded in ONE transaction with its effects on the journal: the org's matching rows are
dropped (undelivered ones never reach Arc; `org_pending` goes down by their number) and their dedup
ledger entries are released, so the same content can be written again at once. The deletion row keeps
the filter (bounded by `until_us` = its creation, so later writes are never affected) and a state:

    pending   Arc has not confirmed the delete yet (unreachable, or the request is still running)
    settling  Arc deleted once; rows that Arc still held in its write buffer may land afterwards, so the
              delete is re-applied once the buffer age (`journal.retention_s`) has passed
    (gone)    the second apply succeeded: the row is removed

While the row exists every read hides what it matches (`MemoryFilter.hide`), in Arc's answers and in the
journal's rows alike. Surviving `kill -9` is the point: a pending deletion is applied by whichever process
holds the delivery lease after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from memtrace.journal._sqlite import ThreadedConnection, chunks, marks, narrowing
from memtrace.journal.rows import decode_row
from memtrace.rowfilter import matches
from memtrace.rows import MemoryFilter, MemoryRow

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS deletions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    filter BLOB NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    apply_after REAL NOT NULL,
    dropped INTEGER NOT NULL,
    arc_deleted INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS deletions_org ON deletions(org_id);
CREATE INDEX IF NOT EXISTS deletions_due ON deletions(apply_after);
"""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(MemoryFilter)


@dataclass(slots=True)
class Deletion:
    id: int
    org_id: str
    filter: MemoryFilter
    created_at: float
    state: str
    dropped: int
    arc_deleted: int
    attempts: int
    last_error: str


@dataclass(slots=True)
class Recorded:
    """A new deletion and what it dropped from the journal (undelivered rows never reach Arc)."""

    deletion: Deletion
    dropped_pending: int
    dropped_delivered: int
    delivered_ids: tuple[str, ...] = ()
    """Ids of the dropped rows that were delivered to Arc (not the dead letters): Arc may still buffer them."""


def _deletion(row: Sequence[Any]) -> Deletion:
    did, org_id, blob, created_at, state, dropped, arc_deleted, attempts, last_error = row
    return Deletion(int(did), org_id, _decoder.decode(blob), float(created_at), state, int(dropped),
                    int(arc_deleted), int(attempts), last_error)


_COLUMNS = "id, org_id, filter, created_at, state, dropped, arc_deleted, attempts, last_error"


def _candidates(conn: Any, org_id: str, f: MemoryFilter, table: str = "journal"
                ) -> list[tuple[int, MemoryRow, bool]]:
    """The org's rows matching `f` in the journal, (seq, row, delivered), or in the dead letters, (entry, row,
    True): a dead-lettered memory is still readable, so forgetting must reach it too."""
    where, params = narrowing(org_id, agent_id=f.agent_id, session_id=f.session_id, since_us=f.since_us,
                              until_us=f.until_us, ids=f.ids)
    columns = "seq, row, delivered_at FROM journal" if table == "journal" else "entry, row, 1 FROM dead_letter"
    sql = f"SELECT {columns} WHERE {where}"
    out: list[tuple[int, MemoryRow, bool]] = []
    for seq, blob, delivered_at in conn.execute(sql, params):
        row = decode_row(blob)
        if matches(row, f):
            out.append((int(seq), row, delivered_at is not None))
    return out


class Forgets:
    """The deletions table, on the journal's bookkeeping connection."""

    def __init__(self, db: ThreadedConnection) -> None:
        self._db = db

    async def record(self, org_id: str, f: MemoryFilter, claim_s: float) -> Recorded:
        """Record a deletion of the org's rows matching `f` and drop them from the journal, atomically.

        `f` must already be bounded by `until_us` (the moment of the request). The deletion is not due for
        the background applier for `claim_s`: the caller applies it at once and reports the outcome.
        """
        stored = msgspec.structs.replace(f, hide=())
        blob = _encoder.encode(stored)

        def _w() -> Recorded:
            now = time.time()
            with self._db.write() as conn:
                found = _candidates(conn, org_id, stored)
                seqs = [seq for seq, _, _ in found]
                pending = sum(1 for _, _, delivered in found if not delivered)
                delivered = tuple(row.id for _, row, was_delivered in found if was_delivered)
                for chunk in chunks(seqs):
                    sql = "DELETE FROM journal WHERE seq IN "
                    conn.execute(f"{sql}({marks(len(chunk))})", chunk)
                if pending:
                    conn.execute("UPDATE org_pending SET n = max(0, n - ?) WHERE org_id = ?", (pending, org_id))
                dead = _candidates(conn, org_id, stored, "dead_letter")
                for chunk in chunks([entry for entry, _, _ in dead]):
                    conn.execute(f"DELETE FROM dead_letter WHERE entry IN ({marks(len(chunk))})", chunk)  # noqa: S608
                found += dead
                _release(conn, org_id, [(row.dedup_key, row.time_us) for _, row, _ in found])
                cur = conn.execute(
                    "INSERT INTO deletions(org_id, filter, created_at, state, apply_after, dropped)"
                    " VALUES (?, ?, ?, 'pending', ?, ?)",
                    (org_id, blob, now, now + claim_s, len(found)),
                )
                did = int(cur.lastrowid or 0)
            deletion = Deletion(did, org_id, stored, now, "pending", len(found), 0, 0, "")
            return Recorded(deletion, pending, len(found) - pending, delivered)

        return await self._db.run(_w)

    async def undelivered_matching(self, org_id: str, f: MemoryFilter) -> int:
        """How many of the org's rows matching `f` wait in the journal (a dry run's local share)."""

        def _q() -> int:
            return sum(1 for _, _, delivered in _candidates(self._db.conn, org_id, f) if not delivered)

        return await self._db.run(_q)

    async def delivered_ids_matching(self, org_id: str, f: MemoryFilter) -> tuple[str, ...]:
        """Ids of the org's rows matching `f` that were delivered and are still kept (Arc may buffer them)."""

        def _q() -> tuple[str, ...]:
            return tuple(row.id for _, row, delivered in _candidates(self._db.conn, org_id, f) if delivered)

        return await self._db.run(_q)

    async def release_keys(self, org_id: str, keys: Sequence[tuple[str, int]]) -> None:
        """Drop ledger entries `(dedup_key, time_us)` of forgotten rows (only those exact entries: a newer
        memory with the same key keeps its own)."""
        if not keys:
            return

        def _w() -> None:
            with self._db.write() as conn:
                _release(conn, org_id, keys)

        await self._db.run(_w)

    async def active(self, org_id: str) -> tuple[MemoryFilter, ...]:
        """Filters of the org's unfinished deletions: what every read must hide."""
        return await self._db.run(self.active_now, org_id)

    def active_now(self, org_id: str) -> tuple[MemoryFilter, ...]:
        """`active`, on the connection's own thread (for a read that asks more in the same call)."""
        cur = self._db.conn.execute("SELECT filter FROM deletions WHERE org_id = ? ORDER BY id", (org_id,))
        return tuple(_decoder.decode(blob) for (blob,) in cur)

    async def due(self, limit: int = 100) -> list[Deletion]:
        def _q() -> list[Deletion]:
            cur = self._db.conn.execute(
                f"SELECT {_COLUMNS} FROM deletions WHERE apply_after <= ? ORDER BY id LIMIT ?",  # noqa: S608
                (time.time(), limit))
            return [_deletion(row) for row in cur]

        return await self._db.run(_q)

    async def applied(self, deletion_id: int, was: str, arc_deleted: int, settle_s: float) -> str:
        """Arc deleted once more: a pending deletion starts settling; a settling one is finished and removed.
        Only from state `was` (what the applier read), so two concurrent applies advance it once. Returns the
        state now (`settling` or `done`)."""

        def _w() -> str:
            now = time.time()
            with self._db.write() as conn:
                found = conn.execute("SELECT state FROM deletions WHERE id = ?", (deletion_id,)).fetchone()
                if found is None:
                    return "done"
                if found[0] != was:
                    return str(found[0])
                if was == "pending":
                    conn.execute(
                        "UPDATE deletions SET state = 'settling', apply_after = ?, arc_deleted = arc_deleted + ?,"
                        " attempts = attempts + 1, last_error = '' WHERE id = ?",
                        (now + settle_s, arc_deleted, deletion_id))
                    return "settling"
                conn.execute("DELETE FROM deletions WHERE id = ?", (deletion_id,))
                return "done"

        return await self._db.run(_w)

    async def failed(self, deletion_id: int, error: str, retry_in_s: float) -> None:
        def _w() -> None:
            with self._db.write() as conn:
                conn.execute(
                    "UPDATE deletions SET apply_after = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
                    (time.time() + retry_in_s, error[:500], deletion_id))

        await self._db.run(_w)

    async def drop_org(self, org_id: str) -> int:
        """Remove every journal row, ledger entry, pending count and deletion of the org (admin purge)."""

        def _w() -> int:
            with self._db.write() as conn:
                n = conn.execute("DELETE FROM journal WHERE org_id = ?", (org_id,)).rowcount
                n += conn.execute("DELETE FROM dead_letter WHERE org_id = ?", (org_id,)).rowcount
                conn.execute("DELETE FROM dedup WHERE org_id = ?", (org_id,))
                conn.execute("DELETE FROM org_pending WHERE org_id = ?", (org_id,))
                conn.execute("DELETE FROM deletions WHERE org_id = ?", (org_id,))
                return int(n)

        return await self._db.run(_w)


def _release(conn: Any, org_id: str, keys: Sequence[tuple[str, int]]) -> None:
    conn.executemany("DELETE FROM dedup WHERE org_id = ? AND dedup_key = ? AND time_us = ?",
                     [(org_id, key, time_us) for key, time_us in dict.fromkeys(keys)])
