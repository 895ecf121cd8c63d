"""msgspec Structs for every body the HTTP API takes or returns.

Request Structs omit unset (None) fields when encoded so the server applies its own defaults. Response
Structs ignore unknown fields, so a newer server that adds fields never breaks an older client, and they
omit None/empty fields when re-encoded, which keeps the JSON handed to language models short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "Agent",
    "AgentList",
    "AgentStats",
    "BatchResult",
    "ContextRequest",
    "Health",
    "Memory",
    "MemoryList",
    "MemoryType",
    "NewAgent",
    "NewMemory",
    "NewMemoryBatch",
    "NewSession",
    "Order",
    "Readiness",
    "RecallRequest",
    "RecallResult",
    "SearchOrder",
    "SearchQuery",
    "SearchResults",
    "Session",
    "SessionContext",
    "SessionList",
    "SessionStatus",
    "SessionUpdate",
]

MemoryType = Literal["episodic", "session", "decision", "entity"]
Order = Literal["asc", "desc"]
SearchOrder = Literal["relevance", "asc", "desc"]
SessionStatus = Literal["active", "closed"]


class _Request(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class _Response(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# --- requests ---------------------------------------------------------------------------------------------


class NewMemory(_Request):
    """One memory to store; `POST /api/v1/memories`."""

    agent_id: str
    content: str
    memory_type: MemoryType | None = None
    event_type: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    dedup_key: str | None = None
    importance: float | None = None
    parent_id: str | None = None


class NewMemoryBatch(_Request):
    memories: list[NewMemory]


class SearchQuery(_Request):
    """Structured filters for `POST /api/v1/search`; every filter is optional."""

    agent_id: str | None = None
    session_id: str | None = None
    memory_types: list[MemoryType] | None = None
    event_types: list[str] | None = None
    tags: list[str] | None = None
    content_contains: str | None = None
    since: str | None = None
    until: str | None = None
    min_importance: float | None = None
    limit: int | None = None
    offset: int | None = None
    order: SearchOrder | None = None
    query: str | None = None  # free text: results by relevance, each with `score`


class RecallRequest(_Request):
    """`POST /api/v1/recall`: the memories most relevant to `query`, as markdown within `max_tokens`."""

    query: str
    agent_id: str | None = None
    session_id: str | None = None
    memory_types: list[MemoryType] | None = None
    tags: list[str] | None = None
    since: str | None = None
    until: str | None = None
    max_tokens: int | None = None
    neighbors: int | None = None


class ForgetRequest(_Request):
    """`POST /api/v1/forget`: at least one filter is required; `dry_run` only counts."""

    agent_id: str | None = None
    session_id: str | None = None
    memory_types: list[MemoryType] | None = None
    event_types: list[str] | None = None
    tags: list[str] | None = None
    since: str | None = None
    until: str | None = None
    dry_run: bool = False


class NewAgent(_Request):
    name: str
    description: str | None = None
    config: dict[str, Any] | None = None


class NewSession(_Request):
    agent_id: str
    metadata: dict[str, Any] | None = None


class SessionUpdate(_Request):
    status: SessionStatus | None = None
    metadata: dict[str, Any] | None = None


class ContextRequest(_Request):
    max_tokens: int | None = None
    include_types: list[MemoryType] | None = None
    since: str | None = None


# --- responses --------------------------------------------------------------------------------------------


class Memory(_Response):
    """A stored memory; `time` is when it happened (UTC), `id` sorts by time."""

    id: str
    time: datetime
    org_id: str
    agent_id: str
    memory_type: str
    event_type: str
    content: str
    session_id: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[str] = msgspec.field(default_factory=list)
    dedup_key: str | None = None
    importance: float | None = None
    parent_id: str | None = None
    score: float | None = None  # relevance to the query, on ranked search and recall results only


class MemoryList(_Response):
    memories: list[Memory]
    count: int
    has_more: bool = False


class Skipped(_Response):
    """A batch item skipped as a duplicate: its index in the batch and the id of the memory it duplicates (None
    when the server does not know it)."""

    index: int
    memory_id: str | None = None


class BatchResult(_Response):
    """Outcome of a batch add: what was created, how many items were skipped as duplicates, and which."""

    memories: list[Memory]
    count: int
    duplicates: int = 0
    skipped: list[Skipped] = msgspec.field(default_factory=list)


class ForgetResult(_Response):
    """What a forget matched and deleted; `pending` when Arc has not confirmed yet (reads hide the rows
    already, the server applies the deletion when Arc is back)."""

    matched: int
    deleted: int
    dry_run: bool
    pending: bool = False


class SearchResults(_Response):
    results: list[Memory]
    count: int
    query_time_ms: int = 0


class RecallResult(_Response):
    """The recall markdown (`context`, ready for a prompt) and exactly the memories in it, with their scores."""

    query: str
    context: str
    memories: list[Memory]
    memory_count: int
    token_estimate: int


class Agent(_Response):
    id: str
    org_id: str
    name: str
    created_at: datetime
    description: str | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    last_active_at: datetime | None = None


class AgentList(_Response):
    agents: list[Agent]
    count: int


class AgentStats(_Response):
    agent_id: str
    memory_count: int
    memories_24h: int
    errors_24h: int
    session_count: int
    active_sessions: int
    last_active_at: datetime | None = None
    memory_types: dict[str, int] = msgspec.field(default_factory=dict)


class TimelineBucket(_Response):
    """Memories stored in [start, start + bucket): per memory type, and how many were `error` events."""

    start: datetime
    count: int
    by_type: dict[str, int] = msgspec.field(default_factory=dict)
    errors: int = 0


class Timeline(_Response):
    """Non-empty buckets oldest first; `agent_id` or `session_id` says whose timeline it is."""

    bucket: str
    since: datetime
    until: datetime
    buckets: list[TimelineBucket] = msgspec.field(default_factory=list)
    agent_id: str | None = None
    session_id: str | None = None


class Session(_Response):
    id: str
    org_id: str
    agent_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    closed_at: datetime | None = None


class SessionList(_Response):
    sessions: list[Session]
    count: int


class SessionContext(_Response):
    """LLM-ready markdown for a session, already cut to the requested token budget."""

    session_id: str
    context: str
    memory_count: int


class Health(_Response):
    status: str
    version: str | None = None


class Readiness(_Response):
    """`GET /ready`: a 503 is an answer here (not ready yet), not an error; `ready` comes from the status code."""

    ready: bool = False
    status: str = ""
    orgs: Any = None  # counts of orgs by Arc health: {"ok", "degraded", "unknown"}
    arc: Any = None  # per-org Arc health, only for an admin key
