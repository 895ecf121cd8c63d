"""Coalesced `last_active_at` for agents and sessions: memory writes never cost a SQLite write each.

Writes record the newest time per (org, agent) and (org, session) in memory; `flush` applies them in one
transaction per table for all orgs, every second or so, from the app's background loop. A crash loses at
most that interval of activity timestamps, never a memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from memtrace.rows import MemoryRow

TouchMany = Callable[[Mapping[tuple[str, str], int]], Awaitable[None]]


class ActivityTracker:
    def __init__(self, touch_agents: TouchMany, touch_sessions: TouchMany) -> None:
        self._touch_agents = touch_agents
        self._touch_sessions = touch_sessions
        self._agents: dict[tuple[str, str], int] = {}
        self._sessions: dict[tuple[str, str], int] = {}

    def saw_rows(self, org_id: str, rows: Iterable[MemoryRow]) -> None:
        agents, sessions = self._agents, self._sessions
        for row in rows:
            key = (org_id, row.agent_id)
            if agents.get(key, 0) < row.time_us:
                agents[key] = row.time_us
            if row.session_id:
                key = (org_id, row.session_id)
                if sessions.get(key, 0) < row.time_us:
                    sessions[key] = row.time_us

    async def flush(self) -> None:
        agents, self._agents = self._agents, {}
        sessions, self._sessions = self._sessions, {}
        await self._touch_agents(agents)
        await self._touch_sessions(sessions)
