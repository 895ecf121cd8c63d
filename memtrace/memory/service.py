"""The memory service: accept (validate, dedup, journal) and read (Arc ⨝ recent local rows).

Handlers call this and nothing below it. Reads merge Arc's answer with the org's journal rows that Arc may
not show yet, de-duplicated by id under the same filters, order, limit and offset (read-your-writes from
any worker). Every Arc query comes from `memory/query.py`, scoped to the org and its own measurement.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from memtrace import timeutil
from memtrace.activity import ActivityTracker
from memtrace.arc.client import ArcResult
from memtrace.arc.registry import ArcRegistry
from memtrace.config import LimitsSettings
from memtrace.errors import Conflict, NotFound
from memtrace.journal import Journal, RecentQuery
from memtrace.memory import query
from memtrace.memory.answer import rows_from_answer
from memtrace.memory.build import build_rows
from memtrace.memory.context import RenderedContext, render_context
from memtrace.memory.forget import Forgetter, Forgotten
from memtrace.memory.model import NewMemory, Page
from memtrace.metrics import m
from memtrace.names import Names
from memtrace.rowfilter import Hider, matches, merge_page
from memtrace.rows import MemoryFilter, MemoryRow

# A deletion being applied by its request is left alone by the background applier this long.
CLAIM_S = 5.0
# A context renders at most this many of the session's newest memories; older ones are left out (not counted).
CONTEXT_MAX_ROWS = 5000
DAY_US = 86_400 * 1_000_000


@dataclass(slots=True)
class Created:
    """The stored rows, and the skipped duplicates as (index in the request, id of the memory they duplicate)."""

    rows: list[MemoryRow]
    skipped: list[tuple[int, str | None]]

    @property
    def duplicates(self) -> int:
        return len(self.skipped)


@dataclass(slots=True)
class MemoryCounts:
    total: int
    last_24h: int
    errors_24h: int
    by_type: dict[str, int]


def abandon(call: asyncio.Future[Any]) -> None:
    """Abandon a speculative Arc call; its outcome (even an error) is consumed, never logged as unretrieved."""
    call.cancel()
    call.add_done_callback(lambda done: None if done.cancelled() else done.exception())


class _RecentDeletions:
    """Orgs seen with pending deletions lately (bounded): their first pages skip the no-deletion bet, which
    would cost them a wasted Arc query each while the deletions are pending."""

    def __init__(self, hold_s: float = 60.0, max_orgs: int = 10_000) -> None:
        self._hold_s = hold_s
        self._max_orgs = max_orgs
        self._seen: dict[str, float] = {}

    def saw(self, org_id: str) -> None:
        if len(self._seen) >= self._max_orgs:
            self._seen.clear()
        self._seen[org_id] = time.monotonic()

    def recently(self, org_id: str) -> bool:
        at = self._seen.get(org_id)
        if at is None:
            return False
        if time.monotonic() - at < self._hold_s:
            return True
        del self._seen[org_id]
        return False


class MemoryService:
    def __init__(
        self, journal: Journal, registry: ArcRegistry, limits: LimitsSettings, activity: ActivityTracker, names: Names
    ) -> None:
        self.journal = journal
        self.registry = registry
        self.limits = limits
        self.activity = activity
        self.names = names
        self._forgetting = _RecentDeletions()
        self.forgetter = Forgetter(journal, registry, settle_s=journal.config.retention_s,
                                   dedup_window_s=journal.config.dedup_window_s, claim_s=CLAIM_S)

    # --- writes -------------------------------------------------------------------------------------

    async def create(self, org_id: str, items: Sequence[NewMemory], *, batch: bool) -> Created:
        """Durably accept `items`; for a single memory a duplicate is a Conflict, in a batch it is skipped."""
        self.registry.get(org_id)  # NoArcInstance before anything is stored
        rows = build_rows(org_id, items, timeutil.now_us(), self.limits, batch)
        result = await self.journal.append(org_id, rows)
        if result.duplicate_indexes:
            m().dedup_rejected.inc(len(result.duplicate_indexes))
        if not batch and result.duplicate_indexes:
            raise Conflict("duplicate memory", memory_id=result.duplicate_of[0])
        self.activity.saw_rows(org_id, result.stored)
        if self.names.unknown(org_id, result.stored):  # a first sight on this worker: registered before the 201
            await self.names.register(org_id, result.stored)
        return Created(result.stored, list(zip(result.duplicate_indexes, result.duplicate_of, strict=True)))

    # --- forgetting (memory/forget.py) --------------------------------------------------------------

    async def forget(self, org_id: str, f: MemoryFilter, *, dry_run: bool) -> Forgotten:
        """Forget (or, on a dry run, count) the org's memories matching `f` as of now."""
        self.registry.get(org_id)
        if dry_run:
            return Forgotten(await self.forgetter.count(org_id, f), pending=False)
        return await self.forgetter.forget(org_id, f, now_us=timeutil.now_us())

    async def delete_memory(self, org_id: str, memory_id: str) -> Forgotten:
        """Forget one memory; NotFound when the org has no such (unforgotten) memory. A memory still in the
        journal is found without Arc, so it can be forgotten while Arc is down."""
        f = await self.hiding(org_id, MemoryFilter(ids=(memory_id,)))
        if not await self.local_rows(org_id, f):
            await self.get(org_id, memory_id)
        return await self.forgetter.forget(org_id, MemoryFilter(ids=(memory_id,)), now_us=timeutil.now_us())

    # --- reads --------------------------------------------------------------------------------------

    async def hiding(self, org_id: str, f: MemoryFilter) -> MemoryFilter:
        """`f` plus the org's unfinished deletions: nothing forgotten is ever read back."""
        deletions = await self.journal.forgotten(org_id)
        return msgspec.structs.replace(f, hide=deletions) if deletions else f

    @staticmethod
    def recent_query(org_id: str, f: MemoryFilter, first: int | None = None, order: str = "desc") -> RecentQuery:
        """The org's journal rows matching `f`; with `first`, only those that can rank among the first `first`
        of them in `order` (a page merges at most that many: a local row behind them cannot reach it)."""
        if f.hide:
            hider, plain = Hider(f.hide), msgspec.structs.replace(f, hide=())

            def keep(row: MemoryRow) -> bool:
                return matches(row, plain) and not hider.covers(row)
        else:
            def keep(row: MemoryRow) -> bool:
                return matches(row, f)

        return RecentQuery(org_id, f.agent_id, f.session_id, f.since_us, f.until_us, f.ids, keep, first, order)

    async def local_rows(self, org_id: str, f: MemoryFilter, first: int | None = None, order: str = "desc"
                     ) -> list[MemoryRow]:
        return await self.journal.recent.fetch_query(self.recent_query(org_id, f, first, order))

    async def _arc_rows(self, org_id: str, sql: str) -> list[MemoryRow]:
        """Arc's answer to a `select_memories` query, read straight from its JSON into rows."""
        return await self.registry.query_as(org_id, sql, rows_from_answer)

    async def list_page(self, org_id: str, f: MemoryFilter, page: Page) -> tuple[list[MemoryRow], bool]:
        """One page of the org's memories and whether another page exists."""
        measurement = self.registry.get(org_id).measurement
        needed = page.offset + page.limit + 1  # the page, and one more row to tell whether another page exists
        if page.offset == 0 and not f.hide and not self._forgetting.recently(org_id):
            return await self._first_page(org_id, measurement, f, page)
        f = await self.hiding(org_id, f)
        if f.hide:
            return await self._list_page(org_id, measurement, f, page)
        if page.offset == 0:
            sql = query.select_memories(measurement, org_id, f, page.order, page.limit + 1, 0)
            local, arc = await asyncio.gather(self.local_rows(org_id, f, needed, page.order),
                                              self._arc_rows(org_id, sql))
            return merge_page(arc, local, page.order, page.limit, 0)
        local = await self.local_rows(org_id, f, needed, page.order)
        if not local:
            sql = query.select_memories(measurement, org_id, f, page.order, page.limit + 1, page.offset)
            arc = await self._arc_rows(org_id, sql)
            return arc[: page.limit], len(arc) > page.limit
        sql = query.select_memories(measurement, org_id, f, page.order, page.offset + page.limit + 1, 0)
        arc = await self._arc_rows(org_id, sql)
        return merge_page(arc, local, page.order, page.limit, page.offset)

    async def _first_page(self, org_id: str, measurement: str, f: MemoryFilter, page: Page
                          ) -> tuple[list[MemoryRow], bool]:
        """A first page, betting that the org has no pending deletion (the common case): Arc is asked while one
        journal call reads the deletions and, only if there are none, the recent rows. That call is otherwise
        a round trip of its own before Arc can be asked. If there are deletions after all, Arc's answer is
        dropped and the page is read again with them hidden: a forgotten memory is never shown."""
        sql = query.select_memories(measurement, org_id, f, page.order, page.limit + 1, 0)
        arc_call = asyncio.ensure_future(self._arc_rows(org_id, sql))
        try:
            deletions, local = await self.journal.recent_unless_forgetting(
                self.recent_query(org_id, f, page.limit + 1, page.order))
        except BaseException:
            abandon(arc_call)
            raise
        if not deletions:
            return merge_page(await arc_call, local, page.order, page.limit, 0)
        abandon(arc_call)
        self._forgetting.saw(org_id)
        return await self._list_page(org_id, measurement, msgspec.structs.replace(f, hide=deletions), page)

    async def _list_page(self, org_id: str, measurement: str, f: MemoryFilter, page: Page
                         ) -> tuple[list[MemoryRow], bool]:
        """A page while deletions are pending: Arc's rows are checked against them in Python as well (the SQL
        may carry only some of them, see `query.HIDE_SQL_BUDGET`)."""
        needed = page.offset + page.limit + 1
        sql = query.select_memories(measurement, org_id, f, page.order, needed, 0)
        local, arc = await asyncio.gather(self.local_rows(org_id, f, needed, page.order), self._arc_rows(org_id, sql))
        hider = Hider(f.hide)
        arc = [row for row in arc if not hider.covers(row)]
        return merge_page(arc, local, page.order, page.limit, page.offset)

    async def get(self, org_id: str, memory_id: str) -> MemoryRow:
        rows, _ = await self.list_page(org_id, MemoryFilter(ids=(memory_id,)), Page(limit=1))
        if not rows:
            raise NotFound("memory not found")
        return rows[0]

    async def all_matching(self, org_id: str, f: MemoryFilter, cap: int) -> list[MemoryRow]:
        """Up to `cap` newest matching memories (for context and stats)."""
        rows, _ = await self.list_page(org_id, f, Page(limit=cap, order="desc"))
        return rows

    async def with_unseen(self, org_id: str, f: MemoryFilter, build_sql: Callable[[str, MemoryFilter], str]
                          ) -> tuple[ArcResult, list[MemoryRow]]:
        """An aggregate query over Arc (`build_sql(measurement, f)`) and the org's journal rows matching `f`
        that Arc does not hold yet, each id once: the merge behind stats and timelines."""
        measurement = self.registry.get(org_id).measurement
        f = await self.hiding(org_id, f)
        sql = build_sql(measurement, f)
        local = await self.local_rows(org_id, f)
        if not local:
            return await self.registry.query(org_id, sql), []
        known_sql = query.select_ids(measurement, org_id, tuple(r.id for r in local))
        answer, known = await asyncio.gather(self.registry.query(org_id, sql), self.registry.query(org_id, known_sql))
        in_arc = {row.id for row in query.rows_from_arc(known.columns, known.data)}
        return answer, list({row.id: row for row in local if row.id not in in_arc}.values())

    async def counts(self, org_id: str, f: MemoryFilter, now_us: int) -> MemoryCounts:
        """Distinct-id counts from Arc plus the local rows Arc does not have yet."""
        since_24h = now_us - DAY_US
        stats, extra = await self.with_unseen(
            org_id, f, lambda measurement, hidden: query.memory_stats(measurement, org_id, hidden, since_24h))
        counts = MemoryCounts(0, 0, 0, {})
        for memory_type, total, recent, errors in query.stats_from_arc(stats.columns, stats.data):
            counts.by_type[memory_type] = counts.by_type.get(memory_type, 0) + total
            counts.total += total
            counts.last_24h += recent
            counts.errors_24h += errors
        for memory_type, n in Counter(row.memory_type for row in extra).items():
            counts.by_type[memory_type] = counts.by_type.get(memory_type, 0) + n
        counts.total += len(extra)
        recent_rows = [row for row in extra if row.time_us >= since_24h]
        counts.last_24h += len(recent_rows)
        counts.errors_24h += sum(1 for row in recent_rows if row.event_type == "error")
        return counts

    async def context(
        self, org_id: str, session_id: str, include_types: tuple[str, ...], since_us: int | None,
        max_tokens: int | None,
    ) -> RenderedContext:
        f = MemoryFilter(session_id=session_id, memory_types=include_types, since_us=since_us)
        rows = await self.all_matching(org_id, f, CONTEXT_MAX_ROWS)
        return render_context(session_id, rows, max_tokens)
