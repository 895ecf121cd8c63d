"""Function tools that let an agent remember, recall, search and log decisions in Memtrace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final, Literal

from agents import FunctionTool, function_tool

from memtrace.client import AsyncMemtraceClient, ConflictError, Memory, MemoryType

__all__ = ["SearchScope", "ToolName", "memtrace_tools"]

ToolName = Literal["remember", "recall", "search", "decide"]
SearchScope = Literal["agent", "session", "org"]

# Conversation items stored by MemtraceSession are `session` memories; the tools leave them out of recall and search.
_RECALLED_TYPES: Final[list[MemoryType]] = ["episodic", "decision", "entity"]
_LINE_CHARS: Final = 300


def _line(memory: Memory) -> str:
    content = " ".join(memory.content.split())
    reasoning = memory.metadata.get("reasoning") if memory.memory_type == "decision" else None
    if isinstance(reasoning, str) and reasoning:
        content += f" (why: {' '.join(reasoning.split())})"
    if len(content) > _LINE_CHARS:
        content = content[:_LINE_CHARS] + "..."
    return f"- [{memory.time:%Y-%m-%dT%H:%M:%SZ}] {memory.agent_id} {memory.event_type}: {content}"


def _render(memories: Sequence[Memory], empty: str) -> str:
    if not memories:
        return empty
    return f"{len(memories)} memories, newest first:\n" + "\n".join(_line(m) for m in memories)


def _merge_tags(bound: Sequence[str], extra: Iterable[str] | None) -> list[str] | None:
    tags = list(dict.fromkeys([*bound, *(extra or ())]))
    return tags or None


def memtrace_tools(client: AsyncMemtraceClient, agent_id: str, *, session_id: str | None = None,
                   tags: Sequence[str] = (), search_scope: SearchScope | None = None,
                   include: Sequence[ToolName] = ("remember", "recall", "search", "decide")) -> list[FunctionTool]:
    """Function tools bound to `client` and `agent_id`, for ``Agent(tools=memtrace_tools(...))``.

    Writes (``remember``, ``decide``) carry `session_id` and `tags` when given, so agents sharing a session and
    tags see each other's work. ``recall`` lists this agent's own episodic, decision and entity memories from a time
    window; ``search`` matches content case-insensitively within `search_scope` (default: the session when one is
    bound, else the agent). A repeated ``remember`` answers "already remembered" instead of failing; other API
    errors reach the model as the tool's error text (the SDK's default failure handling).
    """
    scope: SearchScope = search_scope or ("session" if session_id else "agent")
    if scope == "session" and session_id is None:
        raise ValueError("search_scope='session' needs a session_id")
    bound_tags = list(tags)

    async def remember(content: str, event_type: str = "note", importance: float = 0.5,
                       tags: list[str] | None = None) -> str:
        """Store a fact, observation or result worth remembering later.

        Args:
            content: What happened or what was learned, in one to three sentences.
            event_type: Short snake_case label such as note, finding, user_preference or error.
            importance: From 0 to 1; how much this should weigh when memory is summarised.
            tags: Optional extra labels (letters, digits, dot, dash, underscore) to filter by later.
        """
        try:
            memory = await client.remember(agent_id, content, event_type=event_type, session_id=session_id,
                                           importance=importance, tags=_merge_tags(bound_tags, tags))
        except ConflictError:
            return "already remembered (an identical memory was stored recently)"
        return f"remembered as {memory.id}"

    async def recall(since: str = "24h", limit: int = 20) -> str:
        """List what you remembered and decided recently, newest first.

        Args:
            since: Time window such as 30m, 2h, 7d or 4w.
            limit: Maximum number of memories to return (1 to 100).
        """
        found = await client.search(agent_id=agent_id, memory_types=_RECALLED_TYPES, since=since,
                                    limit=max(1, min(limit, 100)), order="desc")
        return _render(found.results, f"nothing remembered in the last {since}")

    async def search(query: str, limit: int = 10) -> str:
        """Find the memories most relevant to the query, best first (ranked by the words they share with it).

        Args:
            query: What to look for, in words, e.g. "pricing" or "what did the customer say about the refund".
            limit: Maximum number of memories to return (1 to 50).
        """
        found = await client.search(agent_id=agent_id if scope == "agent" else None,
                                    session_id=session_id if scope == "session" else None,
                                    memory_types=_RECALLED_TYPES, query=query, limit=max(1, min(limit, 50)))
        return _render(found.results, f"no memory mentions {query!r}")

    async def decide(decision: str, reasoning: str, importance: float = 0.7) -> str:
        """Record a decision together with why it was made, so later steps and other agents can follow it.

        Args:
            decision: The decision, in one sentence.
            reasoning: Why this option was chosen over the alternatives.
            importance: From 0 to 1.
        """
        try:
            memory = await client.decide(agent_id, decision, reasoning, session_id=session_id,
                                         importance=importance, tags=bound_tags or None)
        except ConflictError:
            return "this decision was already recorded"
        return f"decision recorded as {memory.id}"

    available: dict[str, Callable[..., Awaitable[str]]] = {
        "remember": remember, "recall": recall, "search": search, "decide": decide}
    unknown = [name for name in include if name not in available]
    if unknown:
        raise ValueError(f"unknown Memtrace tool(s): {', '.join(unknown)}")
    return [function_tool(available[name], name_override=name) for name in include]
