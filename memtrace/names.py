"""Agents and sessions named by memories exist (api.md, "First-hour expectations"), without a metadata write per
memory.

On the request path each worker remembers the (org, name) pairs it knows to be registered (two bounded sets). A
stored row naming a pair it does not know is registered before the 201: one read per table, and a write only when
nobody registered the pair yet. So a client reads its agent and session back at once, from any worker or host;
after that first sight a pair costs a set lookup.

Off the request path, the activity flush (every `ACTIVITY_FLUSH_S`) hands over the pairs its memories named since the
last flush: one read per table finds any that no longer exist (erased or deleted through another worker or host,
while this one still knew them) and registers them again, unless the memory that named them is itself forgotten
(covered by the org's unfinished deletions), so an erase never comes back from memories written before it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from memtrace.metadata.agents import Agents
from memtrace.metadata.sessions import Sessions
from memtrace.rowfilter import Hider
from memtrace.rows import MemoryFilter, MemoryRow

log = logging.getLogger("memtrace")

Key = tuple[str, str]  # (org_id, agent_id or session_id as the memory gave it)
Forgotten = Callable[[str], Awaitable[tuple[MemoryFilter, ...]]]
MAX_KNOWN = 100_000  # pairs per set and worker (~15 MB each at most); a full set starts over


@dataclass(slots=True)
class Seen:
    """The earliest and the latest stored row that named one pair."""

    first: MemoryRow
    last: MemoryRow


def note(seen: dict[Key, Seen], key: Key, row: MemoryRow) -> None:
    found = seen.get(key)
    if found is None:
        seen[key] = Seen(row, row)
    elif row.time_us > found.last.time_us:
        found.last = row
    elif row.time_us < found.first.time_us:
        found.first = row


def note_rows(agents: dict[Key, Seen], sessions: dict[Key, Seen], org_id: str, rows: Iterable[MemoryRow]) -> None:
    """Add the agents and the sessions that `rows` name to `agents` and `sessions`."""
    for row in rows:
        note(agents, (org_id, row.agent_id), row)
        if row.session_id:
            note(sessions, (org_id, row.session_id), row)


def _first(seen: Seen, hider: Hider) -> MemoryRow:
    """The row a registration dates from: the first one, unless it was forgotten (then the last, which was not)."""
    return seen.last if hider.covers(seen.first) else seen.first


class _Known:
    """Pairs known to be registered; bounded: past `limit` it starts over (the pairs are then checked again)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pairs: set[Key] = set()

    def add(self, keys: Iterable[Key]) -> None:
        for key in keys:
            if len(self.pairs) >= self.limit:
                self.pairs.clear()
            self.pairs.add(key)

    def drop(self, keys: Iterable[Key]) -> None:
        self.pairs.difference_update(keys)

    def drop_org(self, org_id: str) -> None:
        self.pairs = {key for key in self.pairs if key[0] != org_id}


class Names:
    def __init__(self, agents: Agents, sessions: Sessions, forgotten: Forgotten, max_known: int = MAX_KNOWN) -> None:
        self._agents = agents
        self._sessions = sessions
        self._forgotten = forgotten
        self.agents = _Known(max_known)
        self.sessions = _Known(max_known)

    def unknown(self, org_id: str, rows: Iterable[MemoryRow]) -> bool:
        """Whether `rows` name an agent or a session this worker does not know to be registered (the hot path)."""
        agents, sessions = self.agents.pairs, self.sessions.pairs
        for row in rows:
            if (org_id, row.agent_id) not in agents or (row.session_id and (org_id, row.session_id) not in sessions):
                return True
        return False

    async def register(self, org_id: str, rows: Iterable[MemoryRow]) -> None:
        """Register what `rows` name, before their 201. The rows are stored already: a failure here is logged and
        left to the next flush, never turned into an error answer (a retry would be refused as a duplicate)."""
        agents: dict[Key, Seen] = {}
        sessions: dict[Key, Seen] = {}
        note_rows(agents, sessions, org_id, rows)
        try:
            await self.settle({k: v for k, v in agents.items() if k not in self.agents.pairs},
                              {k: v for k, v in sessions.items() if k not in self.sessions.pairs})
        except Exception:
            log.warning("registering the agents and sessions of org %s failed; the next flush retries", org_id,
                        exc_info=True)

    def forget_org(self, org_id: str) -> None:
        """An agent of `org_id` was erased here: check the org's pairs again at their next memory."""
        self.agents.drop_org(org_id)
        self.sessions.drop_org(org_id)

    async def settle(self, agents: Mapping[Key, Seen], sessions: Mapping[Key, Seen]) -> None:
        """Make the pairs exist unless the memories that named them were forgotten; remember the ones that do."""
        missing_agents = await self._agents.missing(list(agents)) if agents else set()
        missing_sessions = await self._sessions.missing(list(sessions)) if sessions else set()
        self.agents.add(k for k in agents if k not in missing_agents)
        self.sessions.add(k for k in sessions if k not in missing_sessions)
        if not missing_agents and not missing_sessions:
            return
        orgs = {org for org, _ in missing_agents | missing_sessions}
        hiders = {org: Hider(await self._forgotten(org)) for org in orgs}  # one journal read per org
        new_agents = [k for k in missing_agents if not hiders[k[0]].covers(agents[k].last)]
        new_sessions = [k for k in missing_sessions if not hiders[k[0]].covers(sessions[k].last)]
        first_agents = {k: _first(agents[k], hiders[k[0]]) for k in new_agents}
        first_sessions = {k: _first(sessions[k], hiders[k[0]]) for k in new_sessions}
        await self._agents.register_named(
            [(org, name, first_agents[org, name].time_us, agents[org, name].last.time_us) for org, name in new_agents])
        await self._sessions.register_named(
            [(org, sid, first.agent_id, first.time_us, sessions[org, sid].last.time_us)
             for (org, sid), first in first_sessions.items()])
        self.agents.add(new_agents)
        self.sessions.add(new_sessions)
        self.agents.drop(missing_agents.difference(new_agents))  # forgotten: a later memory registers them again
        self.sessions.drop(missing_sessions.difference(new_sessions))
