"""Forgetting over HTTP: `DELETE /api/v1/memories/{id}`, `POST /api/v1/forget`, and agent erasure.

Every deletion is audited in the metadata store (key id, filter, rows, applied or pending). A deletion
that Arc has not confirmed yet (Arc unreachable) is recorded in the journal and hidden from every read
already: the answer is 202 and the background applier finishes it (`memory/forget.py`).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from blacksheep import Request, Response, Router
from msgspec import Meta, Struct

from memtrace import timeutil
from memtrace.api.deps import Deps
from memtrace.api.http import decode, json_response, path_param, read_body
from memtrace.api.params import body_filter
from memtrace.api.resolve import agent_aliases
from memtrace.errors import Invalid, NotFound
from memtrace.memory.model import EventType, Id, MemoryType, Tags
from memtrace.patterns import MEMORY_ID_RE
from memtrace.rows import MemoryFilter
from memtrace.timeutil import TIME_RULE


class ForgetRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Unknown fields are refused: a misspelt filter must never widen a deletion."""

    agent_id: Id | None = None
    session_id: Id | None = None
    memory_types: Annotated[list[MemoryType], Meta(max_length=4)] | None = None
    event_types: Annotated[list[EventType], Meta(max_length=64)] | None = None
    tags: Tags | None = None
    since: Annotated[str, Meta(max_length=64, extra={"rule": TIME_RULE})] | None = None
    until: Annotated[str, Meta(max_length=64, extra={"rule": TIME_RULE})] | None = None
    dry_run: bool = False


class ForgetResult(Struct, kw_only=True):
    matched: int
    deleted: int
    dry_run: bool
    pending: bool = False


_forget = msgspec.json.Decoder(ForgetRequest)


def forget_filter(req: ForgetRequest, now_us: int) -> MemoryFilter:
    f = body_filter(req, now_us)
    if f == MemoryFilter():
        raise Invalid("forget needs at least one filter (agent_id, session_id, memory_types, event_types, tags, "
                      "since, until); erasing a whole org is `memtrace admin org delete ORG_ID --purge`")
    return f


def describe_filter(f: MemoryFilter) -> dict[str, Any]:
    """The non-empty fields of a filter, for the audit trail."""
    out: dict[str, Any] = {}
    for name, value in msgspec.structs.asdict(f).items():
        if name != "hide" and value not in (None, (), ""):
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


async def erase_agent(deps: Deps, request: Request) -> Response:
    """`DELETE /api/v1/agents/{id_or_name}?erase=true`: the agent, its sessions and all its memories."""
    principal = await deps.principal(request, "write")
    org_id = principal.org_id
    agent_ids, agent = await agent_aliases(deps, org_id, path_param(request, "agent"))
    f = MemoryFilter(agent_ids=agent_ids)
    done = await deps.memories.forget(org_id, f, dry_run=False)
    await deps.sessions.delete_for_agent(org_id, agent_ids)
    if agent is not None:
        await deps.agents.delete(org_id, agent.id)
    deps.memories.names.forget_org(org_id)  # after the delete: a later memory here registers the agent again
    await deps.audit.record(org_id, principal.key_id, "agent_erase", describe_filter(f), done.matched,
                                      "pending" if done.pending else "applied")
    return Response(202 if done.pending else 204)


def register(router: Router, deps: Deps) -> None:
    limits = deps.settings.limits

    async def delete_memory(request: Request) -> Response:
        principal = await deps.principal(request, "write")
        memory_id = path_param(request, "memory_id")
        if not MEMORY_ID_RE.fullmatch(memory_id):
            raise NotFound("memory not found")
        done = await deps.memories.delete_memory(principal.org_id, memory_id)
        await deps.audit.record(principal.org_id, principal.key_id, "memory", {"ids": [memory_id]},
                                done.matched, "pending" if done.pending else "applied")
        return Response(202 if done.pending else 204)

    async def forget(request: Request) -> Response:
        principal = await deps.principal(request, "write")
        req = decode(_forget, await read_body(request, limits.max_body_bytes))
        f = forget_filter(req, timeutil.now_us())
        done = await deps.memories.forget(principal.org_id, f, dry_run=req.dry_run)
        if not req.dry_run:
            await deps.audit.record(principal.org_id, principal.key_id, "forget", describe_filter(f),
                                    done.matched, "pending" if done.pending else "applied")
        result = ForgetResult(matched=done.matched, deleted=0 if req.dry_run else done.matched,
                              dry_run=req.dry_run, pending=done.pending)
        return json_response(202 if done.pending else 200, result)

    router.add_delete("/api/v1/memories/:memory_id", delete_memory)
    router.add_post("/api/v1/forget", forget)
