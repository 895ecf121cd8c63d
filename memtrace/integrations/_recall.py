"""What every framework integration shares: one Memtrace client for its blocking and async methods, and the one
place retrieval asks Memtrace for memories relevant to a query (so switching to ranked recall is one line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from memtrace.client import Memory, MemoryType, MemtraceClient, SearchFields

__all__ = ["Recalled", "connect", "memory_fields", "recalled", "search_fields"]


@dataclass(frozen=True, slots=True)
class Recalled:
    """A memory found for a query, with its relevance score (None when no query was given: time order)."""

    memory: Memory
    score: float | None


def connect(url: str | None, api_key: str | None, client: MemtraceClient | None) -> MemtraceClient:
    """The client an integration talks through: the one given, or a new one for `url` and `api_key`."""
    if client is not None:
        return client
    if not url or not api_key:
        raise ValueError("pass url and api_key (an mtk_ key), or a MemtraceClient as client=")
    return MemtraceClient(url, api_key)


def search_fields(query: str | None, *, limit: int, agent_id: str | None = None, session_id: str | None = None,
                  memory_types: Sequence[MemoryType] | None = None, event_types: Sequence[str] | None = None,
                  tags: Sequence[str] | None = None, since: str | None = None,
                  until: str | None = None) -> SearchFields:
    """The POST /api/v1/search body for "memories relevant to `query`", ranked best first (every memory, newest
    first, when it is empty)."""
    text = " ".join((query or "").split()) or None
    return SearchFields(
        agent_id=agent_id, session_id=session_id, memory_types=list(memory_types) if memory_types else None,
        event_types=list(event_types) if event_types else None, tags=list(tags) if tags else None,
        since=since, until=until, limit=max(1, min(limit, 1000)), order="relevance" if text else "desc",
        query=text,
    )


def recalled(memories: Sequence[Memory]) -> list[Recalled]:
    """Search results with their scores (results of a ranked search carry `score`; a search without query none)."""
    return [Recalled(memory, _score(memory)) for memory in memories]


def _score(memory: Memory) -> float | None:
    score = getattr(memory, "score", None)
    return float(score) if isinstance(score, int | float) else None


def memory_fields(memory: Memory, score: float | None = None) -> dict[str, Any]:
    """A memory's fields as plain JSON-ready values, for a framework's document or item metadata."""
    fields: dict[str, Any] = {
        "id": memory.id, "time": memory.time.astimezone(UTC).isoformat(), "agent_id": memory.agent_id,
        "session_id": memory.session_id, "memory_type": memory.memory_type, "event_type": memory.event_type,
        "tags": list(memory.tags), "importance": memory.importance, "metadata": dict(memory.metadata),
        "score": score,
    }
    return fields
