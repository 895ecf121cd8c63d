"""Reads of the org's rows that Arc may not show yet: pending, delivered within the retention, or set aside
as dead letters (acknowledged memories Arc refused; they stay readable until an operator drops them)."""

from __future__ import annotations

from collections.abc import Sequence

from memtrace.journal._sqlite import ThreadedConnection, narrowing
from memtrace.journal.rows import decode_row
from memtrace.rows import MemoryRow


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
        """Index-narrowed candidates; callers apply the full filter (`rowfilter.py`)."""
        where, params = narrowing(org_id, agent_id=agent_id, session_id=session_id, since_us=since_us, ids=ids)
        sql = f"SELECT row FROM journal WHERE {where} UNION ALL SELECT row FROM dead_letter WHERE {where}"  # noqa: S608

        def _q() -> list[MemoryRow]:
            return [decode_row(blob) for (blob,) in self._db.conn.execute(sql, params + params)]

        return await self._db.run(_q)
