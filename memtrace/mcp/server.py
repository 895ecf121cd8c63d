"""The Memtrace MCP server: eight tools that let a model remember, recall, search and decide through Memtrace.

Every tool talks to Memtrace through `memtrace.client` (HTTP only). Whatever goes wrong - a validation error,
a duplicate, an org without Arc, a dead server - comes back as a tool error (isError) carrying Memtrace's own
message, so the model can read it and adapt instead of the session crashing.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Final, TypeVar

import msgspec
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memtrace import __version__, patterns
from memtrace.client import AsyncMemtraceClient, MemoryType, MemtraceError, NewMemory
from memtrace.patterns import plain

__all__ = ["INSTRUCTIONS", "TOOL_NAMES", "build_server"]

INSTRUCTIONS: Final = """\
Memtrace is your long-term memory. Memories are temporal events: each one records what happened, when, to \
which agent (agent_id) and optionally in which session. Use a stable agent_id for yourself across calls.

- memtrace_remember: store something worth keeping (an action, an observation, a fact about an entity). \
Identical content for the same agent within 24 h is rejected as a duplicate - that is expected, not a failure.
- memtrace_decide: record a decision together with its reasoning, so later turns know why.
- memtrace_recall: read your recent memories. Always give a time window with `since`: a relative span such as \
"30m", "2h", "7d", "4w", or an ISO 8601 timestamp. Start narrow (e.g. "2h") and widen if you need more.
- memtrace_search: filter memories by text, type, tags, importance and time window (`since`).
- memtrace_session_create / memtrace_session_context: group work into a session, then get a compact markdown \
summary of it (recent actions, decisions, errors) to re-orient yourself; `max_tokens` bounds its size.
- memtrace_agent_register: register a named agent (optional - memories may name any agent_id).
- memtrace_forget: erase memories matching a filter (agent, session, types, tags, time window). It only \
counts what would go unless you pass confirm=true; deletion is permanent: confirm only when the user asked.
Results are compact JSON; times are UTC (RFC 3339).
"""

TOOL_NAMES: Final = ("memtrace_remember", "memtrace_recall", "memtrace_search", "memtrace_decide",
                     "memtrace_session_create", "memtrace_session_context", "memtrace_agent_register",
                     "memtrace_forget")

# pydantic's Rust regex engine: `$` is the end of the text (see memtrace.patterns).
_ID = plain(patterns.ID)
_EVENT = plain(patterns.EVENT_TYPE)
_WINDOW = "Time window start: relative (30m, 2h, 7d, 4w) or ISO 8601 / RFC 3339."

AgentId = Annotated[str, Field(pattern=_ID, description="The agent whose memory this is, e.g. 'research_bot'.")]
SessionId = Annotated[str, Field(pattern=_ID, description="A session id (sess_...) from memtrace_session_create.")]
OptSessionId = Annotated[str | None, Field(pattern=_ID, description="Only memories of this session.")]
Since = Annotated[str | None, Field(description=_WINDOW)]
Limit = Annotated[int, Field(ge=1, le=1000, description="Maximum number of memories to return.")]
Query = Annotated[str | None, Field(min_length=1, max_length=1024, description=(
    "What to find, in words (ranked by relevance; stemmed, stopwords ignored), e.g. "
    "'what did the customer say about the refund'."))]
Tags = Annotated[list[Annotated[str, Field(pattern=plain(patterns.TAG))]] | None,
                 Field(max_length=32, description="Labels; a memory matches only if it carries every tag.")]
Metadata = Annotated[dict[str, Any] | None, Field(description="Free-form JSON object stored with it.")]

_encoder: Final = msgspec.json.Encoder()
T = TypeVar("T")


async def _api(call: Awaitable[T]) -> T:
    """Await a client call, turning any Memtrace failure into a tool error the model can read."""
    try:
        return await call
    except MemtraceError as exc:
        prefix = f"Memtrace error {exc.status}" if exc.status else "Memtrace unavailable"
        raise ToolError(f"{prefix}: {exc}") from exc


def _json(value: Any) -> str:
    return _encoder.encode(value).decode()


_READS: Final = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITES: Final = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                 open_world_hint=False)
_FORGETS: Final = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                  open_world_hint=False)


def build_server(client: AsyncMemtraceClient) -> MCPServer:
    """An MCPServer whose tools use `client`; the caller owns the client's lifetime (it outlives MCP sessions)."""
    server: MCPServer = MCPServer(name="memtrace", title="Memtrace memory", instructions=INSTRUCTIONS,
                                  version=__version__, log_level="WARNING")
    _add_memory_tools(server, client)
    _add_session_tools(server, client)
    return server


