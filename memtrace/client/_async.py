"""AsyncMemtraceClient: every route of the HTTP API, as typed methods over `Transport` (`_transport.py`:
the pooled session, retries and error translation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack
from urllib.parse import quote

import msgspec

from memtrace.client._models import (
    Agent,
    AgentList,
    AgentStats,
    BatchResult,
    ContextRequest,
    ForgetRequest,
    ForgetResult,
    Health,
    Memory,
    MemoryList,
    MemoryType,
    NewAgent,
    NewMemory,
    NewMemoryBatch,
    NewSession,
    Readiness,
    RecallRequest,
    RecallResult,
    SearchQuery,
    SearchResults,
    Session,
    SessionContext,
    SessionList,
    SessionStatus,
    SessionUpdate,
    Timeline,
)
from memtrace.client._params import ListFilters, MemoryFields, SearchFields, query_params
from memtrace.client._transport import DEFAULT_URL, Transport, decode

__all__ = ["DEFAULT_URL", "AsyncMemtraceClient"]



def _seg(value: str) -> str:
    return quote(value, safe="")


class AsyncMemtraceClient(Transport):
    """Asynchronous Memtrace client; use as ``async with AsyncMemtraceClient(url, key) as mt: ...``.

    The HTTP session is created on first use inside the running event loop and reused (keep-alive pool)
    until `close()`.
    """

    # --- memories ---------------------------------------------------------------------------------------

    async def add_memory(self, memory: NewMemory) -> Memory:
        """Store one memory; ConflictError when the same content was stored within the dedup window."""
        return await self._send(Memory, "POST", "/api/v1/memories", memory, idempotent=False)

    async def add_memories(self, memories: Sequence[NewMemory]) -> BatchResult:
        """Store up to 1000 memories atomically validated; duplicates are skipped and counted, not raised."""
        return await self._send(BatchResult, "POST", "/api/v1/memories", NewMemoryBatch(memories=list(memories)),
                                idempotent=False)

    async def list_memories(self, *, agent_id: str | None = None, session_id: str | None = None,
                            since: str | None = None, **filters: Unpack[ListFilters]) -> MemoryList:
        params = query_params({"agent_id": agent_id, "session_id": session_id, "since": since, **filters})
        return await self._get(MemoryList, "/api/v1/memories", params)

    async def get_memory(self, memory_id: str) -> Memory:
        return await self._get(Memory, f"/api/v1/memories/{_seg(memory_id)}")

    async def delete_memory(self, memory_id: str) -> bool:
        """Forget one memory (NotFoundError when absent); False while Arc has not confirmed yet (202), though
        no read shows it any more."""
        status, _ = await self._request("DELETE", f"/api/v1/memories/{_seg(memory_id)}")
        return status == 204

    async def forget(self, *, agent_id: str | None = None, session_id: str | None = None,
                     memory_types: list[MemoryType] | None = None, event_types: list[str] | None = None,
                     tags: list[str] | None = None, since: str | None = None, until: str | None = None,
                     dry_run: bool = False) -> ForgetResult:
        """Forget every memory matching the filters (at least one is required); `dry_run` only counts."""
        body = ForgetRequest(agent_id=agent_id, session_id=session_id, memory_types=memory_types,
                             event_types=event_types, tags=tags, since=since, until=until, dry_run=dry_run)
        return await self._send(ForgetResult, "POST", "/api/v1/forget", body)

    async def search(self, query: SearchQuery | None = None, /, **fields: Unpack[SearchFields]) -> SearchResults:
        """Search: with `query="free text"` the most relevant memories, best first, each with `score`; else by
        filters in time order. Pass a SearchQuery, keyword fields, or both (keywords override its fields)."""
        if query is None:
            query = SearchQuery(**fields)
        elif fields:
            query = msgspec.structs.replace(query, **fields)
        return await self._send(SearchResults, "POST", "/api/v1/search", query)

    # --- agents -----------------------------------------------------------------------------------------

    async def register_agent(self, name: str, description: str | None = None,
                             config: dict[str, Any] | None = None) -> Agent:
        """Register an agent; ConflictError when the name is taken in the org."""
        return await self._send(Agent, "POST", "/api/v1/agents", NewAgent(name=name, description=description,
                                                                          config=config), idempotent=False)

    async def list_agents(self) -> AgentList:
        return await self._get(AgentList, "/api/v1/agents")

    async def get_agent(self, agent: str) -> Agent:
        """Look an agent up by id (`agent_...`) or by name."""
        return await self._get(Agent, f"/api/v1/agents/{_seg(agent)}")

    async def delete_agent(self, agent: str) -> None:
        await self._request("DELETE", f"/api/v1/agents/{_seg(agent)}")

    async def erase_agent(self, agent: str) -> bool:
        """Delete the agent, its sessions and all its memories; False while Arc has not confirmed yet (202)."""
        status, _ = await self._request("DELETE", f"/api/v1/agents/{_seg(agent)}", params={"erase": "true"})
        return status == 204

    async def agent_memories(self, agent: str, *, session_id: str | None = None, since: str | None = None,
                             **filters: Unpack[ListFilters]) -> MemoryList:
        """An agent's memories; the server defaults `since` to the last 24 hours."""
        params = query_params({"session_id": session_id, "since": since, **filters})
        return await self._get(MemoryList, f"/api/v1/agents/{_seg(agent)}/memories", params)

    async def agent_stats(self, agent: str) -> AgentStats:
        return await self._get(AgentStats, f"/api/v1/agents/{_seg(agent)}/stats")

    async def agent_timeline(self, agent: str, *, since: str = "7d", until: str | None = None,
                             bucket: str = "1h") -> Timeline:
        """An agent's memory counts per `bucket` (1m to 1d) over [since, until), by memory type, with errors."""
        params = query_params({"since": since, "until": until, "bucket": bucket})
        return await self._get(Timeline, f"/api/v1/agents/{_seg(agent)}/timeline", params)

    # --- sessions ---------------------------------------------------------------------------------------

    async def create_session(self, agent_id: str, metadata: dict[str, Any] | None = None) -> Session:
        """Open a session; an agent_id that names no registered agent registers it."""
        return await self._send(Session, "POST", "/api/v1/sessions", NewSession(agent_id=agent_id, metadata=metadata),
                                idempotent=False)

    async def list_sessions(self, agent_id: str | None = None) -> SessionList:
        return await self._get(SessionList, "/api/v1/sessions", query_params({"agent_id": agent_id}))

    async def get_session(self, session_id: str) -> Session:
        return await self._get(Session, f"/api/v1/sessions/{_seg(session_id)}")

    async def update_session(self, session_id: str, *, status: SessionStatus | None = None,
                             metadata: dict[str, Any] | None = None) -> Session:
        return await self._send(Session, "PUT", f"/api/v1/sessions/{_seg(session_id)}",
                                SessionUpdate(status=status, metadata=metadata))

    async def close_session(self, session_id: str) -> Session:
        return await self.update_session(session_id, status="closed")

    async def session_memories(self, session_id: str, *, since: str | None = None,
                               **filters: Unpack[ListFilters]) -> MemoryList:
        params = query_params({"since": since, **filters})
        return await self._get(MemoryList, f"/api/v1/sessions/{_seg(session_id)}/memories", params)

    async def session_context(self, session_id: str, *, max_tokens: int | None = None,
                              include_types: list[MemoryType] | None = None,
                              since: str | None = None) -> SessionContext:
        """Markdown summary of a session for a prompt, cut to `max_tokens` by dropping whole lines."""
        body = ContextRequest(max_tokens=max_tokens, include_types=include_types, since=since)
        return await self._send(SessionContext, "POST", f"/api/v1/sessions/{_seg(session_id)}/context", body)

    async def session_timeline(self, session_id: str, *, since: str = "7d", until: str | None = None,
                               bucket: str = "1h") -> Timeline:
        """A session's memory counts per `bucket` (1m to 1d) over [since, until), by memory type, with errors."""
        params = query_params({"since": since, "until": until, "bucket": bucket})
        return await self._get(Timeline, f"/api/v1/sessions/{_seg(session_id)}/timeline", params)

    # --- health -----------------------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self._get(Health, "/health")

    async def ready(self) -> Readiness:
        """Readiness without raising on 503: "not ready yet" is the answer, not a failure."""
        status, data = await self._request("GET", "/ready", answers=(503,))
        readiness = decode(Readiness, data)
        return msgspec.structs.replace(readiness, ready=status == 200)

    # --- conveniences -----------------------------------------------------------------------------------

    async def remember(self, agent_id: str, content: str, **fields: Unpack[MemoryFields]) -> Memory:
        """Store what happened (episodic/general unless `fields` say otherwise)."""
        return await self.add_memory(NewMemory(agent_id=agent_id, content=content, **fields))

    async def recall(self, agent_id: str, since: str = "24h", *, session_id: str | None = None,
                     **filters: Unpack[ListFilters]) -> MemoryList:
        """What the agent remembers from a time window, newest first; memories are temporal, so pick `since`."""
        return await self.list_memories(agent_id=agent_id, session_id=session_id, since=since, **filters)

    async def recall_context(self, query: str, *, agent_id: str | None = None, session_id: str | None = None,
                             memory_types: list[MemoryType] | None = None, tags: list[str] | None = None,
                             since: str | None = None, until: str | None = None, max_tokens: int | None = None,
                             neighbors: int | None = None) -> RecallResult:
        """The memories most relevant to `query` as prompt-ready markdown within `max_tokens` (server default
        1,000), each hit with the memories around it; `recall` (above) is the time-window recall of the SDK."""
        body = RecallRequest(query=query, agent_id=agent_id, session_id=session_id, memory_types=memory_types,
                             tags=tags, since=since, until=until, max_tokens=max_tokens, neighbors=neighbors)
        return await self._send(RecallResult, "POST", "/api/v1/recall", body)

    async def decide(self, agent_id: str, decision: str, reasoning: str, *, session_id: str | None = None,
                     importance: float | None = None, tags: list[str] | None = None) -> Memory:
        """Log a decision with its reasoning (kept in metadata.reasoning, shown by session context)."""
        return await self.add_memory(NewMemory(agent_id=agent_id, content=decision, memory_type="decision",
                                               event_type="decision", session_id=session_id,
                                               metadata={"reasoning": reasoning}, importance=importance, tags=tags))

    async def context(self, session_id: str, *, max_tokens: int | None = None,
                      include_types: list[MemoryType] | None = None, since: str | None = None) -> str:
        """Just the session-context markdown, ready to paste into a prompt."""
        result = await self.session_context(session_id, max_tokens=max_tokens, include_types=include_types,
                                            since=since)
        return result.context
