"""Coalesced `last_active_at` for agents and sessions: memory writes never cost a metadata write each.

Writes record the earliest and newest row per (org, agent) and (org, session) in memory; `flush` applies the
newest times in one transaction per table for all orgs, every second or so, from the app's background loop, after
handing the pairs to `names.Names.settle`, which registers any that stopped existing. A crash loses at most that
interval of activity timestamps, never a memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from memtrace.names import Key, Seen, note_rows
from memtrace.rows import MemoryRow

TouchMany = Callable[[Mapping[Key, int]], Awaitable[None]]
Settle = Callable[[Mapping[Key, Seen], Mapping[Key, Seen]], Awaitable[None]]


class ActivityTracker:
    def __init__(self, touch_agents: TouchMany, touch_sessions: TouchMany, settle: Settle | None = None) -> None:
        self._touch_agents = touch_agents
        self._touch_sessions = touch_sessions
        self._settle = settle
        self._agents: dict[Key, Seen] = {}
        self._sessions: dict[Key, Seen] = {}

    def saw_rows(self, org_id: str, rows: Iterable[MemoryRow]) -> None:
        note_rows(self._agents, self._sessions, org_id, rows)

    async def flush(self) -> None:
        agents, self._agents = self._agents, {}
        sessions, self._sessions = self._sessions, {}
        if self._settle is not None and (agents or sessions):
            await self._settle(agents, sessions)  # first: a moved last_active_at shows its flush registered too
        await self._touch_agents({key: seen.last.time_us for key, seen in agents.items()})
        await self._touch_sessions({key: seen.last.time_us for key, seen in sessions.items()})
