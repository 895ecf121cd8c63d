"""`/api/v1/agents`: registry in SQLite, per org; memories and stats come from the memory service."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from blacksheep import Request, Response, Router
from msgspec import Meta, Struct

from memtrace import timeutil
from memtrace.api.deps import Deps
from memtrace.api.forget import erase_agent
from memtrace.api.http import convert, decode, json_response, path_param, query_params, read_body
from memtrace.api.params import list_filter
from memtrace.api.resolve import agent_aliases
from memtrace.jsonlimits import client_object
from memtrace.memory.build import memory_list
from memtrace.memory.model import Id
from memtrace.metadata.models import Agent
from memtrace.rows import MemoryFilter

DESCRIPTION_MAX = 4096


class AgentDeleteParams(Struct, kw_only=True, forbid_unknown_fields=False):
    """`?erase=true` also forgets the agent's sessions and memories (issue: forgetting)."""

    erase: bool = False


class AgentCreate(Struct, kw_only=True):
    name: Id
    description: Annotated[str, Meta(max_length=DESCRIPTION_MAX, examples=["Finds and summarises papers"])] = ""
    config: dict[str, Any] | None = None


class AgentStats(Struct, kw_only=True):
    agent_id: str
    memory_count: int
    memories_24h: int
    errors_24h: int
    session_count: int
    active_sessions: int
    last_active_at: str | None
    memory_types: dict[str, int]


class AgentList(Struct, kw_only=True):
    agents: list[Agent]
    count: int


_create = msgspec.json.Decoder(AgentCreate)


def register(router: Router, deps: Deps) -> None:
    limits = deps.settings.limits

    async def create(request: Request) -> Response:
        principal = await deps.principal(request, "write")
        req = decode(_create, await read_body(request, limits.max_body_bytes))
        config = client_object(req.config, "config", limits.max_metadata_bytes)
        agent = await deps.agents.create(principal.org_id, req.name, req.description, config)
        return json_response(201, agent)

    async def list_agents(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        agents = await deps.agents.list(principal.org_id)
        return json_response(200, AgentList(agents=agents, count=len(agents)))

    async def get_agent(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        return json_response(200, await deps.agents.get(principal.org_id, path_param(request, "agent")))

    async def delete_agent(request: Request) -> Response:
        if convert(query_params(request), AgentDeleteParams).erase:
            return await erase_agent(deps, request)
        principal = await deps.principal(request, "write")
        await deps.agents.get(principal.org_id, path_param(request, "agent"))  # 404 when absent
        await deps.agents.delete(principal.org_id, path_param(request, "agent"))
        return Response(204)

    async def agent_memories(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        agent_ids, _ = await agent_aliases(deps, principal.org_id, path_param(request, "agent"))
        params = query_params(request)
        params.pop("agent_id", None)
        f, page = list_filter(params, timeutil.now_us(), default_since="24h")
        f = msgspec.structs.replace(f, agent_ids=agent_ids)
        rows, has_more = await deps.memories.list_page(principal.org_id, f, page)
        return json_response(200, memory_list(rows, has_more))

    async def agent_stats(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        org_id = principal.org_id
        agent_ids, agent = await agent_aliases(deps, org_id, path_param(request, "agent"))
        counts = await deps.memories.counts(org_id, MemoryFilter(agent_ids=agent_ids), timeutil.now_us())
        total, active = await deps.sessions.counts(org_id, agent_ids)
        stats = AgentStats(
            agent_id=agent.id if agent else agent_ids[0],
            memory_count=counts.total,
            memories_24h=counts.last_24h,
            errors_24h=counts.errors_24h,
            session_count=total,
            active_sessions=active,
            last_active_at=agent.last_active_at if agent else None,
            memory_types=counts.by_type,
        )
        return json_response(200, stats)

    router.add_post("/api/v1/agents", create)
    router.add_get("/api/v1/agents", list_agents)
    router.add_get("/api/v1/agents/:agent", get_agent)
    router.add_delete("/api/v1/agents/:agent", delete_agent)
    router.add_get("/api/v1/agents/:agent/memories", agent_memories)
    router.add_get("/api/v1/agents/:agent/stats", agent_stats)
