"""Path ids → what they name, within the caller's org only."""

from __future__ import annotations

from memtrace.api.deps import Deps
from memtrace.errors import NotFound
from memtrace.metadata.models import Agent
from memtrace.patterns import ID_RE


async def agent_aliases(deps: Deps, org_id: str, id_or_name: str) -> tuple[tuple[str, ...], Agent | None]:
    """The agent_id values that mean this agent in memories: its id and name when registered.

    Memories may name agents that were never registered (api.md), so an unregistered but well-formed
    name still matches itself; anything else is 404. Only the caller's org is consulted.
    """
    agent = await deps.agents.find(org_id, id_or_name)
    if agent is not None:
        return (agent.id, agent.name), agent
    if not ID_RE.fullmatch(id_or_name):
        raise NotFound("agent not found")
    return (id_or_name,), None
