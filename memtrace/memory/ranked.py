"""Ranked reads: the search by relevance and the recall context, merged like every read (Arc ⨝ the journal).

Arc ranks what it holds (`rank_query.py`); the org's journal rows that Arc may not show yet are scored in
Python with the same formula and Arc's corpus statistics (`ranking.py`), so a memory ranks from the moment
its 201 is sent, on any worker or host. Pending deletions are excluded in Arc's SQL and again in Python, so a
forgotten memory never ranks, also while Arc has not applied its deletion.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

import msgspec

from memtrace.memory import query, rank_query
from memtrace.memory.model import Page
from memtrace.memory.ranking import local_stats_and_scores
from memtrace.memory.recall import Recalled, render_recall
from memtrace.memory.service import MemoryService, abandon
from memtrace.rowfilter import Hider
from memtrace.rows import MemoryFilter, MemoryRow

LOCAL_RANKED_MAX = 5000
"""At most this many of the org's newest journal rows are scored in Python per query (the rows Arc does not
hold yet are far fewer unless Arc has been down for long)."""
RECALL_HITS = 30
"""A recall considers this many best hits; a budget rarely holds more."""
MAX_NEIGHBOURS = 5


Hit = tuple[MemoryRow, float]


def _best_first(hit: Hit) -> tuple[float, int, str]:
    row, score = hit
    return (-score, -row.time_us, row.id)


class RankedReads:
    def __init__(self, memories: MemoryService) -> None:
        self._memories = memories

    async def search(self, org_id: str, f: MemoryFilter, terms: Sequence[str], page: Page,
                     time_order: str | None = None) -> list[Hit]:
        """The page `page.offset`.. of the org's memories matching `f`, by relevance to `terms`, best first or,
        with `time_order` ("asc" / "desc"), the same page in time order."""
        if not terms:
            return []
        ranked, _ = await self._top(org_id, f, terms, page.offset + page.limit)
        hits = ranked[page.offset: page.offset + page.limit]
        if time_order is not None:
            hits.sort(key=lambda hit: (hit[0].time_us, hit[0].id), reverse=time_order == "desc")
        return hits

    async def _top(self, org_id: str, f: MemoryFilter, terms: Sequence[str], needed: int
                   ) -> tuple[list[Hit], MemoryFilter]:
        """The `needed` best, and `f` with the org's pending deletions (for the reads that follow). Like a first
        page of a list, it bets that the org has no pending deletion: Arc is asked while one journal call reads
        the deletions and the recent rows; if there are deletions after all, Arc's answer is dropped and the query
        asked again with them hidden."""
        memories = self._memories
        measurement = memories.registry.get(org_id).measurement
        sql, used = rank_query.select_ranked(measurement, org_id, f, terms, needed)
        arc_call = asyncio.ensure_future(memories.registry.query(org_id, sql))
        try:
            deletions, local = await memories.journal.recent_unless_forgetting(
                memories.recent_query(org_id, f, LOCAL_RANKED_MAX))
        except BaseException:
            abandon(arc_call)
            raise
        if deletions:
            abandon(arc_call)
            f = msgspec.structs.replace(f, hide=deletions)
            sql, used = rank_query.select_ranked(measurement, org_id, f, terms, needed)
            local, answer = await asyncio.gather(memories.local_rows(org_id, f, LOCAL_RANKED_MAX),
                                                 memories.registry.query(org_id, sql))
        else:
            answer = await arc_call
        terms = terms[:used]
        arc_hits, stats = rank_query.ranked_from_arc(answer.columns, answer.data, len(terms))
        if f.hide:
            hider = Hider(f.hide)
            arc_hits = [hit for hit in arc_hits if not hider.covers(hit[0])]
        in_arc = {row.id for row, _ in arc_hits}
        fresh = [row for row in local if row.id not in in_arc]
        merged = sorted([*arc_hits, *local_stats_and_scores(fresh, terms, stats)], key=_best_first)
        return merged[:needed], f

    async def recall(self, org_id: str, f: MemoryFilter, query_text: str, terms: Sequence[str],
                     max_tokens: int, neighbours: int) -> tuple[Recalled, dict[str, float]]:
        """The recall markdown within `max_tokens`, and the score of each hit."""
        ranked, hidden = await self._top(org_id, f, terms, RECALL_HITS) if terms else ([], f)
        hits = [row for row, _ in ranked]
        near = await self._neighbours(org_id, hidden, hits, neighbours) if hits and neighbours else {}
        return render_recall(query_text, hits, near, max_tokens), {row.id: score for row, score in ranked}

    async def _neighbours(self, org_id: str, f: MemoryFilter, hits: list[MemoryRow], around: int
                          ) -> dict[str, list[MemoryRow]]:
        """For each hit, the memories matching `f` (which carries the pending deletions) just before and after it
        in its agent's session, nearest first (Arc's and the journal's, each id once)."""
        memories = self._memories
        measurement = memories.registry.get(org_id).measurement
        f = msgspec.structs.replace(f, session_id=None)
        sessions = sorted({(row.agent_id, row.session_id) for row in hits})
        sql = rank_query.select_neighbours(measurement, org_id, f, [row.id for row in hits], sessions, around)
        local, answer = await asyncio.gather(memories.local_rows(org_id, f, LOCAL_RANKED_MAX),
                                             memories.registry.query(org_id, sql))
        hider = Hider(f.hide) if f.hide else None
        by_id = {row.id: row for row in query.rows_from_arc(answer.columns, answer.data)
                 if hider is None or not hider.covers(row)}
        wanted = set(sessions)
        by_id.update((row.id, row) for row in local if (row.agent_id, row.session_id) in wanted)
        by_id.update((row.id, row) for row in hits)
        timelines: dict[tuple[str, str], list[MemoryRow]] = defaultdict(list)
        for row in sorted(by_id.values(), key=lambda r: (r.time_us, r.id)):
            timelines[(row.agent_id, row.session_id)].append(row)
        position = {row.id: (key, i) for key, rows in timelines.items() for i, row in enumerate(rows)}
        near: dict[str, list[MemoryRow]] = {}
        for hit in hits:
            key, i = position[hit.id]
            line = timelines[key]
            near[hit.id] = [line[j] for d in range(1, around + 1) for j in (i - d, i + d) if 0 <= j < len(line)]
        return near
