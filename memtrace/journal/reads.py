"""Reads of the org's rows that Arc may not show yet (pending, or delivered within the retention)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memtrace.journal._sqlite import ThreadedConnection, marks
from memtrace.journal.rows import decode_row
from memtrace.memory.model import MemoryRow


class RecentRows:
    def __init__(self, db: ThreadedConnection) -> None:
        self._db = db

    async def fetch(
        self,
        org_id: str,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        since_us: int | None = None,
        ids: Sequence[str] = (),
    ) -> list[MemoryRow]:
        """Index-narrowed candidates; callers apply the full filter (`memory/filters.py`)."""
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
            clauses.append(f"id IN ({marks(len(ids))})")
            params.extend(ids)
        sql = "SELECT row FROM journal WHERE " + " AND ".join(clauses)  # noqa: S608 - fixed clauses, placeholders

        def _q() -> list[MemoryRow]:
            return [decode_row(blob) for (blob,) in self._db.conn.execute(sql, params)]

        return await self._db.run(_q)
