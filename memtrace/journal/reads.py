"""Reads of the org's rows that Arc may not show yet: pending, delivered within the retention, or set aside
as dead letters (acknowledged memories Arc refused; they stay readable until an operator drops them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memtrace.journal._sqlite import ThreadedConnection, narrowing
from memtrace.journal.rows import decode_row
from memtrace.rows import MemoryRow


@dataclass(frozen=True, slots=True)
class RecentQuery:
    """Which of an org's recent rows a read wants (see `RecentRows.fetch`)."""

    org_id: str
    agent_id: str | None = None
    session_id: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    ids: Sequence[str] = ()
    keep: Callable[[MemoryRow], bool] | None = None
    first: int | None = None
    order: str = "desc"


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
        until_us: int | None = None,
        ids: Sequence[str] = (),
        keep: Callable[[MemoryRow], bool] | None = None,
        first: int | None = None,
        order: str = "desc",
    ) -> list[MemoryRow]:
        """Index-narrowed candidates; callers apply the full filter (`rowfilter.py`), or pass it as `keep`.

        With `keep` and `first`, rows are read newest (`order="desc"`) or oldest first and the read stops once
        `first` rows were kept and the time moved past the last of them: every row that can rank among the first
        `first` kept rows by (time, id) is returned (ties on that last time included), and a page over many
        recent rows decodes only the rows near its top instead of all of them.
        """
        return await self.fetch_query(RecentQuery(org_id, agent_id, session_id, since_us, until_us, ids, keep,
                                                  first, order))

    async def fetch_query(self, q: RecentQuery) -> list[MemoryRow]:
        return await self._db.run(self.fetch_now, q)

    def fetch_now(self, q: RecentQuery) -> list[MemoryRow]:
        """`fetch`, on the connection's own thread."""
        if q.order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {q.order!r}")
        where, params = narrowing(q.org_id, agent_id=q.agent_id, session_id=q.session_id, since_us=q.since_us,
                                  until_us=q.until_us, ids=q.ids)
        keep = q.keep
        if keep is None or q.first is None:
            sql = f"SELECT row FROM journal WHERE {where} UNION ALL SELECT row FROM dead_letter WHERE {where}"  # noqa: S608
            rows = [decode_row(blob) for (blob,) in self._db.conn.execute(sql, params + params)]
            return rows if keep is None else [row for row in rows if keep(row)]
        wanted = q.first
        if wanted <= 0:
            return []
        # One statement (one snapshot), both sides walked in time order through their (org_id, time_us) index.
        sql = (f"SELECT time_us, row FROM journal WHERE {where} UNION ALL "  # noqa: S608
               f"SELECT time_us, row FROM dead_letter WHERE {where} ORDER BY time_us {q.order.upper()}")
        kept: list[MemoryRow] = []
        last: int | None = None
        cur = self._db.conn.execute(sql, params + params)
        try:
            for time_us, blob in cur:
                if last is not None and time_us != last:
                    break
                row = decode_row(blob)
                if keep(row):
                    kept.append(row)
                    if last is None and len(kept) >= wanted:
                        last = time_us
        finally:
            cur.close()
        return kept
