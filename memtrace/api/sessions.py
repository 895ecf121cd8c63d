"""`/api/v1/sessions`: lifecycle in SQLite, per org; memories and context from the memory service."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from blacksheep import Request, Response, Router
from msgspec import Meta, Struct

from memtrace import timeutil
from memtrace.api.deps import Deps
from memtrace.api.http import convert, decode, json_response, path_param, query_params, read_body
from memtrace.api.params import list_filter
from memtrace.api.resolve import agent_aliases
from memtrace.errors import NotFound
from memtrace.jsonlimits import client_object
from memtrace.memory.build import memory_list
from memtrace.memory.model import Id, MemoryType, Time
from memtrace.metadata.models import Session, SessionStatus
from memtrace.patterns import ID_RE
from memtrace.timeutil import parse_time_param


class SessionCreate(Struct, kw_only=True):
    agent_id: Id
    metadata: dict[str, Any] | None = None


class SessionUpdate(Struct, kw_only=True):
    status: SessionStatus | None = None
    metadata: dict[str, Any] | None = None


class ContextRequest(Struct, kw_only=True):
    max_tokens: Annotated[int, Meta(ge=1, le=1_000_000, examples=[2000])] | None = None
    include_types: Annotated[list[MemoryType], Meta(max_length=4)] | None = None
    since: Time | None = None


class SessionListParams(Struct, kw_only=True, forbid_unknown_fields=False):
    """`GET /api/v1/sessions` query: an agent's id or name (sessions created under either match)."""

    agent_id: Annotated[str, Meta(examples=["researcher_1"])] | None = None


class SessionList(Struct, kw_only=True):
    sessions: list[Session]
    count: int


class ContextResponse(Struct, kw_only=True):
    session_id: str
    context: str
    memory_count: int
    truncated: bool
    omitted: int


_create = msgspec.json.Decoder(SessionCreate)
_update = msgspec.json.Decoder(SessionUpdate)
_context = msgspec.json.Decoder(ContextRequest | None)  # `null`: the original Go SDK with no options


def _session_id(request: Request) -> str:
    session_id = path_param(request, "session_id")
    if not ID_RE.fullmatch(session_id):
        raise NotFound("session not found")
    return session_id


def register(router: Router, deps: Deps) -> None:
    limits = deps.settings.limits

    async def create(request: Request) -> Response:
        principal = await deps.principal(request, "write")
        req = decode(_create, await read_body(request, limits.max_body_bytes))
        metadata = client_object(req.metadata, "metadata", limits.max_metadata_bytes)  # before any write
        if await deps.agents.find(principal.org_id, req.agent_id) is None:
            await deps.agents.ensure(principal.org_id, req.agent_id)
        session = await deps.sessions.create(principal.org_id, req.agent_id, metadata)
        return json_response(201, session)

    async def list_sessions(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        agent = convert(query_params(request), SessionListParams).agent_id
        agent_ids = (await agent_aliases(deps, principal.org_id, agent))[0] if agent else None
        sessions = await deps.sessions.list(principal.org_id, agent_ids)
        return json_response(200, SessionList(sessions=sessions, count=len(sessions)))

    async def get_session(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        return json_response(200, await deps.sessions.get(principal.org_id, _session_id(request)))

    async def update_session(request: Request) -> Response:
        principal = await deps.principal(request, "write")
        session_id = _session_id(request)
        req = decode(_update, await read_body(request, limits.max_body_bytes))
        metadata = client_object(req.metadata, "metadata", limits.max_metadata_bytes)
        session = await deps.sessions.update(principal.org_id, session_id, req.status, metadata)
        return json_response(200, session)

    async def session_memories(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        params = query_params(request)
        params.pop("session_id", None)
        f, page = list_filter(params, timeutil.now_us(), session_id=_session_id(request))
        rows, has_more = await deps.memories.list_page(principal.org_id, f, page)
        return json_response(200, memory_list(rows, has_more))

    async def context(request: Request) -> Response:
        principal = await deps.principal(request, "read")
        session_id = _session_id(request)
        body = await read_body(request, limits.max_body_bytes)
        req = (decode(_context, body) if body.strip() else None) or ContextRequest()
        since_us = parse_time_param(req.since, timeutil.now_us(), "since") if req.since else None
        rendered = await deps.memories.context(
            principal.org_id, session_id, tuple(req.include_types or ()), since_us, req.max_tokens
        )
        return json_response(200, ContextResponse(
            session_id=session_id, context=rendered.context, memory_count=rendered.memory_count,
            truncated=rendered.truncated, omitted=rendered.omitted,
        ))

    router.add_post("/api/v1/sessions", create)
    router.add_get("/api/v1/sessions", list_sessions)
    router.add_get("/api/v1/sessions/:session_id", get_session)
    router.add_put("/api/v1/sessions/:session_id", update_session)
    router.add_get("/api/v1/sessions/:session_id/memories", session_memories)
    router.add_post("/api/v1/sessions/:session_id/context", context)
