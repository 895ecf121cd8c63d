"""Request and response Structs of the memory API, with the contract's constraints on the types.

Bodies are decoded from bytes straight into these Structs with decoders built once (in the `api/` module
of each resource, e.g. `api/memories.py`), so a ValidationError path such as `$.memories[3].importance`
names the offending field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from memtrace.patterns import (
    EVENT_TYPE_PATTERN,
    ID_PATTERN,
    OR_EMPTY_DEDUP_KEY_PATTERN,
    OR_EMPTY_EVENT_TYPE_PATTERN,
    OR_EMPTY_ID_PATTERN,
    TAG_PATTERN,
)
from memtrace.rows import MemoryFilter as MemoryFilter  # re-exported: defined with the row it filters
from memtrace.timeutil import TIME_RULE

MAX_TAGS = 32
MAX_LIMIT = 1000
MAX_OFFSET = 100_000  # deep paging makes Arc de-duplicate and sort offset + limit rows; past this, narrow `until`

MEMORY_TYPES: tuple[str, ...] = ("episodic", "session", "decision", "entity")
MemoryType = Literal["episodic", "session", "decision", "entity"]
Order = Literal["asc", "desc"]
SearchOrder = Literal["relevance", "asc", "desc"]
MAX_QUERY_CHARS = 1024
Query = Annotated[str, Meta(min_length=1, max_length=MAX_QUERY_CHARS,
                            examples=["what did the customer say about the refund?"])]
MAX_RECALL_TOKENS = 100_000
MAX_NEIGHBORS = 5

# The constraints are worded for error messages by `api/wording.py` (a pattern by `patterns.RULES`); `examples`
# give the example those messages show, and `extra={"rule": ...}` a rule the type cannot state.
Id = Annotated[str, Meta(pattern=ID_PATTERN)]
EventType = Annotated[str, Meta(pattern=EVENT_TYPE_PATTERN)]
Tag = Annotated[str, Meta(pattern=TAG_PATTERN)]
Tags = Annotated[list[Tag], Meta(max_length=MAX_TAGS, examples=[["billing", "urgent"]])]
Importance = Annotated[float, Meta(ge=0.0, le=1.0, examples=[0.8])]
Content = Annotated[str, Meta(min_length=1, examples=["User prefers dark mode"])]
# What the original Go SDK sends for an unset optional string: "" means absent (see NewMemory).
OrEmptyId = Annotated[str, Meta(pattern=OR_EMPTY_ID_PATTERN)]
OrEmptyEventType = Annotated[str, Meta(pattern=OR_EMPTY_EVENT_TYPE_PATTERN)]
OrEmptyDedupKey = Annotated[str, Meta(pattern=OR_EMPTY_DEDUP_KEY_PATTERN)]
Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT, examples=[50])]
Offset = Annotated[int, Meta(ge=0, le=MAX_OFFSET, examples=[100])]
Time = Annotated[str, Meta(extra={"rule": TIME_RULE})]  # parsed by timeutil.parse_time_param


class NewMemory(Struct, forbid_unknown_fields=False, kw_only=True):
    """One memory as a client sends it. Size caps that depend on settings are checked in `build.py`."""

    agent_id: Id
    content: Content
    memory_type: MemoryType | Literal[""] = "episodic"
    event_type: OrEmptyEventType = "general"
    session_id: OrEmptyId | None = None
    metadata: dict[str, Any] | None = None
    tags: Tags | None = None
    dedup_key: OrEmptyDedupKey | None = None
    importance: Importance | None = None
    parent_id: OrEmptyId | None = None

    def __post_init__(self) -> None:
        # The original Go SDK sends every field, "" when unset; the original server read "" as absent.
        if not self.memory_type:
            self.memory_type = "episodic"
        if not self.event_type:
            self.event_type = "general"
        self.session_id = self.session_id or None
        self.dedup_key = self.dedup_key or None
        self.parent_id = self.parent_id or None


class NewMemoryBatch(Struct, kw_only=True):
    memories: list[NewMemory]


class Memory(Struct, kw_only=True, omit_defaults=True):
    """A stored memory as the API returns it (built from a MemoryRow at the edge); `score` only on the results
    of a ranked search or recall: its relevance to the query, higher is better."""

    id: str
    time: str  # RFC 3339, UTC, microsecond precision
    org_id: str
    agent_id: str
    session_id: str
    memory_type: str
    event_type: str
    content: str
    metadata: Raw  # the stored JSON object, passed through without a decode
    tags: list[str]
    dedup_key: str
    importance: float
    parent_id: str
    score: float | None = None


class Skipped(Struct, kw_only=True, omit_defaults=True):
    """A batch item skipped as a duplicate: its index in the request and the id of the memory already stored
    under its dedup key (absent when the ledger does not know it: a key written before ids were kept)."""

    index: int
    memory_id: str | None = None


class BatchCreated(Struct, kw_only=True):
    memories: list[Memory]
    count: int
    duplicates: int
    skipped: list[Skipped] = msgspec.field(default_factory=list)


class MemoryList(Struct, kw_only=True):
    memories: list[Memory]
    count: int
    has_more: bool


class SearchRequest(Struct, kw_only=True, forbid_unknown_fields=False):
    agent_id: Id | None = None
    session_id: Id | None = None
    memory_types: Annotated[list[MemoryType], Meta(max_length=4)] | None = None
    event_types: Annotated[list[EventType], Meta(max_length=64)] | None = None
    tags: Tags | None = None
    content_contains: Annotated[str, Meta(max_length=1024, examples=["dark mode"])] | None = None
    since: Time | None = None
    until: Time | None = None
    min_importance: Importance | None = None
    limit: Limit = 50
    offset: Offset = 0
    order: SearchOrder | None = None  # "relevance" with a query, else "desc"
    query: Query | None = None


class SearchResults(Struct, kw_only=True):
    results: list[Memory]
    count: int
    query_time_ms: int


class RecallRequest(Struct, kw_only=True, forbid_unknown_fields=False):
    query: Query
    agent_id: Id | None = None
    session_id: Id | None = None
    memory_types: Annotated[list[MemoryType], Meta(max_length=4)] | None = None
    event_types: Annotated[list[EventType], Meta(max_length=64)] | None = None
    tags: Tags | None = None
    since: Time | None = None
    until: Time | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=MAX_RECALL_TOKENS, examples=[600])] = 1000
    neighbors: Annotated[int, Meta(ge=0, le=MAX_NEIGHBORS, examples=[1])] = 1


class RecallResult(Struct, kw_only=True):
    query: str
    context: str
    memories: list[Memory]
    memory_count: int
    token_estimate: int


class Page(Struct, kw_only=True):
    limit: int = 100
    offset: int = 0
    order: Order = "desc"
