"""Dead letters: memories Arc refused on their own, set aside so they stop blocking their org's delivery.

A memory lands here only when Arc refused a request holding that memory alone, with an answer that blames
the payload (413, or a 4xx naming the payload): sending it again cannot succeed, and keeping it pending
would hold back every later memory of its org and of every org sharing its Arc target. It was acknowledged
with 201, so it must not vanish: its row moves here with Arc's answer, stays readable (`reads.py` merges
this table into the org's recent rows) and waits for an operator:

    memtrace admin delivery dead-letters [--org ORG]     inspect
    memtrace admin delivery retry ENTRY|--all            back to pending (e.g. after raising Arc's limit)
    memtrace admin delivery drop ENTRY|--all             forget for good

Moving a row in or out is one transaction with the org's pending counter, like every other journal write.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from memtrace.journal._sqlite import ThreadedConnection, marks

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dead_letter (
    entry INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    accepted_at REAL NOT NULL,
    row BLOB NOT NULL,
    arc_status INTEGER NOT NULL,
    arc_error TEXT NOT NULL,
    first_attempt_at REAL NOT NULL,
    last_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letter_org_time ON dead_letter(org_id, time_us);
"""

# Arc's error text is kept for the operator, cut to a readable length.
MAX_ERROR_CHARS: Final = 1000


@dataclass(slots=True)
class DeadLetter:
    """One quarantined memory, as the admin CLI shows it (the row itself stays in the table)."""

    entry: int
    org_id: str
    seq: int
    memory_id: str
    size: int
    arc_status: int
    arc_error: str
    first_attempt_at: float
    last_attempt_at: float
    attempts: int


class DeadLetters:
    def __init__(self, db: ThreadedConnection) -> None:
        self._db = db

    async def quarantine(self, org_id: str, seq: int, arc_status: int, arc_error: str, first_attempt_at: float,
                         attempts: int) -> bool:
        """Move the pending journal row `seq` here; False when it is no longer pending (nothing changes)."""

        def _w() -> bool:
            now = time.time()
            with self._db.write() as conn:
                found = conn.execute(
                    "SELECT id, agent_id, session_id, time_us, accepted_at, row FROM journal"
                    " WHERE seq = ? AND org_id = ? AND delivered_at IS NULL", (seq, org_id)).fetchone()
                if found is None:
                    return False
                conn.execute(
                    "INSERT INTO dead_letter(org_id, seq, id, agent_id, session_id, time_us, accepted_at, row,"
                    " arc_status, arc_error, first_attempt_at, last_attempt_at, attempts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (org_id, seq, *found, arc_status, arc_error[:MAX_ERROR_CHARS], first_attempt_at, now,
                     attempts),
                )
                conn.execute("DELETE FROM journal WHERE seq = ?", (seq,))
                conn.execute("UPDATE org_pending SET n = max(0, n - 1) WHERE org_id = ?", (org_id,))
                return True

        return await self._db.run(_w)

    async def list(self, org_id: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        where, params = _scope(org_id, None)

        columns = "entry, org_id, seq, id, length(row), arc_status, arc_error, first_attempt_at, last_attempt_at"
        sql = f"SELECT {columns}, attempts FROM dead_letter{where} ORDER BY entry LIMIT ?"  # noqa: S608

        def _q() -> list[DeadLetter]:
            return [DeadLetter(*found) for found in self._db.conn.execute(sql, (*params, limit))]

        return await self._db.run(_q)

    async def count(self) -> int:
        """How many memories wait in quarantine (all orgs), for metrics and /ready detail."""

        def _q() -> int:
            return int(self._db.conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0])

        return await self._db.run(_q)

    async def retry(self, org_id: str | None = None, entries: Sequence[int] | None = None) -> int:
        """Put these entries (all, or all of `org_id`, when `entries` is None) back to pending, at the end of
        their org's queue; returns how many moved."""
        where, params = _scope(org_id, entries)

        columns = "org_id, id, agent_id, session_id, time_us, accepted_at, row"
        count = f"SELECT org_id, count(*) FROM dead_letter{where or ' WHERE true'} GROUP BY org_id"  # noqa: S608
        move = f"SELECT {columns} FROM dead_letter{where} ORDER BY entry"  # noqa: S608

        def _w() -> int:
            with self._db.write() as conn:
                conn.execute(f"INSERT INTO org_pending(org_id, n) {count} ON CONFLICT(org_id) DO UPDATE"
                             " SET n = n + excluded.n", params)
                moved = conn.execute(f"INSERT INTO journal({columns}) {move}", params).rowcount
                conn.execute(f"DELETE FROM dead_letter{where}", params)  # noqa: S608
                return int(moved)

        return await self._db.run(_w)

    async def drop(self, org_id: str | None = None, entries: Sequence[int] | None = None) -> int:
        """Forget these entries for good (the memories leave every read); returns how many."""
        where, params = _scope(org_id, entries)

        def _w() -> int:
            with self._db.write() as conn:
                return int(conn.execute(f"DELETE FROM dead_letter{where}", params).rowcount)  # noqa: S608

        return await self._db.run(_w)


def _scope(org_id: str | None, entries: Sequence[int] | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if org_id is not None:
        clauses.append("org_id = ?")
        params.append(org_id)
    if entries is not None:
        clauses.append(f"entry IN ({marks(len(entries))})" if entries else "false")
        params.extend(entries)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
