"""Reads of the org's rows that Arc may not show yet: pending, delivered within the retention, or set aside
as dead letters (acknowledged memories Arc refused; they stay readable until an operator drops them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        where, params = narrowing(org_id, agent_id=agent_id, session_id=session_id, since_us=since_us,
                                  until_us=until_us, ids=ids)
        if keep is None or first is None:
            sql = f"SELECT row FROM journal WHERE {where} UNION ALL SELECT row FROM dead_letter WHERE {where}"  # noqa: S608

            def _all() -> list[MemoryRow]:
                rows = [decode_row(blob) for (blob,) in self._db.conn.execute(sql, params + params)]
                return rows if keep is None else [row for row in rows if keep(row)]

            return await self._db.run(_all)

        # One statement (one snapshot), both sides walked in time order through their (org_id, time_us) index.
        sql = (f"SELECT time_us, row FROM journal WHERE {where} UNION ALL "  # noqa: S608
               f"SELECT time_us, row FROM dead_letter WHERE {where} ORDER BY time_us {order.upper()}")
        wanted = max(first, 0)

        def _first() -> list[MemoryRow]:
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
                        if len(kept) >= wanted and last is None:
                            last = time_us
            finally:
                cur.close()
            return kept

        if wanted == 0:
            return []
        return await self._db.run(_first)
