"""Coalesced `last_active_at` for agents and sessions: memory writes never cost a SQLite write each.

Writes record the newest time per (org, agent) and (org, session) in memory; `flush` applies them in one
batch per org, every second or so, from the app's background loop. A crash loses at most that interval
of activity timestamps, never a memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from memtrace.memory.model import MemoryRow

Touch = Callable[[str, dict[str, int]], Awaitable[None]]


class ActivityTracker:
    def __init__(self, touch_agents: Touch, touch_sessions: Touch) -> None:
        self._touch_agents = touch_agents
        self._touch_sessions = touch_sessions
        self._agents: dict[str, dict[str, int]] = {}
        self._sessions: dict[str, dict[str, int]] = {}

    def saw_rows(self, org_id: str, rows: Iterable[MemoryRow]) -> None:
        agents = self._agents.setdefault(org_id, {})
        sessions = self._sessions.setdefault(org_id, {})
        for row in rows:
            if agents.get(row.agent_id, 0) < row.time_us:
                agents[row.agent_id] = row.time_us
            if row.session_id and sessions.get(row.session_id, 0) < row.time_us:
                sessions[row.session_id] = row.time_us

    async def flush(self) -> None:
        agents, self._agents = self._agents, {}
        sessions, self._sessions = self._sessions, {}
        for org_id, latest in agents.items():
            if latest:
                await self._touch_agents(org_id, latest)
        for org_id, latest in sessions.items():
            if latest:
                await self._touch_sessions(org_id, latest)