def _add_memory_tools(server: MCPServer, client: AsyncMemtraceClient) -> None:
    """remember, recall, search, decide: one memory at a time."""
    reads, writes = _READS, _WRITES

    @server.tool(name="memtrace_remember", annotations=writes, structured_output=False)
    async def remember(
        agent_id: AgentId,
        content: Annotated[str, Field(min_length=1, description="What happened or what to remember, in words.")],
        memory_type: Annotated[MemoryType, Field(
            description="episodic: an event or action; session: working state; decision: a choice made; "
                        "entity: a fact about a person, thing or place.")] = "episodic",
        event_type: Annotated[str, Field(pattern=_EVENT, description="Short kind of event, e.g. page_crawled, "
                                         "api_call, error (errors are listed separately in context).")] = "general",
        session_id: Annotated[str | None, Field(pattern=_ID, description="Session this belongs to.")] = None,
        tags: Tags = None,
        importance: Annotated[float | None, Field(ge=0, le=1, description="0..1; higher survives token "
                                                  "budgets longer.")] = None,
        metadata: Metadata = None,
    ) -> str:
        """Store a memory for an agent. Returns the stored memory (with its id and time) as JSON."""
        memory = NewMemory(agent_id=agent_id, content=content, memory_type=memory_type, event_type=event_type,
                           session_id=session_id, tags=tags, importance=importance, metadata=metadata)
        return _json(await _api(client.add_memory(memory)))

    @server.tool(name="memtrace_recall", annotations=reads, structured_output=False)
    async def recall(
        query: Query = None,
        agent_id: Annotated[str | None, Field(pattern=_ID, description="Only this agent's memories (required "
                                              "without a query).")] = None,
        since: Annotated[str | None, Field(description=_WINDOW + " Default without a query: 24h.")] = None,
        session_id: OptSessionId = None,
        memory_type: Annotated[MemoryType | None, Field(description="Only this kind of memory.")] = None,
        limit: Limit = 50,
        max_tokens: Annotated[int, Field(ge=1, le=100_000, description="With a query: the token budget of the "
                                         "markdown.")] = 1000,
    ) -> str:
        """With a query: the memories most relevant to it, as prompt-ready markdown (each line with its time and
        session, the memories around each hit kept with it). Without: an agent's memories from a time window,
        newest first, as JSON {memories, count, has_more}."""
        if query is not None:
            result = await _api(client.recall_context(query, agent_id=agent_id, session_id=session_id,
                                                      memory_types=[memory_type] if memory_type else None,
                                                      since=since, max_tokens=max_tokens))
            return result.context
        if agent_id is None:
            raise ToolError("memtrace_recall needs a query (what to find) or an agent_id (whose recent memories)")
        return _json(await _api(client.recall(agent_id, since or "24h", session_id=session_id,
                                              memory_type=memory_type, limit=limit)))

    @server.tool(name="memtrace_search", annotations=reads, structured_output=False)
    async def search(
        query: Query = None,
        agent_id: Annotated[str | None, Field(pattern=_ID, description="Only this agent's memories.")] = None,
        content_contains: Annotated[str | None, Field(description="Case-insensitive substring of the content.")]
        = None,
        memory_types: Annotated[list[MemoryType] | None, Field(description="Only these kinds.")] = None,
        tags: Tags = None,
        since: Since = None,
        min_importance: Annotated[float | None, Field(ge=0, le=1, description="Minimum importance.")] = None,
        limit: Limit = 50,
    ) -> str:
        """Search memories: with a query, the most relevant first, each with its score; else by the filters,
        newest first. JSON: {results, count, query_time_ms}."""
        return _json(await _api(client.search(query=query, agent_id=agent_id, content_contains=content_contains,
                                              memory_types=memory_types, tags=tags, since=since,
                                              min_importance=min_importance, limit=limit)))

    @server.tool(name="memtrace_decide", annotations=writes, structured_output=False)
    async def decide(
        agent_id: AgentId,
        decision: Annotated[str, Field(min_length=1, description="The decision, stated briefly.")],
        reasoning: Annotated[str, Field(description="Why - shown next to the decision in session context.")],
    ) -> str:
        """Record a decision and the reasoning behind it. Returns the stored memory as JSON."""
        return _json(await _api(client.decide(agent_id, decision, reasoning)))



def _add_session_tools(server: MCPServer, client: AsyncMemtraceClient) -> None:
    """session_create, session_context, agent_register, forget: sessions, agents and erasure."""
    reads, writes, forgets = _READS, _WRITES, _FORGETS

    @server.tool(name="memtrace_session_create", annotations=writes, structured_output=False)
    async def session_create(agent_id: AgentId, metadata: Metadata = None) -> str:
        """Start a session (a bounded piece of work) for an agent. Returns the session, whose id to pass on."""
        return _json(await _api(client.create_session(agent_id, metadata)))

    @server.tool(name="memtrace_session_context", annotations=reads, structured_output=False)
    async def session_context(
        session_id: SessionId,
        since: Since = None,
        include_types: Annotated[list[MemoryType] | None, Field(description="Only these kinds.")] = None,
        max_tokens: Annotated[int | None, Field(ge=1, description="Token budget for the summary; whole lines "
                                                "are dropped, least important first.")] = None,
    ) -> str:
        """A markdown summary of a session (recent actions, decisions, errors, state, entities), newest first."""
        return await _api(client.context(session_id, max_tokens=max_tokens, include_types=include_types,
                                         since=since))

    @server.tool(name="memtrace_agent_register", annotations=writes, structured_output=False)
    async def agent_register(
        name: Annotated[str, Field(pattern=_ID, description="Unique agent name in this org.")],
        description: Annotated[str | None, Field(description="What the agent does.")] = None,
    ) -> str:
        """Register a named agent. Returns the agent (id, name, created_at) as JSON."""
        return _json(await _api(client.register_agent(name, description)))

    @server.tool(name="memtrace_forget", annotations=forgets, structured_output=False)
    async def forget(
        agent_id: Annotated[str | None, Field(pattern=_ID, description="Forget this agent's memories.")] = None,
        session_id: Annotated[str | None, Field(pattern=_ID, description="Forget this session's memories.")]
        = None,
        memory_types: Annotated[list[MemoryType] | None, Field(description="Only these kinds.")] = None,
        tags: Tags = None,
        since: Since = None,
        until: Annotated[str | None, Field(description="Time window end (exclusive), same forms as since.")]
        = None,
        confirm: Annotated[bool, Field(description="false (default): only count what would be forgotten. "
                                       "true: delete it, permanently.")] = False,
    ) -> str:
        """Forget memories matching a filter (at least one is required). A dry run unless confirm=true.
        JSON: {matched, deleted, dry_run, pending}."""
        if not any((agent_id, session_id, memory_types, tags, since, until)):
            raise ToolError("memtrace_forget needs a filter: agent_id, session_id, memory_types, tags, since or "
                            "until (forgetting everything is an administrator's job)")
        return _json(await _api(client.forget(agent_id=agent_id, session_id=session_id, memory_types=memory_types,
                                              tags=tags, since=since, until=until, dry_run=not confirm)))
